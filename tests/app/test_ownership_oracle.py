"""The engine agrees with PostGIS exactly: owners of 100,000+ points against one SQL query.

Points: random ones over each layer, every kind of awkward one (vertices of shared borders,
midpoints of border edges, points inside holes, the Aleutians on both sides of 180°).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.indexes import build_index
from app.repositories.assignments import owners_sql

RNG_SEED = 20261123


def _layer_id(session: Session, name: str) -> int:
    return int(session.scalar(text("SELECT id FROM layers WHERE name = :n"), {"n": name}))


@pytest.fixture
def overlapping_layer(engine: Engine) -> Iterator[str]:
    """A layer where territories overlap: states, composed regions, duplicates, priorities."""
    name = "oracle-overlaps"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layers WHERE name = :n"), {"n": name})
        layer = conn.scalar(text("INSERT INTO layers (name) VALUES (:n) RETURNING id"), {"n": name})
        # Every state, priority 0..2 by FIPS; every county of CA, NV and OR on top at priority 1;
        # two identical boxes (only the id can separate them), and big boxes across borders.
        conn.execute(
            text(
                "INSERT INTO territories (layer_id, name, priority, geom) "
                "SELECT :l, name, (fips::int % 3), geom FROM boundaries WHERE level = 'state'"
            ),
            {"l": layer},
        )
        conn.execute(
            text(
                "INSERT INTO territories (layer_id, name, priority, geom) "
                "SELECT :l, name, 1, geom FROM boundaries "
                "WHERE level = 'county' AND state_fips IN ('06', '32', '41')"
            ),
            {"l": layer},
        )
        for box in ["-105 35 -95 42", "-105 35 -95 42", "-90 30 -80 40", "-125 40 -110 49"]:
            x0, y0, x1, y1 = box.split()
            conn.execute(
                text(
                    "INSERT INTO territories (layer_id, name, priority, geom) VALUES "
                    "(:l, 'box', 1, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"
                ),
                {"l": layer, "x0": x0, "y0": y0, "x1": x1, "y1": y1},
            )
    yield name
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layers WHERE name = :n"), {"n": name})


def _awkward_points(geoms: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Vertices, edge midpoints and hole interiors of the layer's polygons, n of each kind."""
    rings = shapely.get_rings(shapely.get_parts(geoms))
    vertices = shapely.get_coordinates(rings)
    picked = vertices[rng.choice(len(vertices), size=min(n, len(vertices)), replace=False)]
    # Midpoints of consecutive vertices of the same ring: on the border, give or take a ulp.
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    mids = ((coords[1:] + coords[:-1]) / 2)[same]
    mids = mids[rng.choice(len(mids), size=min(n, len(mids)), replace=False)]
    holes = [
        shapely.Polygon(h).representative_point()
        for p in shapely.get_parts(geoms)
        for h in p.interiors
    ]
    inside_holes = shapely.get_coordinates(np.array(holes, dtype=object))
    return np.vstack([picked, mids, inside_holes])


def _points(index_geoms: np.ndarray, n_random: int, n_awkward: int) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    minx, miny, maxx, maxy = -125.0, 24.0, -66.0, 50.0  # the continental US, where borders are
    uniform = np.column_stack(
        [rng.uniform(minx, maxx, n_random), rng.uniform(miny, maxy, n_random)]
    )
    aleutians = np.column_stack(
        [np.r_[rng.uniform(172, 180, 500), rng.uniform(-180, -165, 500), 180.0, -180.0],
         np.r_[rng.uniform(51, 56, 1000), 51.5, 51.5]]
    )  # fmt: skip
    return np.vstack([uniform, _awkward_points(index_geoms, rng, n_awkward), aleutians])


@pytest.mark.parametrize(("layer", "n_random", "n_awkward"), [("counties", 60_000, 20_000)])
def test_engine_agrees_with_postgis_on_the_counties(
    session: Session, layer: str, n_random: int, n_awkward: int
) -> None:
    _assert_agree(session, layer, n_random, n_awkward, minimum=100_000)


def test_engine_agrees_with_postgis_where_territories_overlap(
    session: Session, overlapping_layer: str
) -> None:
    _assert_agree(session, overlapping_layer, 20_000, 5_000, minimum=30_000, overlaps=True)


def _assert_agree(
    session: Session,
    layer: str,
    n_random: int,
    n_awkward: int,
    *,
    minimum: int,
    overlaps: bool = False,
) -> None:
    layer_id = _layer_id(session, layer)
    index = build_index(session, layer_id=layer_id)
    pts = _points(index.territories.geoms, n_random, n_awkward)
    assert len(pts) >= minimum
    engine = index.owners(pts[:, 0], pts[:, 1])
    owner, covering = owners_sql(session, layer_id=layer_id, lon=pts[:, 0], lat=pts[:, 1])
    differ = np.flatnonzero((engine.owner != owner) | (engine.covering != covering))
    shown = [
        (
            pts[i].tolist(),
            int(engine.owner[i]),
            int(owner[i]),
            int(engine.covering[i]),
            int(covering[i]),
        )
        for i in differ[:10]
    ]
    assert differ.size == 0, f"{differ.size} of {len(pts)} differ, e.g. {shown}"
    assert (owner >= 0).mean() > 0.3  # most points landed somewhere: the check has teeth
    if overlaps:
        rules = set(engine.rules())
        assert {"priority", "area", "id", "only"} <= rules
