"""GET /layers/{layer}/overlaps and ?dry_run=true, checked against PostGIS."""

from __future__ import annotations

from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import demo
from app.repositories import customers
from tests import canonical

LAYER = "west"
BASE = f"/layers/{LAYER}/territories"
# A drawn polygon over eastern Nevada and western Utah (the border is at -114.04).
OVER_NV_UT = {
    "type": "Polygon",
    "coordinates": [[[-116, 38], [-112, 38], [-112, 41], [-116, 41], [-116, 38]]],
}
SIERRA_COUNTIES = ["06003", "06017", "06057"]  # Alpine, El Dorado, Nevada (CA)


def _layer_id(session: Session, name: str) -> int:
    found = session.scalar(text("SELECT id FROM layers WHERE name = :n"), {"n": name})
    session.rollback()
    return int(found)


def _postgis_overlaps(session: Session, layer: str) -> dict[tuple[int, int], float]:
    """Every pair overlapping by >= 0.01 km², by a plain PostGIS self-join (km²)."""
    rows = session.execute(
        text(
            "SELECT a.id AS a, b.id AS b, "
            "ST_Area(ST_Intersection(a.geom, b.geom)::geography) / 1e6 AS km2 "
            "FROM territories a JOIN territories b "
            "ON b.layer_id = a.layer_id AND a.id < b.id AND ST_Intersects(a.geom, b.geom) "
            "WHERE a.layer_id = (SELECT id FROM layers WHERE name = :layer)"
        ),
        {"layer": layer},
    ).all()
    session.rollback()
    return {(r.a, r.b): r.km2 for r in rows if r.km2 >= 0.01}


def _contested_sql(session: Session, a: int, b: int) -> tuple[int, float, list[int]]:
    """Customers both territories cover, in plain SQL (no bbox tricks)."""
    row = session.execute(
        text(
            "SELECT count(*) AS n, coalesce(sum(c.value), 0) AS v, "
            "coalesce(array_agg(c.id ORDER BY c.id), '{}') AS ids "
            "FROM customers c, territories ta, territories tb "
            "WHERE ta.id = :a AND tb.id = :b "
            "AND ST_Covers(ta.geom, c.geom) AND ST_Covers(tb.geom, c.geom)"
        ),
        {"a": a, "b": b},
    ).one()
    session.rollback()
    return int(row.n), float(row.v), list(row.ids)


def _pairs(body: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(f["properties"]["a"]["id"], f["properties"]["b"]["id"]): f for f in body["features"]}


@pytest.fixture
def west(client: TestClient, session: Session) -> dict[str, int]:
    """Layer "west": CA, NV, OR, a drawn polygon over NV/UT (exclusive) and Sierra (CA + NV)."""
    customers.upsert(session, batch=demo.generate(3_000, seed=23))
    session.commit()
    client.post(
        "/customers",
        json=[
            {"external_id": "in-nv-ut", "lon": -115.0, "lat": 39.5, "value": 1000},  # NV only
            {"external_id": "in-ut", "lon": -113.0, "lat": 39.5, "value": 7},  # UT: drawn only
        ],
    )
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    ids = {}
    for name, body in (
        ("CA", {"name": "CA", "states": ["CA"]}),
        ("NV", {"name": "NV", "states": ["NV"], "owner": "Nevada team"}),
        ("OR", {"name": "OR", "states": ["OR"]}),
        ("drawn", canonical.feature(OVER_NV_UT, name="drawn", owner="Acme", exclusive=True)),
        ("Sierra", {"name": "Sierra", "counties": SIERRA_COUNTIES, "states": ["NV"]}),
    ):
        response = client.post(BASE, json=body)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


def _interior_overlaps_sql(session: Session, layer: str) -> dict[tuple[str, str], float]:
    """Pairs (by code) whose interiors meet, with the overlap's area (km²), by PostGIS alone."""
    rows = session.execute(
        text(
            "SELECT a.code AS a, b.code AS b, "
            "ST_Area(ST_Intersection(a.geom, b.geom)::geography) / 1e6 AS km2 "
            "FROM territories a JOIN territories b "
            "ON b.layer_id = a.layer_id AND a.id < b.id AND a.geom && b.geom "
            "WHERE a.layer_id = (SELECT id FROM layers WHERE name = :layer) "
            "AND ST_Relate(a.geom, b.geom, '2********')"
        ),
        {"layer": layer},
    ).all()
    session.rollback()
    return {(r.a, r.b): r.km2 for r in rows}


def test_the_reference_layers_are_nearly_clean_coverages(
    client: TestClient, session: Session
) -> None:
    """States: no overlap. Counties: one flaw of the source, at a Louisiana triple point."""
    assert client.get("/layers/states/overlaps").json()["features"] == []
    assert _interior_overlaps_sql(session, "states") == {}
    response = client.get("/layers/counties/overlaps")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    found = {
        (f["properties"]["a"]["name"], f["properties"]["b"]["name"]): f["properties"]["area_km2"]
        for f in body["features"]
    }
    # Verified independently: 8 county pairs share interior points in the source (us-atlas),
    # 5 of them by less than the 0.01 km² tolerance (0.0026 km² near Alameda / San Joaquin /
    # Santa Clara, 0 around Petersburg VA); Morehouse, Ouachita and Richland parishes (LA) all
    # cover the same 0.31 km² triangle.
    truth = _interior_overlaps_sql(session, "counties")
    assert len(truth) == 8
    big = {pair: km2 for pair, km2 in truth.items() if km2 >= 0.01}
    assert set(big) == {("22067", "22073"), ("22067", "22083"), ("22073", "22083")}
    assert set(found) == {
        ("Morehouse", "Ouachita"),
        ("Morehouse", "Richland"),
        ("Ouachita", "Richland"),
    }
    for km2 in found.values():
        assert km2 == pytest.approx(big[("22067", "22073")], rel=1e-4)
    tiny = client.get("/layers/counties/overlaps?min_area_km2=0.001").json()["features"]
    assert len(tiny) == 6  # the three Californian pairs too
    assert client.get("/layers/counties/overlaps?min_area_km2=0.5").json()["features"] == []


def test_the_expected_pairs_and_areas(
    west: dict[str, int], client: TestClient, session: Session
) -> None:
    body = client.get(f"/layers/{LAYER}/overlaps").json()
    found = _pairs(body)
    ca, nv, drawn, sierra = west["CA"], west["NV"], west["drawn"], west["Sierra"]
    expected = {
        tuple(sorted(p)) for p in [(nv, drawn), (ca, sierra), (nv, sierra), (drawn, sierra)]
    }
    assert set(found) == expected  # CA/NV/OR only touch: no pair
    assert body["numberMatched"] == body["numberReturned"] == 4
    truth = _postgis_overlaps(session, LAYER)
    assert set(truth) == expected
    for pair, km2 in truth.items():
        assert found[pair]["properties"]["area_km2"] == pytest.approx(km2, rel=5e-3)
        assert found[pair]["properties"]["area_km2"] == pytest.approx(km2, rel=1e-4)
    # Sierra holds all of Nevada: 100% of NV; the drawn polygon's overlap is its NV part.
    nv_sierra = found[tuple(sorted((nv, sierra)))]["properties"]
    assert nv_sierra["percent_a" if nv < sierra else "percent_b"] == pytest.approx(100)
    overlap = shape(found[tuple(sorted((nv, drawn)))]["geometry"])
    assert overlap.is_valid and overlap.bounds[2] == pytest.approx(-114.04, abs=0.02)
    assert shapely.is_ccw(shapely.get_exterior_ring(shapely.get_parts(overlap)[0]))


def test_severity_and_territory_fields(west: dict[str, int], client: TestClient) -> None:
    found = _pairs(client.get(f"/layers/{LAYER}/overlaps").json())
    for (a, b), feature in found.items():
        props = feature["properties"]
        exclusive = west["drawn"] in (a, b)
        assert props["severity"] == ("conflict" if exclusive else "shared")
        assert feature["id"] == f"{a}-{b}" and a < b
    props = found[tuple(sorted((west["NV"], west["drawn"])))]["properties"]
    sides = {props["a"]["name"]: props["a"], props["b"]["name"]: props["b"]}
    assert sides["NV"] == {
        "id": west["NV"],
        "name": "NV",
        "owner": "Nevada team",
        "exclusive": False,
    }
    assert sides["drawn"]["exclusive"] is True and sides["drawn"]["owner"] == "Acme"


def test_pages_follow_the_next_links(west: dict[str, int], client: TestClient) -> None:
    whole = client.get(f"/layers/{LAYER}/overlaps?details=true").json()
    assert [link["rel"] for link in whole["links"]] == ["self"]  # 4 pairs, one page of 1000
    url: str | None = f"/layers/{LAYER}/overlaps?details=true&limit=3"
    pages = []
    while url:
        page = client.get(url).json()
        assert page["numberMatched"] == 4 and page["numberReturned"] == len(page["features"])
        pages.append(page)
        url = next((x["href"] for x in page["links"] if x["rel"] == "next"), None)
    assert [p["numberReturned"] for p in pages] == [3, 1]
    assert [f for p in pages for f in p["features"]] == whole["features"]  # same order, whole
    assert pages[1]["links"][-1]["rel"] == "prev"
    past = client.get(f"/layers/{LAYER}/overlaps?offset=10").json()
    assert past["features"] == [] and past["numberMatched"] == 4
    assert client.get(f"/layers/{LAYER}/overlaps?limit=0").status_code == 422
    assert client.get(f"/layers/{LAYER}/overlaps?limit=10001").status_code == 422


def test_severity_filter(west: dict[str, int], client: TestClient) -> None:
    conflicts = client.get(f"/layers/{LAYER}/overlaps?severity=conflict").json()
    shared = client.get(f"/layers/{LAYER}/overlaps?severity=shared&limit=1").json()
    drawn = west["drawn"]
    assert conflicts["numberMatched"] == 2  # the exclusive drawn polygon with NV and Sierra
    assert all(drawn in (f["properties"]["a"]["id"], f["properties"]["b"]["id"])
               for f in conflicts["features"])  # fmt: skip
    assert shared["numberMatched"] == 2 and shared["numberReturned"] == 1
    assert shared["features"][0]["properties"]["severity"] == "shared"
    bad = client.get(f"/layers/{LAYER}/overlaps?severity=minor")
    assert bad.status_code == 422 and "severity" in bad.text


def test_an_edit_is_seen_at_once(west: dict[str, int], client: TestClient) -> None:
    """The pairs are kept per layer version: the next request after an edit finds them anew."""
    assert client.get(f"/layers/{LAYER}/overlaps").json()["numberMatched"] == 4
    assert client.patch(f"{BASE}/{west['drawn']}", json={"exclusive": False}).status_code == 200
    body = client.get(f"/layers/{LAYER}/overlaps?severity=conflict").json()
    assert body["numberMatched"] == 0
    assert client.delete(f"{BASE}/{west['Sierra']}").status_code == 204
    assert client.get(f"/layers/{LAYER}/overlaps").json()["numberMatched"] == 1


def test_contested_customers_equal_sql(
    west: dict[str, int], client: TestClient, session: Session
) -> None:
    plain = _pairs(client.get(f"/layers/{LAYER}/overlaps").json())
    detailed = _pairs(client.get(f"/layers/{LAYER}/overlaps?details=true").json())
    assert any(f["properties"]["contested"]["count"] > 10 for f in plain.values())
    for (a, b), feature in detailed.items():
        count, value, ids = _contested_sql(session, a, b)
        contested = feature["properties"]["contested"]
        assert contested == {"count": count, "value": pytest.approx(value), "customer_ids": ids}
        assert plain[(a, b)]["properties"]["contested"] == {
            "count": count,
            "value": pytest.approx(value),
        }
    # The customer placed in eastern Nevada is contested by NV, drawn and Sierra.
    placed = session.scalar(text("SELECT id FROM customers WHERE external_id = 'in-nv-ut'"))
    session.rollback()
    nv_drawn = detailed[tuple(sorted((west["NV"], west["drawn"])))]["properties"]["contested"]
    assert placed in nv_drawn["customer_ids"]


def test_one_territory_s_overlaps(west: dict[str, int], client: TestClient) -> None:
    every = _pairs(client.get(f"/layers/{LAYER}/overlaps").json())
    drawn = west["drawn"]
    response = client.get(f"{BASE}/{drawn}/overlaps?details=true")
    assert response.status_code == 200, response.text
    mine = _pairs(response.json())
    assert set(mine) == {p for p in every if drawn in p}
    for pair, feature in mine.items():
        assert feature["properties"]["area_km2"] == every[pair]["properties"]["area_km2"]
    assert _pairs(client.get(f"{BASE}/{west['OR']}/overlaps").json()) == {}


def test_min_area(west: dict[str, int], client: TestClient) -> None:
    body = client.get(f"/layers/{LAYER}/overlaps?min_area_km2=1000000").json()
    assert body["features"] == [] and body["min_area_km2"] == 1_000_000
    smallest = min(
        f["properties"]["area_km2"]
        for f in client.get(f"/layers/{LAYER}/overlaps").json()["features"]
    )
    fewer = client.get(f"/layers/{LAYER}/overlaps?min_area_km2={smallest * 1.001}").json()
    assert len(fewer["features"]) == 3
    bad = client.get(f"/layers/{LAYER}/overlaps?min_area_km2=-1")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


def test_unknown_layer_or_territory_is_404(west: dict[str, int], client: TestClient) -> None:
    for url in (
        "/layers/nope/overlaps",
        "/layers/nope/territories/1/overlaps",
        f"{BASE}/999999999/overlaps",
        f"/layers/states/territories/{west['CA']}/overlaps",  # not in that layer
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.headers["content-type"] == "application/problem+json"


def _snapshot(session: Session) -> list[Any]:
    rows = session.execute(
        text(
            "SELECT t.id, t.name, t.exclusive, ST_AsBinary(t.geom) AS wkb, t.updated_at "
            "FROM territories t JOIN layers l ON l.id = t.layer_id WHERE l.name = :n ORDER BY t.id"
        ),
        {"n": LAYER},
    ).all()
    layer = session.scalar(text("SELECT updated_at FROM layers WHERE name = :n"), {"n": LAYER})
    session.rollback()
    return [[tuple(r) for r in rows], layer]


def test_dry_run_reports_and_saves_nothing(
    west: dict[str, int], client: TestClient, session: Session
) -> None:
    before = _snapshot(session)
    pairs_before = _pairs(client.get(f"/layers/{LAYER}/overlaps").json()).keys()
    # A new territory over southern Oregon, northern Nevada and a corner of California.
    square = {
        "type": "Polygon",
        "coordinates": [[[-121, 41.5], [-117, 41.5], [-117, 43], [-121, 43], [-121, 41.5]]],
    }
    response = client.post(f"{BASE}?dry_run=true", json=canonical.feature(square, name="new"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    names = {
        frozenset((f["properties"]["a"]["name"], f["properties"]["b"]["name"]))
        for f in body["features"]
    }
    assert names == {frozenset(("new", other)) for other in ("CA", "OR", "NV", "Sierra")}
    assert _snapshot(session) == before
    # Reshaping OR onto Nevada (PUT) and moving the drawn polygon into Utah (PATCH): the overlaps
    # they would have, and nothing changes.
    put = client.put(
        f"{BASE}/{west['OR']}?dry_run=true", json={"name": "OR", "states": ["OR", "NV"]}
    )
    assert put.status_code == 200, put.text
    assert set(_pairs(put.json())) == {
        tuple(sorted((west["OR"], west[other]))) for other in ("NV", "drawn", "Sierra")
    }
    utah = {
        "type": "Polygon",
        "coordinates": [[[-113.5, 38], [-112, 38], [-112, 41], [-113.5, 41], [-113.5, 38]]],
    }
    patch = client.patch(f"{BASE}/{west['drawn']}?dry_run=true", json={"geometry": utah})
    assert patch.status_code == 200 and patch.json()["features"] == []
    assert _snapshot(session) == before
    assert _pairs(client.get(f"/layers/{LAYER}/overlaps").json()).keys() == pairs_before
    # Without dry_run the same PATCH is saved, and the overlaps follow.
    assert client.patch(f"{BASE}/{west['drawn']}", json={"geometry": utah}).status_code == 200
    after = _pairs(client.get(f"/layers/{LAYER}/overlaps").json())
    assert all(west["drawn"] not in pair for pair in after)


def test_dry_run_still_validates(west: dict[str, int], client: TestClient) -> None:
    bow = client.post(f"{BASE}?dry_run=true", json=canonical.feature(canonical.BOWTIE, name="b"))
    assert bow.status_code == 422
    missing = client.patch(f"{BASE}/999999999?dry_run=true", json={"name": "x"})
    assert missing.status_code == 404


def test_documented_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/layers/{layer}/overlaps", "/layers/{layer}/territories/{territory_id}/overlaps"):
        operation = spec["paths"][path]["get"]
        assert {"min_area_km2", "details"} <= {p["name"] for p in operation["parameters"]}
        assert {"200", "404", "422"} <= set(operation["responses"])
    assert "OverlapCollectionPublic" in spec["components"]["schemas"]
    territories = spec["paths"]["/layers/{layer}/territories/{territory_id}"]
    for operation in (spec["paths"]["/layers/{layer}/territories"]["post"], territories["put"]):
        assert "dry_run" in {p["name"] for p in operation["parameters"]}
    assert "dry_run" in {p["name"] for p in territories["patch"]["parameters"]}
    # A dry run answers the overlaps (200), a real write the territory: both are documented.
    created = spec["paths"]["/layers/{layer}/territories"]["post"]["responses"]
    assert _schema_refs(created["201"]) == {"FeaturePublic"}
    assert _schema_refs(created["200"]) == {"OverlapCollectionPublic"}
    for operation in (territories["put"], territories["patch"]):
        assert _schema_refs(operation["responses"]["200"]) == {
            "FeaturePublic",
            "OverlapCollectionPublic",
        }
    layer_params = spec["paths"]["/layers/{layer}/overlaps"]["get"]["parameters"]
    assert {"limit", "offset", "severity"} <= {p["name"] for p in layer_params}


def _schema_refs(response: dict[str, Any]) -> set[str]:
    schema = response["content"]["application/geo+json"]["schema"]
    refs = [s["$ref"] for s in schema.get("anyOf", [schema])]
    return {ref.rsplit("/", 1)[1] for ref in refs}


def test_same_answer_with_or_without_a_held_index(west: dict[str, int], client: TestClient) -> None:
    url = f"/layers/{LAYER}/overlaps?details=true"
    read = client.get(url).json()  # no index held yet: the territories are read
    assert client.get(f"/lookup?lon=-115&lat=39.5&layer={LAYER}").status_code == 200
    assert client.app.state.indexes.held(LAYER) is not None  # type: ignore[attr-defined]
    assert client.get(url).json() == read


def test_an_empty_layer_has_no_overlaps(client: TestClient) -> None:
    assert client.post("/layers", json={"name": "empty"}).status_code == 201
    body = client.get("/layers/empty/overlaps").json()
    assert body["features"] == [] and body["numberMatched"] == 0
    client.post("/layers/empty/territories", json={"name": "CA", "states": ["CA"]})
    assert client.get("/layers/empty/overlaps").json()["features"] == []
