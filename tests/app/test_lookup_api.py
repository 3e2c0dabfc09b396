"""Look-ups over HTTP: one point, batches (JSON, GeoJSON, NDJSON), answered from memory."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from app.auth import PRINCIPAL, Principal, Role
from app.fastlookup import LookupFastPath
from app.indexes import IndexRegistry
from app.routes.lookup import NDJSON, NDJSON_CHUNK, point_answer
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


def test_ndjson_of_many_points_keeps_every_line(routes: TestClient) -> None:
    n = 2 * NDJSON_CHUNK + 3  # whole chunks and a partial one
    points = [[0.5, 0.5] if i % 2 else [3, 3] for i in range(n)]
    response = routes.post(
        "/lookup", json={"layer": LAYER, "points": points}, headers={"accept": NDJSON}
    )
    lines = response.content.split(b"\n")
    assert lines[-1] == b"" and len(lines) == n + 1
    names = [orjson.loads(line)["owner"]["name"] for line in lines[:-1]]
    assert names == ["Small" if i % 2 else "Big" for i in range(n)]


def _held_registry(client: TestClient) -> IndexRegistry:
    registry: IndexRegistry = client.app.state.indexes  # type: ignore[attr-defined]
    registry.get(LAYER)
    return registry


READER = Principal(role=Role.READ, key_id=1)


async def _through_fast_path(
    registry: IndexRegistry, query: str, principal: Principal | None = READER
) -> tuple[bool, bytes]:
    """(did the request go on to the framework, the fast path's body if it answered)."""
    passed: list[bool] = []
    sent: list[bytes] = []

    async def framework(scope: Any, receive: Any, send: Any) -> None:
        passed.append(True)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])

    scope = {"type": "http", "method": "GET", "path": "/lookup",
             "query_string": query.encode(), "app": SimpleNamespace(state=SimpleNamespace(
                 indexes=registry)), PRINCIPAL: principal}  # fmt: skip
    await LookupFastPath(framework)(scope, None, send)  # type: ignore[arg-type]
    return bool(passed), b"".join(sent)


def test_the_fast_path_leaves_hidden_layers_and_unauthenticated_calls_to_the_route(
    routes: TestClient,
) -> None:
    registry = _held_registry(routes)
    query = f"lon=0.5&lat=0.5&layer={LAYER}"
    assert asyncio.run(_through_fast_path(registry, query))[0] is False  # answered here
    partner = Principal(role=Role.READ, layers=frozenset({"other"}), key_id=7)
    assert asyncio.run(_through_fast_path(registry, query, partner)) == (True, b"")
    assert asyncio.run(_through_fast_path(registry, query, None)) == (True, b"")


def test_the_fast_path_answers_as_the_route_does(routes: TestClient) -> None:
    registry = _held_registry(routes)
    entry = registry.held(LAYER)
    assert entry is not None
    for lon, lat in [(0.5, 0.5), (3, 3), (10, 10), (0, 0), (4, 4), (-180, -90), (180, 90)]:
        query = f"lon={lon}&lat={lat}&layer={LAYER}"
        passed, body = asyncio.run(_through_fast_path(registry, query))
        assert not passed and body == orjson.dumps(point_answer(entry, float(lon), float(lat)))
        # The same look-up through the route (an extra parameter sends it there) is the same.
        assert routes.get(f"/lookup?{query}&via=route").content == body
        assert routes.get(f"/lookup?{query}").content == body


@pytest.mark.parametrize(
    "query",
    [
        "lon=nan&lat=0&layer=routes",
        "lon=1e400&lat=0&layer=routes",
        "lon=181&lat=0&layer=routes",
        "lon=0&lat=-90.5&layer=routes",
        "lon=0x10&lat=0&layer=routes",
        "lon=0&lat=0",
        "lon=0&lat=0&layer=routes&layer=other",
        "lon=0&lat=0&layer=not-held",
        "lon=&lat=0&layer=routes",
    ],
)
def test_the_fast_path_leaves_anything_unusual_to_the_route(routes: TestClient, query: str) -> None:
    passed, body = asyncio.run(_through_fast_path(_held_registry(routes), query))
    assert passed and body == b""
    # ... which answers it properly: a problem naming the parameter, or a 404, never a 500.
    response = routes.get(f"/lookup?{query}")
    assert response.status_code in {200, 404, 422}, response.text
    if response.status_code != 200:
        assert response.headers["content-type"] == "application/problem+json"
