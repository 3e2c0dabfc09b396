"""Look-ups over HTTP: one point, batches (JSON, GeoJSON, NDJSON), answered from memory."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from tests import canonical

LAYER = "routes"


@pytest.fixture
def routes(client: TestClient) -> TestClient:
    """A layer of two overlapping squares: a big one (priority 1) and a small one (priority 0)."""
    client.post("/layers", json={"name": LAYER})
    big = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}
    client.post(
        f"/layers/{LAYER}/territories",
        json=canonical.feature(big, name="Big", owner="Ann", priority=1),
    )
    client.post(
        f"/layers/{LAYER}/territories",
        json=canonical.feature(canonical.SQUARE, name="Small", owner="Bob"),
    )
    return client


def test_one_point(routes: TestClient) -> None:
    body = routes.get("/lookup", params={"lon": 0.5, "lat": 0.5, "layer": LAYER}).json()
    assert body["owner"]["name"] == "Small" and body["owner"]["owner"] == "Bob"
    assert body["rule"] == "priority"
    assert [t["name"] for t in body["covering"]] == ["Small", "Big"]
    alone = routes.get("/lookup", params={"lon": 3, "lat": 3, "layer": LAYER}).json()
    assert (alone["owner"]["name"], alone["rule"]) == ("Big", "only")
    nobody = routes.get("/lookup", params={"lon": 10, "lat": 10, "layer": LAYER})
    assert nobody.status_code == 200
    assert nobody.json()["owner"] is None and nobody.json()["covering"] == []


def test_a_real_county(client: TestClient) -> None:
    body = client.get(
        "/lookup", params={"lon": -122.4194, "lat": 37.7749, "layer": "counties"}
    ).json()
    assert body["owner"]["name"] == "San Francisco"


def test_batch_in_input_order(routes: TestClient) -> None:
    points = [[3, 3], [0.5, 0.5], [10, 10]]
    body = routes.post("/lookup", json={"layer": LAYER, "points": points}).json()
    assert body["count"] == 3
    got = [(r["owner"] and r["owner"]["name"], r["rule"], r["covering"]) for r in body["results"]]
    assert got == [("Big", "only", 1), ("Small", "priority", 2), (None, None, 0)]


def test_geojson_in_and_out(routes: TestClient) -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [0.5, 0.5, 12]},
                "properties": {"stop": 7},
            },
        ],
    }
    out = routes.post(f"/lookup?layer={LAYER}", json=fc)
    assert out.headers["content-type"] == "application/geo+json"
    props = out.json()["features"][0]["properties"]
    assert props["stop"] == 7 and props["owner"]["name"] == "Small" and props["rule"] == "priority"


def test_ndjson_streams_one_line_per_point(routes: TestClient) -> None:
    response = routes.post(
        "/lookup",
        json={"layer": LAYER, "points": [[0.5, 0.5], [3, 3]]},
        headers={"accept": "application/x-ndjson"},
    )
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line["owner"]["name"] for line in lines] == ["Small", "Big"]


@pytest.mark.parametrize(
    ("points", "field"),
    [
        ([[0, 0], [1]], "points[1]"),
        ([[0, 0], [0, 0], ["a", 1]], "points[2]"),
        ([[0, 0], [200, 0]], "points[1]"),
        ([[0, 0], [0, float("nan")]], "body"),  # NaN is not JSON
        ([], "points"),
    ],
)
def test_bad_points_name_their_index(routes: TestClient, points: list, field: str) -> None:
    content = orjson.dumps({"layer": LAYER, "points": points}, option=orjson.OPT_SERIALIZE_NUMPY)
    if "nan" in str(points):
        content = b'{"layer": "routes", "points": [[0, 0], [0, NaN]]}'
    response = routes.post("/lookup", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_unknown_layer_is_404(routes: TestClient) -> None:
    assert routes.get("/lookup", params={"lon": 0, "lat": 0, "layer": "nope"}).status_code == 404


def test_an_edit_is_seen_by_the_next_lookup(routes: TestClient) -> None:
    before = routes.get("/lookup", params={"lon": 0.5, "lat": 0.5, "layer": LAYER}).json()
    small = before["owner"]["id"]
    routes.patch(f"/layers/{LAYER}/territories/{small}", json={"priority": 5})
    after = routes.get("/lookup", params={"lon": 0.5, "lat": 0.5, "layer": LAYER}).json()
    assert (after["owner"]["name"], after["rule"]) == ("Big", "priority")
