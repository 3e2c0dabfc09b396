"""Every limit the service enforces: a clear 4xx problem that names the limit, nothing written."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.factory import create_app
from app.routes.lookup import MAX_POINTS
from app.settings import Settings
from spatial.geometry import MAX_VERTICES
from tests import canonical

SMALL_BODY = 200_000  # bytes: a body limit small enough to test cheaply


@pytest.fixture
def small(
    settings: Settings, engine: Engine, clean: None, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """The app with a 200 kB body limit."""
    tight = settings.model_copy(
        update={"api": settings.api.model_copy(update={"max_body_bytes": SMALL_BODY})}
    )
    with TestClient(create_app(tight), headers=auth_headers) as client:
        yield client


def _problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], body
    return body


def _circle(vertices: int) -> dict[str, Any]:
    """A valid polygon with ``vertices`` vertices (the closing one included), around 0,0."""
    angles = [2 * math.pi * k / (vertices - 1) for k in range(vertices - 1)]
    ring = [[math.cos(a), math.sin(a)] for a in angles]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def test_request_body_size(small: TestClient, session: Session) -> None:
    rows = [{"external_id": f"c{i}", "lon": -100, "lat": 40} for i in range(5_000)]
    body = _problem(small.post("/customers", json=rows), 413, f"{SMALL_BODY} bytes")
    assert body["field"] == "body"
    assert session.scalar(text("SELECT count(*) FROM customers")) == 0


def test_import_file_size(small: TestClient) -> None:
    assert small.post("/layers", json={"name": "plan"}).status_code == 201
    big = b'{"type": "FeatureCollection", "features": [' + b" " * SMALL_BODY + b"]}"
    response = small.post(
        "/layers/plan/import", files={"file": ("big.geojson", big, "application/geo+json")}
    )
    _problem(response, 413, f"{SMALL_BODY} bytes")
    assert small.get("/layers/plan/territories").json()["numberMatched"] == 0


def test_points_per_batch(client: TestClient) -> None:
    points = [[-100.0, 40.0]] * (MAX_POINTS + 1)
    response = client.post("/lookup", json={"layer": "counties", "points": points})
    _problem(response, 422, f"{MAX_POINTS:,}")


def test_vertices_per_polygon(client: TestClient) -> None:
    assert client.post("/layers", json={"name": "plan"}).status_code == 201
    huge = canonical.feature(_circle(MAX_VERTICES + 1), name="too detailed")
    body = _problem(client.post("/layers/plan/territories", json=huge), 422, f"{MAX_VERTICES:,}")
    assert body["field"] == "geometry"
    assert client.get("/layers/plan/territories").json()["numberMatched"] == 0
    fine = canonical.feature(_circle(10_000), name="detailed")
    assert client.post("/layers/plan/territories", json=fine).status_code == 201
    market = client.post("/layers/plan/whitespace", json=_circle(MAX_VERTICES + 1))
    _problem(market, 422, f"{MAX_VERTICES:,}")


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/customers?limit=10001", 422, "limit"),
        ("/layers/counties/territories?limit=0", 422, "limit"),
        ("/ogc/collections/counties/items?limit=10001", 400, "limit"),
        ("/layers/counties/overlaps?limit=10001", 422, "limit"),
        ("/customers?bbox=-200,0,10,10", 422, "bbox"),
        ("/layers/counties/coverage?bbox=10,20,0,10", 422, "bbox"),
        ("/ogc/collections/counties/items?bbox=0,91,1,92", 400, "bbox"),
    ],
)
def test_limit_and_bbox_values(client: TestClient, url: str, status: int, field: str) -> None:
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.text
