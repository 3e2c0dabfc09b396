"""Customers over HTTP: upserts, all-or-nothing imports, reads."""

from __future__ import annotations

import io
from typing import Any

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.orm import Session


def _stored(session: Session) -> int:
    return int(session.scalar(text("SELECT count(*) FROM customers")) or 0)


def _upload(client: TestClient, name: str, content: bytes, content_type: str = "text/csv") -> Any:
    return client.post("/customers/import", files={"file": (name, content, content_type)})


def test_json_array_upserts_by_external_id(client: TestClient, session: Session) -> None:
    first = [
        {
            "external_id": "a",
            "name": "Acme",
            "lon": -122.42,
            "lat": 37.77,
            "value": 100.5,
            "tier": "gold",
        },
        {"external_id": "b", "lon": -73.99, "lat": 40.73},
    ]
    assert client.post("/customers", json=first).json() == {"inserted": 2, "updated": 0, "total": 2}
    again = [{"external_id": "a", "name": "Acme Inc", "lon": -122.0, "lat": 37.0, "value": 7}]
    assert client.post("/customers", json=again).json() == {"inserted": 0, "updated": 1, "total": 2}
    row = session.execute(
        text("SELECT name, value, ST_X(geom), ST_Y(geom) FROM customers WHERE external_id = 'a'")
    ).one()
    assert (row[0], float(row[1]), row[2], row[3]) == ("Acme Inc", 7.0, -122.0, 37.0)


def test_geojson_feature_collection(client: TestClient, session: Session) -> None:
    body = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "f1",
             "geometry": {"type": "Point", "coordinates": [-87.6, 41.9]},
             "properties": {"value": 5, "segment": "SMB"}},
        ],
    }  # fmt: skip
    assert client.post("/customers", json=body).json()["inserted"] == 1
    attributes = session.scalar(text("SELECT attributes FROM customers WHERE external_id = 'f1'"))
    assert attributes == {"segment": "SMB"}


def test_bad_points_name_the_index_and_write_nothing(client: TestClient, session: Session) -> None:
    body = [
        {"external_id": "ok", "lon": 1, "lat": 1},
        {"external_id": "bad", "lon": -122.4, "lat": 137.7},
        {"external_id": "ok", "lon": 2, "lat": 2},
    ]
    response = client.post("/customers", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    indexes = {e["index"] for e in problem["errors"]}
    assert {1, 2} <= indexes  # the out-of-range latitude and the duplicate external_id
    assert _stored(session) == 0


CSV_GOOD = (
    b"external_id,name,longitude,latitude,value,region\n"
    b"c1,One,-100.5,40.1,10,west\n"
    b"c2,Two,-90,35,2.5,east\n"
)
CSV_BAD = b"id,x,y,value\nc1,-100,40,1\nc2,,40,1\nc3,-100,abc,1\nc4,-100,40,1\n"


def test_csv_import(client: TestClient, session: Session) -> None:
    response = _upload(client, "accounts.csv", CSV_GOOD)
    assert response.status_code == 200, response.text
    assert response.json() == {"inserted": 2, "updated": 0, "total": 2}
    region = session.scalar(
        text("SELECT attributes->>'region' FROM customers WHERE external_id = 'c2'")
    )
    assert region == "east"


def test_bad_csv_lists_the_rows_and_imports_nothing(client: TestClient, session: Session) -> None:
    response = _upload(client, "accounts.csv", CSV_BAD)
    assert response.status_code == 422
    problem = response.json()
    assert sorted({e["row"] for e in problem["errors"]}) == [3, 4]  # header is row 1
    assert "row 3" in problem["detail"]
    assert _stored(session) == 0


def test_geopackage_import_reprojects(client: TestClient, session: Session, tmp_path: Any) -> None:
    frame = gpd.GeoDataFrame(
        {"external_id": ["g1"], "value": [3.0]}, geometry=[Point(-100.0, 40.0)], crs="EPSG:4326"
    ).to_crs("EPSG:3857")
    path = tmp_path / "c.gpkg"
    frame.to_file(path, driver="GPKG")
    response = _upload(client, "c.gpkg", path.read_bytes(), "application/geopackage+sqlite3")
    assert response.status_code == 200, response.text
    x, y = session.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM customers WHERE external_id = 'g1'")
    ).one()
    assert (x, y) == (pytest.approx(-100.0, abs=1e-6), pytest.approx(40.0, abs=1e-6))


def test_unsupported_file_is_415(client: TestClient) -> None:
    response = _upload(client, "c.xlsx", b"PK\x03\x04", "application/octet-stream")
    assert response.status_code == 415
    assert "CSV" in response.json()["detail"]


def test_oversized_body_is_413(client: TestClient, session: Session) -> None:
    limit = client.app.state.settings.api.max_body_bytes  # type: ignore[attr-defined]
    big = io.BytesIO(b"external_id,lon,lat\n" + b"x" * (limit + 1))
    response = _upload(client, "big.csv", big.getvalue())
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert _stored(session) == 0


def test_list_and_get(client: TestClient) -> None:
    client.post(
        "/customers",
        json=[{"external_id": f"p{i}", "lon": -100 + i, "lat": 40, "value": i} for i in range(5)],
    )
    page = client.get("/customers?limit=2").json()
    assert (page["numberMatched"], page["numberReturned"]) == (5, 2)
    assert any(link["rel"] == "next" for link in page["links"])
    west = client.get("/customers?bbox=-100.5,39,-98.5,41").json()
    assert sorted(f["properties"]["external_id"] for f in west["features"]) == ["p0", "p1"]
    one = west["features"][0]
    fetched = client.get(f"/customers/{one['id']}")
    assert fetched.headers["content-type"] == "application/geo+json"
    assert fetched.json()["geometry"] == one["geometry"]
    assert client.get("/customers/999999999").status_code == 404


def test_health_reports_the_database(client: TestClient, head_revision: str) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["database"]["schema_revision"] == head_revision


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/layers", "/layers/{layer}/territories", "/customers/import", "/health"} <= set(paths)


def test_values_postgres_cannot_store_are_a_422(client: TestClient, session: Session) -> None:
    body = [{"external_id": "n1", "name": "a\u0000b", "lon": 1, "lat": 1}]
    response = client.post("/customers", json=body)
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["detail"]
    assert _stored(session) == 0


def test_nul_in_attributes_is_a_422(client: TestClient, session: Session) -> None:
    body = [{"external_id": "n2", "lon": 1, "lat": 1, "note": "x\u0000"}]
    response = client.post("/customers", json=body)
    assert response.status_code == 422, response.text
    assert _stored(session) == 0
