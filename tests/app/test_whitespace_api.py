"""GET/POST /layers/{layer}/whitespace, checked against PostGIS as the oracle."""

from __future__ import annotations

import json
import time
from typing import Any

import h3
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import demo
from app import whitespace as whitespace_service
from app.repositories import customers
from app.schemas import WhiteSpaceSummaryPublic
from tests import canonical

# White space in SQL: the market less the union of the layer's territories, geodesic km².
_SQL_AREA = """
SELECT coalesce(ST_Area(ST_Difference(m.g, coalesce(u.g, 'POLYGON EMPTY'::geometry))::geography)
                / 1e6, 0)
FROM (SELECT ST_Union(geom) AS g FROM boundaries WHERE level = :level
      AND (:all OR fips = ANY(:fips) OR state_code = ANY(:fips))) m,
     (SELECT ST_Union(t.geom) AS g FROM territories t JOIN layers l ON l.id = t.layer_id
      WHERE l.name = :layer) u
"""
# Customers in the market (border included) that no territory of the layer covers.
_SQL_CUSTOMERS = """
WITH m AS (SELECT ST_Union(geom) AS g FROM boundaries WHERE level = :level
           AND (:all OR fips = ANY(:fips) OR state_code = ANY(:fips)))
SELECT count(*) AS n, coalesce(sum(c.value), 0)::float8 AS value
FROM customers c, m
WHERE ST_Covers(m.g, c.geom)
  AND NOT EXISTS (SELECT 1 FROM territories t JOIN layers l ON l.id = t.layer_id
                  WHERE l.name = :layer AND ST_Covers(t.geom, c.geom))
"""
WEST = {"type": "Polygon", "coordinates": [[[-125, 33], [-117, 33], [-117, 40], [-125, 40],
                                            [-125, 33]]]}  # fmt: skip
NEVADA_STRIP = {"type": "Polygon", "coordinates": [[[-119, 36], [-115, 36], [-115, 38],
                                                    [-119, 38], [-119, 36]]]}  # fmt: skip


def _sql_area(session: Session, layer: str, *, level: str = "state", fips: Any = None) -> float:
    params = {"layer": layer, "level": level, "all": fips is None, "fips": fips or []}
    return float(session.scalar(text(_SQL_AREA), params))


def _sql_customers(
    session: Session, layer: str, *, level: str = "state", fips: Any = None
) -> tuple[int, float]:
    params = {"layer": layer, "level": level, "all": fips is None, "fips": fips or []}
    row = session.execute(text(_SQL_CUSTOMERS), params).one()
    return int(row.n), float(row.value)


# The uncovered customers themselves, of a market given as SQL (one geometry, ``g``): in it,
# border included, and covered by no territory of the layer; with the county (or counties)
# covering each.
_SQL_UNCOVERED = """
WITH m AS ({market})
SELECT c.id, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.value::float8 AS value,
       coalesce((SELECT array_agg(b.fips ORDER BY b.fips) FROM boundaries b
                 WHERE b.level = 'county' AND ST_Covers(b.geom, c.geom)), '{{}}') AS counties
FROM customers c, m
WHERE ST_Covers(m.g, c.geom)
  AND NOT EXISTS (SELECT 1 FROM territories t JOIN layers l ON l.id = t.layer_id
                  WHERE l.name = :layer AND ST_Covers(t.geom, c.geom))
ORDER BY c.id
"""
_NAMED_MARKET = """SELECT ST_Union(geom) AS g FROM boundaries WHERE level = :level
                   AND (fips = ANY(:fips) OR state_code = ANY(:fips))"""
_DRAWN_MARKET = "SELECT ST_SetSRID(ST_GeomFromGeoJSON(:geojson), 4326) AS g"


def _sql_uncovered(session: Session, layer: str, market: str, **params: Any) -> list[Any]:
    rows = session.execute(
        text(_SQL_UNCOVERED.format(market=market)), {"layer": layer, **params}
    ).all()
    session.rollback()
    return list(rows)


def _check_breakdowns(doc: dict[str, Any], uncovered: list[Any]) -> None:
    """The summary, hexagons and counties of a document (all listed) against SQL's customers."""
    summary = doc["summary"]
    assert summary["customers"]["count"] == len(uncovered)
    total = sum(r.value for r in uncovered)
    assert summary["customers"]["value"] == pytest.approx(total, abs=0.01)
    # Hexagons: each uncovered customer in the H3 cell (of the resolution asked) holding it,
    # as the h3 package puts its point; the cells' counts and values add up to the totals.
    hexagons = doc["hexagons"]
    assert hexagons["numberReturned"] == hexagons["numberMatched"]  # all listed
    res = summary["h3_res"]
    cells: dict[str, list[float]] = {}
    for r in uncovered:
        cells.setdefault(h3.latlng_to_cell(r.lat, r.lon, res), []).append(r.value)
    got = {f["id"]: f["properties"] for f in hexagons["features"]}
    assert set(got) == set(cells)
    for cell, values in cells.items():
        assert got[cell]["customers"] == len(values)
        assert got[cell]["value"] == pytest.approx(sum(values), abs=0.01)
    assert sum(p["customers"] for p in got.values()) == len(uncovered)
    assert sum(p["value"] for p in got.values()) == pytest.approx(total, abs=0.01)
    # Counties: each uncovered customer in the one county covering it (none here lies on a
    # county border or outside every county: checked), the counties' counts and values adding
    # up to the totals.
    assert all(len(r.counties) == 1 for r in uncovered)
    per_county: dict[str, list[float]] = {}
    for r in uncovered:
        per_county.setdefault(r.counties[0], []).append(r.value)
    counties = doc["counties"]
    assert counties["numberReturned"] == counties["numberMatched"]
    listed = {f["id"]: f["properties"] for f in counties["features"]}
    assert set(per_county) <= set(listed)
    for fips, props in listed.items():
        values = per_county.get(fips, [])
        assert props["customers"] == len(values), fips
        assert props["value"] == pytest.approx(sum(values), abs=0.01), fips
    assert sum(p["customers"] for p in listed.values()) == len(uncovered)
    assert sum(p["value"] for p in listed.values()) == pytest.approx(total, abs=0.01)


@pytest.fixture
def west(client: TestClient, session: Session) -> TestClient:
    """3,000 demo customers, and a layer 'west' of two overlapping drawn territories."""
    customers.upsert(session, batch=demo.generate(3_000, seed=7))
    session.commit()
    client.post("/layers", json={"name": "west"})
    for geom, name in ((WEST, "West"), (NEVADA_STRIP, "Strip")):
        r = client.post("/layers/west/territories", json=canonical.feature(geom, name=name))
        assert r.status_code == 201, r.text
    return client


def test_area_and_customers_match_postgis(west: TestClient, session: Session) -> None:
    r = west.get("/layers/west/whitespace", params={"states": "CA,NV,OR"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    summary = doc["summary"]
    expected = _sql_area(session, "west", fips=["CA", "NV", "OR"])
    assert summary["uncovered_km2"] == pytest.approx(expected, rel=0.005)
    parts_km2 = sum(f["properties"]["area_km2"] for f in doc["features"])
    assert parts_km2 == pytest.approx(summary["uncovered_km2"])
    market_km2 = summary["market"]["area_km2"]
    assert summary["uncovered_percent"] == pytest.approx(100 * expected / market_km2, rel=0.005)
    count, value = _sql_customers(session, "west", fips=["CA", "NV", "OR"])
    assert count > 0
    assert summary["customers"]["count"] == count
    assert summary["customers"]["value"] == pytest.approx(value, abs=0.01)
    for f in doc["features"]:
        geom = shape(f["geometry"])
        assert geom.is_valid and geom.geom_type == "Polygon"


_SQL_PARTS = """
SELECT count(*) FROM (
  SELECT (ST_Dump(ST_Difference(m.g, u.g))).geom AS g
  FROM (SELECT ST_Union(geom) AS g FROM boundaries WHERE level = 'state') m,
       (SELECT ST_Union(t.geom) AS g FROM territories t JOIN layers l ON l.id = t.layer_id
        WHERE l.name = :layer) u) d
WHERE ST_Area(d.g::geography) >= 1
"""


def test_overlapping_layer_takes_its_territories_at_once(
    client: TestClient, session: Session
) -> None:
    """40 discs and boxes over the west, overlapping much: no union made (the market less all
    of them at once, in strips), and the answer is PostGIS's: area, parts of 1 m² or more,
    customers."""
    customers.upsert(session, batch=demo.generate(3_000, seed=7))
    session.commit()
    client.post("/layers", json={"name": "scatter"})
    rng = np.random.default_rng(3)
    x, y, r = rng.uniform(-122, -108, 40), rng.uniform(33, 45, 40), rng.uniform(0.5, 2.5, 40)
    shapes = np.where(
        rng.random(40) < 0.5,
        shapely.buffer(shapely.points(x, y), r, quad_segs=16),
        shapely.box(x - r, y - r / 2, x + r, y + r / 2),
    )
    for i, geom in enumerate(shapes):
        feature = canonical.feature(shapely.geometry.mapping(geom), name=f"S{i}")
        assert client.post("/layers/scatter/territories", json=feature).status_code == 201
    doc = client.get("/layers/scatter/whitespace", params={"top": 10_000}).json()
    summary = doc["summary"]
    assert summary["union"] == "none"
    assert summary["uncovered_km2"] == pytest.approx(_sql_area(session, "scatter"), rel=1e-4)
    assert summary["parts"] == session.scalar(text(_SQL_PARTS), {"layer": "scatter"}) > 40
    count, value = _sql_customers(session, "scatter")
    assert summary["customers"]["count"] == count > 0
    assert summary["customers"]["value"] == pytest.approx(value, abs=0.01)
    assert all(shape(f["geometry"]).is_valid for f in doc["features"])
    # The county breakdown, county by county (their pieces of white space are cut by Clipper2
    # too): PostGIS's area of each county's part of the white space.
    four = ["UT", "NV", "AZ", "CO"]
    doc = client.get(
        "/layers/scatter/whitespace", params={"states": ",".join(four), "top": 10_000}
    ).json()
    ours = {f["id"]: f["properties"]["uncovered_km2"] for f in doc["counties"]["features"]}
    rows = session.execute(text(_SQL_PER_COUNTY), {"layer": "scatter", "codes": four}).all()
    theirs = {fips: km2 for fips, km2 in rows}
    assert len(theirs) > 60
    for fips, km2 in theirs.items():
        assert ours.get(fips, 0.0) == pytest.approx(km2, rel=0.005, abs=0.01), fips


_SQL_PER_COUNTY = """
WITH m AS (SELECT ST_Union(geom) AS g FROM boundaries WHERE level = 'state'
           AND state_code = ANY(:codes)),
     u AS (SELECT ST_Union(t.geom) AS g FROM territories t JOIN layers l ON l.id = t.layer_id
           WHERE l.name = :layer),
     w AS (SELECT ST_Difference(m.g, u.g) AS g FROM m, u)
SELECT b.fips, ST_Area(ST_Intersection(b.geom, w.g)::geography) / 1e6
FROM boundaries b, w WHERE b.level = 'county' AND b.state_code = ANY(:codes)
"""


def test_nation_market_customers_and_breakdowns_add_up(west: TestClient, session: Session) -> None:
    doc = west.get("/layers/west/whitespace", params={"top": 10_000}).json()
    summary = doc["summary"]
    assert summary["market"]["kind"] == "nation"
    assert summary["uncovered_km2"] == pytest.approx(_sql_area(session, "west"), rel=0.005)
    count, value = _sql_customers(session, "west")
    assert summary["customers"]["count"] == count
    counties = doc["counties"]["features"]
    # Every uncovered customer lies in one county (the market is the states, which the
    # counties tile), so the breakdown adds up to the totals.
    assert sum(f["properties"]["customers"] for f in counties) == count
    assert sum(f["properties"]["value"] for f in counties) == pytest.approx(value, abs=0.01)
    # Not exactly: an edge is a geodesic (as in PostGIS geography), and the county borders
    # cut the drawn territories' long edges (8 degrees along a parallel) into short ones,
    # which follow the parallel more closely than the one long geodesic does.
    assert sum(f["properties"]["uncovered_km2"] for f in counties) == pytest.approx(
        summary["uncovered_km2"], rel=5e-4
    )
    values = [f["properties"]["value"] for f in counties]
    assert values == sorted(values, reverse=True)
    hexagons = doc["hexagons"]["features"]
    assert sum(f["properties"]["customers"] for f in hexagons) == count
    assert [f["properties"]["value"] for f in hexagons] == sorted(
        (f["properties"]["value"] for f in hexagons), reverse=True
    )


def test_counties_layer_leaves_no_white_space_in_the_states(
    client: TestClient, session: Session
) -> None:
    # A state first: its counties alone are united (no union of the layer is kept yet).
    state = client.get("/layers/counties/whitespace", params={"states": "CA"}).json()
    assert _sql_area(session, "counties", fips=["CA"]) == 0.0
    assert state["summary"]["uncovered_km2"] == 0.0 and state["features"] == []
    doc = client.get("/layers/counties/whitespace").json()
    expected = _sql_area(session, "counties")
    # The 2017 cartographic files tile every state with its counties exactly: PostGIS finds
    # 0 km² too (not a sliver left), and so do we.
    assert expected == 0.0
    assert doc["summary"]["uncovered_km2"] == 0.0
    assert doc["features"] == []
    assert doc["counties"]["features"] == []


def test_counties_left_out_of_a_state_are_reported(client: TestClient, session: Session) -> None:
    left_out = {"06003", "06091", "06105"}  # Alpine, Sierra, Trinity
    fips = session.scalars(
        text("SELECT fips FROM boundaries WHERE level = 'county' AND state_code = 'CA'")
    ).all()
    client.post("/layers", json={"name": "ca-partial"})
    kept = sorted(set(fips) - left_out)
    r = client.post("/layers/ca-partial/territories", json={"name": "CA", "counties": kept})
    assert r.status_code == 201, r.text
    doc = client.get("/layers/ca-partial/whitespace", params={"states": "CA"}).json()
    found = {f["id"]: f["properties"]["uncovered_km2"] for f in doc["counties"]["features"]}
    assert set(found) == left_out
    areas = dict(
        session.execute(
            text(
                "SELECT fips, ST_Area(geom::geography) / 1e6 FROM boundaries WHERE fips = ANY(:f)"
            ),
            {"f": sorted(left_out)},
        ).all()
    )
    for code, km2 in found.items():
        assert km2 == pytest.approx(areas[code], rel=0.005)
    expected = _sql_area(session, "ca-partial", fips=["CA"])
    assert doc["summary"]["uncovered_km2"] == pytest.approx(expected, rel=0.005)
    assert doc["summary"]["uncovered_km2"] == pytest.approx(sum(areas.values()), rel=0.005)


def test_counties_market(west: TestClient, session: Session) -> None:
    doc = west.get("/layers/west/whitespace", params={"counties": "32001,06001"}).json()
    expected = _sql_area(session, "west", level="county", fips=["32001", "06001"])
    assert doc["summary"]["market"] == {
        "kind": "counties",
        "codes": ["32001", "06001"],
        "area_km2": pytest.approx(doc["summary"]["market"]["area_km2"]),
    }
    assert doc["summary"]["uncovered_km2"] == pytest.approx(expected, rel=0.005)


def test_hexagons_are_lon_lat_cells_holding_their_customers(west: TestClient) -> None:
    doc = west.get("/layers/west/whitespace", params={"states": "NV", "h3_res": 6}).json()
    hexagons = doc["hexagons"]["features"]
    assert hexagons
    for f in hexagons:
        cell = f["id"]
        assert h3.is_valid_cell(cell) and h3.get_resolution(cell) == 6
        geom = shape(f["geometry"])
        assert geom.is_valid and geom.geom_type == "Polygon"
        lon, lat = shapely.get_coordinates(geom).T
        assert (lon > -121).all() and (lon < -113).all()  # Nevada: lon first, not lat
        assert (lat > 34).all() and (lat < 43).all()
        # The cell's centre, as h3 gives it (lat, lng), lies inside the polygon drawn lon/lat.
        c_lat, c_lon = h3.cell_to_latlng(cell)
        assert geom.contains(shapely.Point(c_lon, c_lat))


def test_drawn_market_post(west: TestClient, session: Session) -> None:
    square = {"type": "Polygon", "coordinates": [[[-121, 35], [-113, 35], [-113, 41],
                                                  [-121, 41], [-121, 35]]]}  # fmt: skip
    feature = {"type": "Feature", "geometry": square, "properties": {}}
    by_geometry = west.post("/layers/west/whitespace", json=square)
    by_feature = west.post("/layers/west/whitespace", json=feature)
    assert by_geometry.status_code == by_feature.status_code == 200, by_geometry.text
    assert by_feature.headers["x-cache"] == "hit"  # the same market, told two ways
    expected = session.scalar(
        text(
            "SELECT ST_Area(ST_Difference(ST_GeomFromGeoJSON(:m), ST_Union(t.geom))::geography)"
            " / 1e6 FROM territories t JOIN layers l ON l.id = t.layer_id WHERE l.name = 'west'"
        ),
        {"m": str(square).replace("'", '"')},
    )
    assert by_geometry.json()["summary"]["uncovered_km2"] == pytest.approx(expected, rel=0.005)
    assert by_geometry.json()["summary"]["market"]["kind"] == "geometry"


def test_unknown_codes_are_named(client: TestClient) -> None:
    r = client.get("/layers/counties/whitespace", params={"states": "CA,XX,ZZ"})
    assert r.status_code == 422
    problem = r.json()
    assert "XX" in problem["detail"]
    assert {e["field"] for e in problem["errors"]} == {"states[1]", "states[2]"}
    r = client.get("/layers/counties/whitespace", params={"counties": "06001,99999"})
    assert r.status_code == 422
    assert "99999" in r.json()["detail"]
    assert r.json()["field"] == "counties[1]"


def test_bad_requests(client: TestClient) -> None:
    r = client.get("/layers/counties/whitespace", params={"market": "nation", "states": "CA"})
    assert r.status_code == 422 and r.json()["field"] == "states"
    assert client.get("/layers/nope/whitespace").status_code == 404
    r = client.get("/layers/counties/whitespace", params={"h3_res": 16})
    assert r.status_code == 422
    r = client.post("/layers/counties/whitespace", json=canonical.BOWTIE)
    assert r.status_code == 422 and r.json()["location"]["type"] == "Point"
    point = {"type": "Point", "coordinates": [0, 0]}
    assert client.post("/layers/counties/whitespace", json=point).status_code == 422


def test_repeat_is_kept_until_the_layer_or_customers_change(
    west: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = {"states": "CA,NV"}
    first = west.get("/layers/west/whitespace", params=params)
    assert first.headers["x-cache"] == "miss"
    started = time.perf_counter()
    again = west.get("/layers/west/whitespace", params=params)
    elapsed = time.perf_counter() - started
    assert again.headers["x-cache"] == "hit"
    assert again.content == first.content
    assert elapsed < 0.05
    # A customer written: the answer is worked out again.
    west.post("/customers", json=[{"external_id": "sea-1", "lon": -120.5, "lat": 41.5}])
    moved = west.get("/layers/west/whitespace", params=params)
    assert moved.headers["x-cache"] == "miss"
    assert moved.json()["summary"]["customers"]["count"] == (
        first.json()["summary"]["customers"]["count"] + 1
    )
    # The same customer moved out of the market: seen at the next full check of the
    # customers (made at once here, instead of within CUSTOMERS_RECHECK_S).
    monkeypatch.setattr(whitespace_service, "CUSTOMERS_RECHECK_S", 0.0)
    west.post("/customers", json=[{"external_id": "sea-1", "lon": -140.0, "lat": 30.0}])
    back = west.get("/layers/west/whitespace", params=params)
    assert back.headers["x-cache"] == "miss"
    assert back.json()["summary"]["customers"] == first.json()["summary"]["customers"]
    # A territory added: a new layer version, a new answer.
    box = {"type": "Polygon", "coordinates": [[[-124, 40], [-119, 40], [-119, 42.1],
                                               [-124, 42.1], [-124, 40]]]}  # fmt: skip
    west.post("/layers/west/territories", json=canonical.feature(box, name="North"))
    after = west.get("/layers/west/whitespace", params=params)
    assert after.headers["x-cache"] == "miss"
    assert after.json()["summary"]["uncovered_km2"] == pytest.approx(
        _sql_area(session, "west", fips=["CA", "NV"]), rel=0.005
    )
    assert after.json()["summary"]["uncovered_km2"] < first.json()["summary"]["uncovered_km2"]


def test_the_union_follows_edits_without_being_made_anew(
    client: TestClient, session: Session
) -> None:
    client.post("/layers", json={"name": "grid"})
    ids = []
    for i in range(12):
        x, y = -120 + i % 4, 36 + i // 4
        ring = [[x, y], [x + 0.9, y], [x + 0.9, y + 0.9], [x, y + 0.9], [x, y]]
        feature = canonical.feature({"type": "Polygon", "coordinates": [ring]}, name=f"B{i}")
        ids.append(client.post("/layers/grid/territories", json=feature).json()["id"])
    url, params = "/layers/grid/whitespace", {"states": "NV,CA"}

    def check(how: str) -> None:
        summary = client.get(url, params=params).json()["summary"]
        assert summary["union"] == how
        expected = _sql_area(session, "grid", fips=["NV", "CA"])
        assert summary["uncovered_km2"] == pytest.approx(expected, rel=0.005)

    check("built")
    # Over a strip of its east neighbour: a layer that overlaps little keeps its union.
    bigger = [[-119, 37], [-117.95, 37], [-117.95, 37.9], [-119, 37.9], [-119, 37]]
    r = client.patch(
        f"/layers/grid/territories/{ids[5]}",
        json={"geometry": {"type": "Polygon", "coordinates": [bigger]}},
    )
    assert r.status_code == 200, r.text
    check("updated")
    assert client.delete(f"/layers/grid/territories/{ids[0]}").status_code == 204
    check("updated")
    client.patch(f"/layers/grid/territories/{ids[1]}", json={"owner": "Someone"})
    check("updated")  # a new version, the same shapes: the union is taken as it was


def test_documented_in_openapi(client: TestClient) -> None:
    path = client.get("/openapi.json").json()["paths"]["/layers/{layer}/whitespace"]
    for method in ("get", "post"):
        assert "application/geo+json" in path[method]["responses"]["200"]["content"]
    assert {p["name"] for p in path["get"]["parameters"]} >= {"market", "states", "counties"}


def test_every_summary_member_is_documented(west: TestClient) -> None:
    summary = west.get("/layers/west/whitespace", params={"states": "NV"}).json()["summary"]
    assert set(summary) <= set(WhiteSpaceSummaryPublic.model_fields)
    assert summary["union"] in {"kept", "updated", "built", "local", "none"}


def test_layer_kept_assigned_reads_only_the_customers_it_may_leave_uncovered(
    west: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert west.post("/layers/west/assign").status_code == 200
    layer_id = session.scalar(text("SELECT id FROM layers WHERE name = 'west'"))
    west_id = session.scalar(
        text("SELECT id FROM territories WHERE layer_id = :l AND name = 'West'"), {"l": layer_id}
    )
    # A customer in Oregon (no territory covers it) pinned to West: still white space.
    oregon = session.scalar(
        text("SELECT id FROM customers WHERE ST_Y(geom) > 43 AND ST_X(geom) < -118 LIMIT 1")
    )
    r = west.put(f"/layers/west/pins/{oregon}", json={"territory_id": west_id})
    assert r.is_success, r.text
    read: list[int | None] = []
    real = whitespace_service.repo.customer_values

    def spy(session: Session, *, uncovered_in: int | None = None) -> Any:
        found = real(session, uncovered_in=uncovered_in)
        read.append(found[0].size if uncovered_in is not None else None)
        return found

    monkeypatch.setattr(whitespace_service.repo, "customer_values", spy)
    params = {"states": "CA,NV,OR", "top": 10_000}
    doc = west.get("/layers/west/whitespace", params=params).json()
    count, value = _sql_customers(session, "west", fips=["CA", "NV", "OR"])
    assert doc["summary"]["customers"]["count"] == count
    assert doc["summary"]["customers"]["value"] == pytest.approx(value, abs=0.01)
    total = session.scalar(text("SELECT count(*) FROM customers"))
    assert read and read[0] is not None and read[0] < total  # candidates only, not everyone
    # A customer added afterwards is assigned as it is written: still right.
    west.post("/customers", json=[{"external_id": "or-1", "lon": -121.0, "lat": 44.0}])
    after = west.get("/layers/west/whitespace", params=params).json()
    assert after["summary"]["customers"]["count"] == count + 1
    assert sum(f["properties"]["customers"] for f in after["counties"]["features"]) == count + 1


def test_a_reload_of_the_boundaries_is_seen_without_a_restart(
    west: TestClient, session: Session
) -> None:
    params = {"states": "NV"}
    before = west.get("/layers/west/whitespace", params=params).json()["summary"]
    original = session.scalar(text("SELECT ST_AsBinary(geom) FROM boundaries WHERE fips = '32'"))
    try:
        # Nevada reloaded smaller (a box in its south): the market follows at the next ask.
        session.execute(
            text(
                "UPDATE boundaries SET geom = ST_Multi(ST_MakeEnvelope(-117, 36, -115, 37, 4326))"
                " WHERE fips = '32'"
            )
        )
        session.commit()
        after = west.get("/layers/west/whitespace", params=params).json()["summary"]
        assert after["market"]["area_km2"] < before["market"]["area_km2"] / 10
        assert after["uncovered_km2"] == pytest.approx(
            _sql_area(session, "west", fips=["NV"]), rel=0.005
        )
    finally:
        session.execute(
            text("UPDATE boundaries SET geom = ST_GeomFromWKB(:w, 4326) WHERE fips = '32'"),
            {"w": bytes(original)},
        )
        session.commit()
    again = west.get("/layers/west/whitespace", params=params).json()["summary"]
    assert again["market"]["area_km2"] == pytest.approx(before["market"]["area_km2"])


def test_counties_market_customers_match_postgis(west: TestClient, session: Session) -> None:
    # Clark, NV (the Strip's east edge, -115, crosses Las Vegas), Shasta, CA and Multnomah, OR
    # (north of both territories) and San Francisco (inside West: nothing uncovered).
    codes = ["32003", "06089", "41051", "06075"]
    r = west.get("/layers/west/whitespace", params={"counties": ",".join(codes), "top": 10_000})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["summary"]["market"]["kind"] == "counties"
    uncovered = _sql_uncovered(session, "west", _NAMED_MARKET, level="county", fips=codes)
    count, value = _sql_customers(session, "west", level="county", fips=codes)
    assert (len(uncovered), sum(r.value for r in uncovered)) == (count, pytest.approx(value))
    in_market = {r.counties[0] for r in uncovered}
    assert {"32003", "06089", "41051"} <= in_market and "06075" not in in_market
    everyone = session.scalar(
        text(
            "SELECT count(*) FROM customers c JOIN boundaries b ON ST_Covers(b.geom, c.geom) "
            "WHERE b.level = 'county' AND b.fips = '32003'"
        )
    )
    # Clark's customers are partly covered (by the Strip), partly not.
    assert 0 < sum(r.counties[0] == "32003" for r in uncovered) < everyone
    _check_breakdowns(doc, uncovered)


def test_drawn_market_customers_match_postgis(west: TestClient, session: Session) -> None:
    # Two boxes: one around Las Vegas, astride the Strip's east edge (-115); one around
    # Portland, OR, which no territory reaches.
    market = {"type": "MultiPolygon", "coordinates": [
        [[[-115.5, 35.8], [-114.5, 35.8], [-114.5, 36.5], [-115.5, 36.5], [-115.5, 35.8]]],
        [[[-123.0, 45.0], [-122.0, 45.0], [-122.0, 46.0], [-123.0, 46.0], [-123.0, 45.0]]],
    ]}  # fmt: skip
    # Customers on the borders: the market's (in it, uncovered) and the Strip's (covered).
    on_borders = [
        {"external_id": "edge-market", "lon": -114.5, "lat": 36.1, "value": 123.45},
        {"external_id": "edge-strip", "lon": -115.0, "lat": 36.2, "value": 678.9},
    ]
    assert west.post("/customers", json=on_borders).status_code == 200
    r = west.post("/layers/west/whitespace", json=market, params={"top": 10_000, "h3_res": 7})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["summary"]["market"]["kind"] == "geometry"
    assert doc["summary"]["h3_res"] == 7
    uncovered = _sql_uncovered(session, "west", _DRAWN_MARKET, geojson=json.dumps(market))
    ids = {
        e: session.scalar(text("SELECT id FROM customers WHERE external_id = :e"), {"e": e})
        for e in ("edge-market", "edge-strip")
    }
    session.rollback()
    assert ids["edge-market"] in {r.id for r in uncovered}
    assert ids["edge-strip"] not in {r.id for r in uncovered}
    # Both boxes hold uncovered customers.
    assert any(r.lon > -116 for r in uncovered) and any(r.lon < -121 for r in uncovered)
    _check_breakdowns(doc, uncovered)
    # The same market as a Feature: the same answer.
    feature = west.post(
        "/layers/west/whitespace",
        json={"type": "Feature", "geometry": market, "properties": {}},
        params={"top": 10_000, "h3_res": 7},
    )
    assert feature.json()["summary"]["customers"] == doc["summary"]["customers"]


def test_nation_market_breakdowns_match_postgis(west: TestClient, session: Session) -> None:
    doc = west.get("/layers/west/whitespace", params={"top": 10_000, "h3_res": 4}).json()
    nation = "SELECT ST_Union(geom) AS g FROM boundaries WHERE level = 'state'"
    _check_breakdowns(doc, _sql_uncovered(session, "west", nation))
