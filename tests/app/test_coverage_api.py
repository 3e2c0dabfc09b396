"""GET /layers/{layer}/coverage: stats against SQL, colours, simplification, ETag and 304."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import coverage as coverage_maps
from app import demo
from app.cache import LruCache
from app.repositories import customers
from spatial.measure import geodesic_area_km2

LAYER = "west-cov"


@pytest.fixture
def west(client: TestClient, session: Session) -> TestClient:
    """Customers, and a layer of five western states, assigned."""
    customers.upsert(session, batch=demo.generate(3_000, seed=21))
    session.commit()
    client.post("/layers", json={"name": LAYER})
    for code in ("CA", "NV", "OR", "AZ", "UT"):
        client.post(f"/layers/{LAYER}/territories", json={"name": code, "states": [code]})
    assert client.post(f"/layers/{LAYER}/assign").status_code == 200
    return client


def _truth(session: Session) -> dict[int, tuple[int, float]]:
    rows = session.execute(
        text(
            "SELECT t.id, count(c.id) AS n, coalesce(sum(c.value), 0) AS v "
            "FROM territories t JOIN layers l ON l.id = t.layer_id "
            "LEFT JOIN customers c ON ST_Covers(t.geom, c.geom) "
            "WHERE l.name = :n GROUP BY t.id"
        ),
        {"n": LAYER},
    ).all()
    session.rollback()
    return {r.id: (r.n, float(r.v)) for r in rows}


def test_stats_areas_and_shares_match_postgis(west: TestClient, session: Session) -> None:
    response = west.get(f"/layers/{LAYER}/coverage")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    features = {f["id"]: f for f in body["features"]}
    truth = _truth(session)  # the five states do not overlap: covered = assigned
    found = {
        fid: (f["properties"]["customer_count"], f["properties"]["customer_value"])
        for fid, f in features.items()
    }
    assert found == {k: (n, round(v, 2)) for k, (n, v) in truth.items()}
    total = sum(n for n, _ in truth.values())
    assert body["summary"]["customer_count"] == total > 100
    for fid, f in features.items():
        props = f["properties"]
        assert props["customer_share"] == pytest.approx(truth[fid][0] / total, abs=1e-6)
        area = session.scalar(
            text("SELECT ST_Area(geom::geography) / 1e6 FROM territories WHERE id = :t"),
            {"t": fid},
        )
        assert props["area_km2"] == pytest.approx(area, rel=1e-6)
        assert geodesic_area_km2([shape(f["geometry"])])[0] == pytest.approx(area, rel=1e-3)
    session.rollback()


def test_touching_territories_get_different_colours(west: TestClient, session: Session) -> None:
    features = west.get(f"/layers/{LAYER}/coverage").json()["features"]
    color = {f["id"]: f["properties"]["color"] for f in features}
    pairs = session.execute(
        text(
            "SELECT a.id, b.id FROM territories a JOIN territories b ON a.id < b.id "
            "AND a.layer_id = b.layer_id AND ST_Intersects(a.geom, b.geom) "
            "JOIN layers l ON l.id = a.layer_id WHERE l.name = :n"
        ),
        {"n": LAYER},
    ).all()
    session.rollback()
    assert len(pairs) >= 6  # CA-NV, CA-OR, CA-AZ, NV-OR, NV-AZ, NV-UT, AZ-UT, ...
    assert all(color[a] != color[b] for a, b in pairs)
    assert all(0 <= c <= 5 for c in color.values())


def test_zoom_simplifies_the_shapes_together(west: TestClient) -> None:
    full = west.get(f"/layers/{LAYER}/coverage").json()["features"]
    low = west.get(f"/layers/{LAYER}/coverage", params={"zoom": 3}).json()["features"]
    count = lambda fs: sum(shapely.get_num_coordinates(shape(f["geometry"])) for f in fs)  # noqa: E731
    assert count(low) < count(full) / 3
    simple = np.array([shape(f["geometry"]) for f in low])
    assert shapely.is_valid(simple).all()
    overlap = shapely.area(shapely.intersection_all(simple[:2]))
    assert overlap == pytest.approx(0, abs=1e-9)
    # RFC 7946 winding: exteriors counter-clockwise.
    for geom in simple:
        for part in shapely.get_parts(geom):
            assert part.exterior.is_ccw


def test_etag_changes_exactly_with_the_layer_or_its_assignments(west: TestClient) -> None:
    url = f"/layers/{LAYER}/coverage"
    first = west.get(url)
    tag = first.headers["etag"]
    assert west.get(url, headers={"if-none-match": tag}).status_code == 304
    assert west.get(url).headers["etag"] == tag  # nothing changed: the same tag
    assert west.get(url, params={"zoom": 5}).headers["etag"] != tag  # other options
    # An assignment changes (a pin): a new tag, and the old one no longer gets a 304.
    features = first.json()["features"]
    some_customer = west.get(url, params={"include_customers": True}).json()["features"][-1]
    assert some_customer["properties"]["kind"] == "customer"
    target = next(
        f["id"] for f in features if f["id"] != some_customer["properties"]["territory_id"]
    )
    cid = some_customer["properties"]["customer_id"]
    assert west.put(f"/layers/{LAYER}/pins/{cid}", json={"territory_id": target}).is_success
    pinned = west.get(url, headers={"if-none-match": tag})
    assert pinned.status_code == 200 and pinned.headers["etag"] != tag
    # A territory edit: a new tag again.
    tag2 = pinned.headers["etag"]
    west.patch(f"/layers/{LAYER}/territories/{target}", json={"owner": "Zoe"})
    edited = west.get(url)
    assert edited.headers["etag"] not in {tag, tag2}
    assert {f["properties"]["owner"] for f in edited.json()["features"]} >= {"Zoe"}


def test_bbox_customers_and_bad_options(west: TestClient) -> None:
    url = f"/layers/{LAYER}/coverage"
    nevada_only = west.get(url, params={"bbox": "-117,38,-116,39"}).json()["features"]
    assert [f["properties"]["name"] for f in nevada_only] == ["NV"]
    both = west.get(url, params={"zoom": 4, "tolerance_m": 100})
    assert both.status_code == 422 and both.json()["field"] == "zoom"
    assert west.get(url, params={"zoom": 23}).status_code == 422
    # A tolerance near the smallest float (found by schemathesis): rounding to the 316 decimals
    # it asked for made NaN coordinates, a 500.
    assert west.get(url, params={"tolerance_m": 2.2250738585072014e-308}).status_code == 200
    assert west.get("/layers/nope/coverage").status_code == 404


def test_a_new_customer_value_reaches_the_totals(west: TestClient, session: Session) -> None:
    url = f"/layers/{LAYER}/coverage"
    before = {f["id"]: f["properties"]["customer_value"] for f in west.get(url).json()["features"]}
    row = session.execute(
        text(
            "SELECT c.external_id, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.value, "
            "a.territory_id FROM customers c JOIN assignments a ON a.customer_id = c.id "
            "JOIN layers l ON l.id = a.layer_id WHERE l.name = :n ORDER BY c.id LIMIT 1"
        ),
        {"n": LAYER},
    ).one()
    session.rollback()
    new_value = float(row.value) + 1000.25  # same place, a new value
    body = [{"external_id": row.external_id, "lon": row.lon, "lat": row.lat, "value": new_value}]
    assert west.post("/customers", json=body).status_code == 200
    after = {f["id"]: f["properties"]["customer_value"] for f in west.get(url).json()["features"]}
    assert after[row.territory_id] == pytest.approx(before[row.territory_id] + 1000.25)
    assert {k: v for k, v in after.items() if k != row.territory_id} == {
        k: v for k, v in before.items() if k != row.territory_id
    }
    assert after == {k: round(v, 2) for k, v in _truth_values(session).items()}


def _truth_values(session: Session) -> dict[int, float]:
    return {k: v for k, (_, v) in _truth(session).items()}


def test_a_worker_makes_the_map_shapes_of_its_layers_at_start(
    client: TestClient, session: Session
) -> None:
    # Started with index.warm, a worker has the shapes of every zoom in WARM_ZOOMS made before
    # its first map read (the counties' took seconds to make on the first reads, and held
    # every heavy slot meanwhile); deeper zooms are made on first use.
    client.post("/layers", json={"name": "started"})
    for state in ("NV", "UT"):
        client.post("/layers/started/territories", json={"name": state, "states": [state]})
    registry = client.app.state.indexes  # type: ignore[attr-defined]
    registry.get("started")
    coverage_maps.warm(LruCache(1), registry, ["started", "no such layer"])
    made = coverage_maps._SHAPES.made
    for zoom in coverage_maps.WARM_ZOOMS:
        assert client.get("/layers/started/coverage", params={"zoom": zoom}).status_code == 200
    assert coverage_maps._SHAPES.made == made  # none made again
    deeper = max(coverage_maps.WARM_ZOOMS) + 1
    assert client.get("/layers/started/coverage", params={"zoom": deeper}).status_code == 200
    assert coverage_maps._SHAPES.made == made + 1
