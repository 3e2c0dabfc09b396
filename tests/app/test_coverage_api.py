"""GET /layers/{layer}/coverage: stats against SQL, colours, simplification, ETag and 304."""

from __future__ import annotations

from datetime import datetime

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
from tests.spatial.test_coverage import AREA_KEPT

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


# --- issue 4, item 1: shares, customers, zooms and ETags against SQL ----------------------------


def _assigned_truth(session: Session) -> dict[int, tuple[int, float]]:
    """Per territory of the layer: its assigned customers and the sum of their values (pins
    included), the values read off the customers themselves."""
    rows = session.execute(
        text(
            "SELECT t.id, count(c.id) AS n, coalesce(sum(c.value), 0) AS v "
            "FROM territories t JOIN layers l ON l.id = t.layer_id "
            "LEFT JOIN assignments a ON a.territory_id = t.id AND a.layer_id = l.id "
            "LEFT JOIN customers c ON c.id = a.customer_id "
            "WHERE l.name = :n GROUP BY t.id"
        ),
        {"n": LAYER},
    ).all()
    session.rollback()
    return {r.id: (r.n, float(r.v)) for r in rows}


def _check_shares(body: dict, truth: dict[int, tuple[int, float]]) -> None:
    total_n = sum(n for n, _ in truth.values())
    total_v = sum(v for _, v in truth.values())
    assert total_n > 100 and total_v > 0
    assert body["summary"]["customer_count"] == total_n
    assert body["summary"]["customer_value"] == pytest.approx(total_v, abs=0.01)
    found = {f["id"]: f["properties"] for f in body["features"]}
    assert set(found) == set(truth)
    for tid, (n, v) in truth.items():
        props = found[tid]
        assert props["customer_count"] == n
        assert props["customer_value"] == pytest.approx(v, abs=0.006)
        assert props["customer_share"] == pytest.approx(n / total_n, abs=1e-6)
        assert props["value_share"] == pytest.approx(v / total_v, abs=1e-6)


def test_value_and_customer_shares_match_sql(west: TestClient, session: Session) -> None:
    url = f"/layers/{LAYER}/coverage"
    truth = _assigned_truth(session)
    assert truth == _truth(session)  # no pins yet: assigned = covered
    _check_shares(west.get(url).json(), truth)
    # A pin (to a territory that does not cover the customer) and a new value: the shares
    # follow the assignments and the customers' values, not the shapes.
    points = west.get(url, params={"include_customers": True}).json()["features"]
    first = next(f for f in points if f["properties"].get("kind") == "customer")
    other = next(t for t in truth if t != first["properties"]["territory_id"])
    cid = first["properties"]["customer_id"]
    assert west.put(f"/layers/{LAYER}/pins/{cid}", json={"territory_id": other}).is_success
    row = session.execute(
        text(
            "SELECT c.external_id, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.value "
            "FROM customers c JOIN assignments a ON a.customer_id = c.id "
            "JOIN layers l ON l.id = a.layer_id WHERE l.name = :n AND c.id <> :c "
            "ORDER BY c.value DESC LIMIT 1"
        ),
        {"n": LAYER, "c": cid},
    ).one()
    session.rollback()
    body = [{"external_id": row.external_id, "lon": row.lon, "lat": row.lat, "value": 5.5}]
    assert west.post("/customers", json=body).status_code == 200
    moved = _assigned_truth(session)
    assert moved != truth
    _check_shares(west.get(url).json(), moved)
    _check_shares(west.get(url, params={"zoom": 6}).json(), moved)


_ASSIGNED_POINTS = """
SELECT c.id, a.territory_id, c.value::float8 AS value, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
FROM assignments a JOIN customers c ON c.id = a.customer_id JOIN layers l ON l.id = a.layer_id
WHERE l.name = :n
  AND (CAST(:bbox AS float8[]) IS NULL OR ST_Intersects(c.geom, ST_MakeEnvelope(
       (CAST(:bbox AS float8[]))[1], (CAST(:bbox AS float8[]))[2],
       (CAST(:bbox AS float8[]))[3], (CAST(:bbox AS float8[]))[4], 4326)))
"""


def _points_truth(session: Session, bbox: list[float] | None = None) -> dict[str, dict]:
    """The layer's assigned customers (in bbox) as the point features they should be, by id."""
    rows = session.execute(text(_ASSIGNED_POINTS), {"n": LAYER, "bbox": bbox}).all()
    session.rollback()
    return {
        f"customer-{r.id}": {
            "coordinates": [r.lon, r.lat],
            "properties": {
                "kind": "customer",
                "customer_id": r.id,
                "territory_id": r.territory_id,
                "value": r.value,
            },
        }
        for r in rows
    }


def _points(body: dict) -> dict[str, dict]:
    found = [f for f in body["features"] if f["properties"].get("kind") == "customer"]
    assert all(f["geometry"]["type"] == "Point" for f in found)
    by_id = {
        f["id"]: {"coordinates": f["geometry"]["coordinates"], "properties": f["properties"]}
        for f in found
    }
    assert len(by_id) == len(found)  # each customer once
    return by_id


def test_included_customers_match_the_assignments_in_sql(
    west: TestClient, session: Session
) -> None:
    url = f"/layers/{LAYER}/coverage"
    box = [-120.0, 36.0, -115.0, 40.0]  # parts of CA and NV
    # A customer on the bbox's east edge, in Nevada: assigned, and inside the bbox.
    edge = {"external_id": "on-the-edge", "lon": box[2], "lat": 38.0, "value": 12.5}
    assert west.post("/customers", json=[edge]).status_code == 200
    plain = west.get(url).json()
    assert not _points(plain)  # only when asked for
    body = west.get(url, params={"include_customers": True}).json()
    truth = _points_truth(session)
    assert len(truth) == body["summary"]["customer_count"] > 100
    assert _points(body) == truth
    # The territories are still all there, and the points come after them.
    assert [f["id"] for f in body["features"][: len(plain["features"])]] == [
        f["id"] for f in plain["features"]
    ]
    # A bbox filters the points too: only the customers inside it (edges included).
    boxed = west.get(
        url, params={"include_customers": True, "bbox": ",".join(map(str, box))}
    ).json()
    inside = _points_truth(session, box)
    assert 0 < len(inside) < len(truth)
    assert _points(boxed) == inside
    assert [box[2], 38.0] in [p["coordinates"] for p in inside.values()]
    names = {f["properties"]["name"] for f in boxed["features"] if "name" in f["properties"]}
    assert names == {"CA", "NV"}
    assert boxed["summary"]["customer_count"] == len(truth)  # the summary is the whole layer's


def test_too_many_customers_to_include_is_a_problem_naming_the_limit(
    west: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"/layers/{LAYER}/coverage"
    total = len(_points_truth(session))
    box = [-120.0, 36.0, -115.0, 40.0]
    inside = len(_points_truth(session, box))
    limit = inside + 1
    assert limit < total
    monkeypatch.setattr(coverage_maps, "MAX_CUSTOMER_POINTS", limit)
    response = west.get(url, params={"include_customers": True})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["field"] == "include_customers"
    assert f"more than {limit:,} " in problem["detail"] and "bbox" in problem["detail"]
    # Exactly at the limit: still a map. Narrowed with a bbox: a map, too.
    monkeypatch.setattr(coverage_maps, "MAX_CUSTOMER_POINTS", total)
    assert west.get(url, params={"include_customers": True}).status_code == 200
    monkeypatch.setattr(coverage_maps, "MAX_CUSTOMER_POINTS", limit)
    boxed = west.get(url, params={"include_customers": True, "bbox": ",".join(map(str, box))})
    assert boxed.status_code == 200 and len(_points(boxed.json())) == inside
    # Without customers the limit does not apply.
    assert west.get(url).status_code == 200


def test_etag_stays_when_another_layer_or_an_outside_customer_changes(
    west: TestClient, session: Session
) -> None:
    url = f"/layers/{LAYER}/coverage"
    options = [{}, {"zoom": 5}, {"include_customers": True}]
    tags = [west.get(url, params=p).headers["etag"] for p in options]

    def unchanged() -> None:
        for params, tag in zip(options, tags, strict=True):
            again = west.get(url, params=params, headers={"if-none-match": tag})
            assert again.status_code == 304 and again.headers["etag"] == tag
            assert west.get(url, params=params).headers["etag"] == tag

    # Another layer: made, given territories, assigned, edited.
    other = "other-cov"
    assert west.post("/layers", json={"name": other}).is_success
    made = west.post(f"/layers/{other}/territories", json={"name": "TX", "states": ["TX"]})
    assert made.status_code == 201
    assert west.post(f"/layers/{other}/assign").status_code == 200
    unchanged()
    other_url = f"/layers/{other}/coverage"
    other_tag = west.get(other_url).headers["etag"]
    tx = made.json()["id"]
    assert west.patch(f"/layers/{other}/territories/{tx}", json={"owner": "Ann"}).is_success
    nm = west.post(f"/layers/{other}/territories", json={"name": "NM", "states": ["NM"]})
    assert nm.status_code == 201
    unchanged()
    assert west.get(other_url).headers["etag"] != other_tag  # the other layer's did move
    # Customers outside every territory of the layer: a new one in Texas (in the other layer),
    # one in the sea (in no layer), and a new value for one already outside.
    other_tag = west.get(other_url).headers["etag"]
    row = session.execute(
        text(
            "SELECT c.external_id, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.value "
            "FROM customers c WHERE NOT EXISTS (SELECT 1 FROM territories t "
            "JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = :n AND ST_Intersects(t.geom, c.geom)) "
            "ORDER BY c.id LIMIT 1"
        ),
        {"n": LAYER},
    ).one()
    session.rollback()
    batch = [
        {"external_id": "in-texas", "lon": -97.74, "lat": 30.27, "value": 100.0},
        {"external_id": "at-sea", "lon": -140.0, "lat": 30.0, "value": 7.0},
        {"external_id": row.external_id, "lon": row.lon, "lat": row.lat,
         "value": float(row.value) + 1},
    ]  # fmt: skip
    assert west.post("/customers", json=batch).status_code == 200
    unchanged()
    assert west.get(other_url).headers["etag"] != other_tag  # Texas's customer counts there
    # The control: a customer inside the layer (Nevada) does change it.
    inside = {"external_id": "in-nevada", "lon": -116.0, "lat": 39.0, "value": 1.0}
    assert west.post("/customers", json=[inside]).status_code == 200
    stale = west.get(url, headers={"if-none-match": tags[0]})
    assert stale.status_code == 200 and stale.headers["etag"] != tags[0]


def _holes_km2(geom: shapely.Geometry) -> float:
    holes = [shapely.Polygon(r) for p in shapely.get_parts(geom) for r in p.interiors]
    return float(geodesic_area_km2(holes).sum()) if holes else 0.0


@pytest.mark.parametrize("zoom", [0, 4, 8])
def test_simplified_map_covers_the_layer_without_gaps(
    west: TestClient, session: Session, zoom: int
) -> None:
    reference = session.execute(
        text(
            "SELECT ST_Area(ST_Union(t.geom)::geography) / 1e6 AS area, "
            "ST_AsBinary(ST_Union(t.geom)) AS wkb "
            "FROM territories t JOIN layers l ON l.id = t.layer_id WHERE l.name = :n"
        ),
        {"n": LAYER},
    ).one()
    session.rollback()
    assert _holes_km2(shapely.from_wkb(reference.wkb)) == pytest.approx(0, abs=1e-6)
    features = west.get(f"/layers/{LAYER}/coverage", params={"zoom": zoom}).json()["features"]
    simple = np.array([shape(f["geometry"]) for f in features])
    assert len(simple) == 5 and shapely.is_valid(simple).all()
    assert shapely.coverage_is_valid(simple)  # no overlaps, shared borders shared
    union = shapely.union_all(simple)
    assert union.is_valid
    assert _holes_km2(union) == pytest.approx(0, abs=1e-6)  # no gap between neighbours
    area = geodesic_area_km2([union])[0]
    assert area == pytest.approx(reference.area, rel=AREA_KEPT[min(zoom, 6)])


def test_a_layer_never_assigned_says_so(client: TestClient, session: Session) -> None:
    customers.upsert(session, batch=demo.generate(500, seed=22))
    session.commit()
    client.post("/layers", json={"name": LAYER})
    client.post(f"/layers/{LAYER}/territories", json={"name": "CA", "states": ["CA"]})
    # Customers are counted as assigned: none yet, and the map says why its counts are 0.
    for url in (f"/layers/{LAYER}/coverage", f"/layers/{LAYER}/balance"):
        body = client.get(url).json()
        assert (body.get("summary") or body)["assigned_at"] is None, url
    summary = client.get(f"/layers/{LAYER}/coverage").json()["summary"]
    assert summary["customer_count"] == 0
    assert client.post(f"/layers/{LAYER}/assign").status_code == 200
    stamp = session.scalar(text("SELECT assigned_at FROM layers WHERE name = :n"), {"n": LAYER})
    session.rollback()
    summary = client.get(f"/layers/{LAYER}/coverage").json()["summary"]
    assert datetime.fromisoformat(summary["assigned_at"]) == stamp
    assert summary["customer_count"] == sum(n for n, _ in _truth(session).values()) > 0
    balance = client.get(f"/layers/{LAYER}/balance").json()
    assert datetime.fromisoformat(balance["assigned_at"]) == stamp
