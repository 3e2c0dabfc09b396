"""GET /layers/{layer}/validate: a layer's located problems, checked against PostGIS."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests import canonical

LAYER = "health"
URL = f"/layers/{LAYER}/validate"
_GEOD = Geod(ellps="WGS84")
# A lake in the middle of a square, and a square with an island five times smaller.
ISLANDS = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[20, 0], [22, 0], [22, 2], [20, 2], [20, 0]]],
        [[[23, 0], [23.5, 0], [23.5, 0.5], [23, 0.5], [23, 0]]],
    ],
}


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _post(client: TestClient, geometry: dict[str, Any], name: str) -> int:
    response = client.post(
        f"/layers/{LAYER}/territories", json=canonical.feature(geometry, name=name)
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _insert(session: Session, name: str, wkt: str) -> int:
    """A territory written by SQL, bypassing the API's validation."""
    tid = session.scalar(
        text(
            "INSERT INTO territories (layer_id, name, geom) "
            "SELECT id, :name, ST_GeomFromText(:wkt, 4326) FROM layers WHERE name = :layer "
            "RETURNING id"
        ),
        {"name": name, "wkt": wkt, "layer": LAYER},
    )
    session.commit()
    return int(tid)


@pytest.fixture
def layer(client: TestClient, session: Session) -> dict[str, int]:
    """Two squares 100 m apart at 40.25° N, a lake, islands, a bow tie and an empty shape."""
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    east_edge = _GEOD.fwd(-99.5, 40.25, 90, 100.0)[0]
    return {
        "west": _post(client, _box(-100, 40, -99.5, 40.5), "West"),
        "east": _post(client, _box(east_edge, 40, -99, 40.5), "East"),
        "lake": _post(client, canonical.WITH_HOLE, "Lake"),
        "islands": _post(client, ISLANDS, "Islands"),
        "bowtie": _insert(session, "Bow tie", "MULTIPOLYGON(((0 0,1 1,1 0,0 1,0 0)))"),
        "empty": _insert(session, "Nothing", "MULTIPOLYGON EMPTY"),
    }


def _by_kind(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["features"] if f["properties"]["kind"] == kind]


def _postgis(session: Session, sql: str, **params: Any) -> Any:
    row = session.execute(text(sql), params).one()
    session.rollback()
    return row


def test_a_hand_made_layer_reports_each_problem_where_it_is(
    client: TestClient, session: Session, layer: dict[str, int]
) -> None:
    response = client.get(URL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    report = response.json()
    assert report["type"] == "FeatureCollection" and report["layer"] == LAYER
    assert report["gap_width_m"] == 1000
    assert report["summary"] == {
        "gap": 1,
        "noncontiguous": 1,
        "hole": 1,
        "invalid": 1,
        "empty": 1,
        "overlap_edge": 0,
    }
    assert report["numberReturned"] == len(report["features"]) == 5
    assert [f["id"] for f in report["features"]] == [1, 2, 3, 4, 5]

    (gap,) = _by_kind(report, "gap")
    props = gap["properties"]
    assert props["territory_ids"] == [layer["west"], layer["east"]]
    assert props["territory_names"] == ["West", "East"]
    assert props["width_m"] == pytest.approx(100, rel=0.01)
    assert "100 m wide" in props["reason"]
    # PostGIS: the gap is what the bounding box of both squares holds that neither covers.
    truth_km2, covered = _postgis(
        session,
        "WITH sq AS (SELECT ST_Union(geom) AS u, ST_Envelope(ST_Collect(geom)) AS box "
        "FROM territories WHERE id IN (:w, :e)) "
        "SELECT ST_Area(ST_Difference(box, u)::geography) / 1e6, "
        "ST_Area(ST_Intersection(u, ST_GeomFromGeoJSON(:g))::geography) FROM sq",
        w=layer["west"],
        e=layer["east"],
        g=orjson.dumps(gap["geometry"]).decode(),
    )
    assert props["area_km2"] == pytest.approx(truth_km2, rel=1e-3)
    assert covered < 1.0  # m²

    (hole,) = _by_kind(report, "hole")
    truth_km2 = _postgis(
        session,
        "SELECT ST_Area(ST_MakePolygon(ST_InteriorRingN(ST_GeometryN(geom, 1), 1))::geography)"
        " / 1e6 FROM territories WHERE id = :id",
        id=layer["lake"],
    )[0]
    assert hole["geometry"]["type"] == "Polygon"
    assert hole["properties"]["area_km2"] == pytest.approx(truth_km2, rel=1e-9)
    assert hole["properties"]["territory_names"] == ["Lake"]

    (islands,) = _by_kind(report, "noncontiguous")
    parts = _postgis(
        session,
        "SELECT ST_NumGeometries(geom) FROM territories WHERE id = :id",
        id=layer["islands"],
    )[0]
    assert islands["properties"]["parts"] == parts == 2
    assert islands["geometry"]["type"] == "MultiPolygon"
    assert islands["geometry"]["coordinates"][0][0][0] == [23.0, 0.0]  # the smaller part

    (invalid,) = _by_kind(report, "invalid")
    reason = _postgis(
        session, "SELECT ST_IsValidReason(geom) FROM territories WHERE id = :id", id=layer["bowtie"]
    )[0]
    assert reason == "Self-intersection[0.5 0.5]"
    assert invalid["geometry"] == {"type": "Point", "coordinates": [0.5, 0.5]}
    assert "Self-intersection" in invalid["properties"]["reason"]
    assert invalid["properties"]["territory_ids"] == [layer["bowtie"]]

    (empty,) = _by_kind(report, "empty")
    assert empty["geometry"] is None
    assert empty["properties"]["territory_names"] == ["Nothing"]


def test_kinds_and_gap_width(client: TestClient, layer: dict[str, int]) -> None:
    by_commas = client.get(URL, params={"kinds": "gap,hole"}).json()
    repeated = client.get(f"{URL}?kinds=hole&kinds=gap").json()
    assert by_commas["summary"] == repeated["summary"] == {"gap": 1, "hole": 1}
    assert by_commas["kinds"] == ["gap", "hole"]
    assert {f["properties"]["kind"] for f in repeated["features"]} == {"gap", "hole"}
    narrower = client.get(URL, params={"kinds": "gap", "gap_width_m": 50}).json()
    assert narrower["summary"] == {"gap": 0} and narrower["gap_width_m"] == 50


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kinds": "gaps"}, "kinds"),
        ({"gap_width_m": 0}, "query.gap_width_m"),
        ({"gap_width_m": 20_000}, "query.gap_width_m"),
        ({"gap_width_m": "wide"}, "query.gap_width_m"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/layers/counties/validate", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem.get("field", (problem.get("errors") or [{}])[0].get("field")) == field


def test_unknown_layer_is_404(client: TestClient) -> None:
    response = client.get("/layers/nowhere/validate")
    assert response.status_code == 404
    assert response.json()["field"] == "layer"


def test_the_counties_report_matches_postgis(client: TestClient, session: Session) -> None:
    report = client.get("/layers/counties/validate").json()
    multi, holes, invalid, empty = _postgis(
        session,
        "SELECT count(*) FILTER (WHERE ST_NumGeometries(t.geom) > 1), "
        "COALESCE(sum((SELECT sum(ST_NumInteriorRings(d.geom)) FROM ST_Dump(t.geom) d)), 0), "
        "count(*) FILTER (WHERE NOT ST_IsValid(t.geom)), "
        "count(*) FILTER (WHERE ST_IsEmpty(t.geom)) "
        "FROM territories t JOIN layers l ON l.id = t.layer_id WHERE l.name = 'counties'",
    )
    summary = report["summary"]
    assert summary["noncontiguous"] == multi > 50  # island counties
    assert summary["hole"] == holes > 10  # Virginia's independent cities, mostly
    assert summary["invalid"] == invalid == 0
    assert summary["empty"] == empty == 0
    assert summary["gap"] == 0  # the source leaves no gap narrower than 1 km
    assert 0 < summary["overlap_edge"] < 50
    areas = dict(
        session.execute(
            text(
                "SELECT t.id, ST_Area(t.geom::geography) / 1e6 FROM territories t "
                "JOIN layers l ON l.id = t.layer_id "
                "WHERE l.name = 'counties' AND ST_NumGeometries(t.geom) > 1"
            )
        ).all()
    )
    session.rollback()
    for feature in _by_kind(report, "noncontiguous"):
        props = feature["properties"]
        (tid,) = props["territory_ids"]
        # The main piece and the parts shown add up to the county, as PostGIS measures it.
        assert props["area_km2"] + props["main_area_km2"] == pytest.approx(areas[tid], rel=1e-6)


def test_documented_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/layers/{layer}/validate"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"layer", "gap_width_m", "kinds"}
    assert "LayerHealthPublic" in spec["components"]["schemas"]
    assert {"200", "404", "422"} <= set(operation["responses"])
