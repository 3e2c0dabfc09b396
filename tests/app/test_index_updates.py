"""Edits through the API update the held index incrementally, and it agrees with PostGIS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.indexes import IndexRegistry, LayerIndex
from app.repositories import layers
from app.repositories.assignments import owners_sql
from tests import canonical

DRAWN = "drawn-edits"
COUNTIES = "county-edits"


def _registry(client: TestClient) -> IndexRegistry:
    registry: IndexRegistry = client.app.state.indexes  # type: ignore[attr-defined]
    return registry


def _points(geoms: list[Any], rng: np.random.Generator, n: int, box: list[float]) -> np.ndarray:
    """Random points in ``box``, and every vertex and edge midpoint of ``geoms``."""
    minx, miny, maxx, maxy = box
    uniform = np.column_stack([rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)])
    coords, ring = shapely.get_coordinates(
        shapely.get_rings(shapely.get_parts(np.array(geoms, dtype=object))), return_index=True
    )
    same = ring[1:] == ring[:-1]
    mids = ((coords[1:] + coords[:-1]) / 2)[same]
    return np.vstack([uniform, coords, mids])


def _assert_agrees_with_postgis(session: Session, entry: LayerIndex, pts: np.ndarray) -> None:
    found = entry.index.owners(pts[:, 0], pts[:, 1])
    owner, covering = owners_sql(session, layer_id=entry.layer_id, lon=pts[:, 0], lat=pts[:, 1])
    differ = np.flatnonzero((found.owner != owner) | (found.covering != covering))
    assert differ.size == 0, f"{differ.size} of {len(pts)} differ, e.g. {pts[differ[:5]]}"
    assert (owner >= 0).mean() > 0.2  # the check has teeth: many points are owned


def _square(x: float, y: float, side: float) -> dict[str, Any]:
    ring = [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_edits_of_a_drawn_layer_update_the_index(client: TestClient, session: Session) -> None:
    assert client.post("/layers", json={"name": DRAWN}).status_code == 201
    base = f"/layers/{DRAWN}/territories"
    made = [
        client.post(base, json=canonical.feature(_square(x, y, 2), name=f"t{k}")).json()["id"]
        for k, (x, y) in enumerate([(0, 0), (1, 1), (4, 0), (6, 3), (0, 5)])
    ]
    registry = _registry(client)
    first = registry.get(DRAWN)
    assert first.how == "built"
    rng = np.random.default_rng(11)

    def check(expected: str) -> LayerIndex:
        entry = registry.get(DRAWN)
        assert entry.how == expected
        rows = session.execute(
            text(
                "SELECT ST_AsBinary(geom) FROM territories t JOIN layers l ON l.id = t.layer_id "
                "WHERE l.name = :n"
            ),
            {"n": DRAWN},
        ).scalars()
        geoms = list(shapely.from_wkb([bytes(r) for r in rows]))
        _assert_agrees_with_postgis(session, entry, _points(geoms, rng, 3000, [-1, -1, 9, 8]))
        session.rollback()
        return entry

    edits = [
        ("PATCH", made[1], {"geometry": _square(1, 1, 3)}),  # reshape, overlapping t0 more
        ("PATCH", made[0], {"priority": 1}),  # t1 now wins where they overlap
        ("DELETE", made[2], None),
        ("POST", None, canonical.feature(_square(5, 0, 1.5), name="new", priority=0)),
    ]
    for method, territory, body in edits:
        url = base if territory is None else f"{base}/{territory}"
        answer = client.request(method, url, json=body)
        assert answer.status_code < 300, answer.text
        entry = check("updated")
        assert entry.index.rebuilt_roots < entry.index.root_cells  # not the whole grid
    # A new name changes what look-ups show, not the index: the very same one is kept.
    before = registry.get(DRAWN).index
    client.patch(f"{base}/{made[3]}", json={"name": "renamed"})
    assert check("kept").index is before
    assert registry.get(DRAWN).describe(made[3])["name"] == "renamed"
    # Every version made along the way stays as it was: t1 did not reach (3.5, 3.5) at first.
    assert registry.get(DRAWN).index.owner_of(3.5, 3.5) == (made[1], "only", 1)
    assert first.index.owner_of(3.5, 3.5) == (-1, "none", 0)


@pytest.fixture
def county_layer(client: TestClient, engine: Engine) -> Iterator[str]:
    """A layer holding a copy of every county (the reference layer stays as it is)."""
    assert client.post("/layers", json={"name": COUNTIES}).status_code == 201
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO territories (layer_id, name, code, geom) "
                "SELECT l.id, b.name, b.fips, b.geom FROM boundaries b, layers l "
                "WHERE b.level = 'county' AND l.name = :n"
            ),
            {"n": COUNTIES},
        )
    yield COUNTIES


def test_one_county_edited_updates_a_few_cells(
    client: TestClient, session: Session, county_layer: str
) -> None:
    registry = _registry(client)
    built = registry.get(county_layer)
    assert built.how == "built" and len(built.index) > 3000
    tid = session.scalar(
        text(
            "SELECT t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = :n AND t.code = '06003'"
        ),
        {"n": county_layer},
    )
    # Alpine County, CA reshaped to itself plus two neighbours: it now overlaps them.
    edited = client.patch(
        f"/layers/{county_layer}/territories/{tid}", json={"counties": ["06003", "06017", "06005"]}
    )
    assert edited.status_code == 200, edited.text
    entry = registry.get(county_layer)
    assert entry.how == "updated"
    assert entry.index.rebuilt_roots <= 12 < entry.index.root_cells  # a few 1-degree cells
    shape_now = shape(edited.json()["geometry"])
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = shape_now.bounds
    near = _points([shape_now], rng, 5000, [minx - 1, miny - 1, maxx + 1, maxy + 1])
    far = _points([], rng, 5000, [-125, 24, -66, 50])
    _assert_agrees_with_postgis(session, entry, np.vstack([near, far]))


def test_a_change_that_began_first_but_committed_last_is_not_skipped(
    client: TestClient, engine: Engine
) -> None:
    """The index version is taken under the layer's lock, so commit order is version order."""
    assert client.post("/layers", json={"name": "late"}).status_code == 201
    base = "/layers/late/territories"
    first = client.post(base, json=canonical.feature(_square(0, 0, 2), name="a")).json()["id"]
    registry = _registry(client)
    with Session(engine) as early:
        early.execute(text("SELECT 1"))  # this transaction begins now ...
        # ... another change begins later and commits first; this worker takes it in.
        client.post(base, json=canonical.feature(_square(10, 0, 2), name="b"))
        assert registry.get("late").index.owner_of(11, 1)[0] > 0
        # The early transaction now makes its change (through the same steps as the API).
        layer = layers.get_by_name(early, name="late", for_change=True)
        early.execute(
            text(
                "UPDATE territories SET geom = ST_Multi(ST_MakeEnvelope(0, 0, 5, 5, 4326)) "
                "WHERE id = :t"
            ),
            {"t": first},
        )
        layers.touch(early, layer=layer)
        early.commit()
    assert registry.refresh("late").index.owner_of(4, 4)[0] == first  # not skipped as older


def test_analyses_do_not_lag_a_change_this_worker_has_not_heard_of(
    client: TestClient, session: Session
) -> None:
    """A change committed without a NOTIFY reaching this worker: analyses still see it."""
    assert client.post("/layers", json={"name": "quiet"}).status_code == 201
    base = "/layers/quiet/territories"
    client.post(base, json=canonical.feature(_square(0, 0, 2), name="a"))
    moved = client.post(base, json=canonical.feature(_square(5, 0, 2), name="b")).json()["id"]
    _registry(client).get("quiet")  # held here
    assert client.get("/layers/quiet/overlaps").json()["features"] == []
    # Another writer, whose NOTIFY this worker never hears: the shape and the version move.
    session.execute(
        text(
            "UPDATE territories SET geom = ST_Multi(ST_MakeEnvelope(1, 1, 3, 3, 4326)) "
            "WHERE id = :t"
        ),
        {"t": moved},
    )
    session.execute(text("UPDATE layers SET updated_at = clock_timestamp() WHERE name = 'quiet'"))
    session.commit()
    assert len(client.get("/layers/quiet/overlaps").json()["features"]) == 1
    coverage = client.get("/layers/quiet/coverage").json()["features"]
    moved_shape = next(f["geometry"] for f in coverage if f["id"] == moved)
    assert shape(moved_shape).bounds == (1.0, 1.0, 3.0, 3.0)  # drawn where it is now
