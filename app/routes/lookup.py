"""Point-in-territory look-ups for routing tools and front-ends, answered from memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.auth import READ, Principal, ReadDep
from app.errors import InputError, unknown_layer
from app.geojson import GeoJSONResponse
from app.indexes import IndexDep, IndexRegistry, LayerIndex
from app.routes.params import PROBLEMS
from app.schemas import LookupPublic
from spatial.index import RULES

router = APIRouter(tags=["lookup"], responses=PROBLEMS, dependencies=[READ])

MAX_POINTS = 100_000
NDJSON = "application/x-ndjson"


def _answer(entry: LayerIndex, owner: int, rule: int, covering: int) -> dict[str, Any]:
    return {
        "owner": entry.describe(owner) if owner >= 0 else None,
        "rule": RULES[rule] if owner >= 0 else None,
        "covering": covering,
    }


@router.get("/lookup", response_model=LookupPublic)
async def lookup_point(
    request: Request,
    lon: Annotated[float, Query(ge=-180, le=180, description="Longitude, degrees")],
    lat: Annotated[float, Query(ge=-90, le=90, description="Latitude, degrees")],
    layer: Annotated[str, Query(description="Layer name", examples=["counties"])],
) -> Response:
    """Who owns this point: the owner, the rule that decided, and every covering territory."""
    # Well-formed requests for a held layer are answered by app.fastlookup before routing;
    # this route validates the rest and documents the endpoint. On the event loop: the engine
    # takes microseconds; only a layer not held yet (a database read, a build) goes to a thread.
    registry: IndexRegistry = request.app.state.indexes
    entry = registry.held(layer)
    if entry is None:
        entry = await run_in_threadpool(registry.get, layer)
    return Response(orjson.dumps(point_answer(entry, lon, lat)), media_type="application/json")


def point_answer(entry: LayerIndex, lon: float, lat: float) -> dict[str, Any]:
    """GET /lookup's answer for one point (degrees), from the layer's index."""
    owner, rule, _ = entry.index.owner_of(lon, lat)  # the scalar fast path
    covering = entry.index.covering(lon, lat).tolist() if owner >= 0 else []
    return {
        "layer": entry.layer,
        "point": [lon, lat],
        "owner": entry.describe(owner) if owner >= 0 else None,
        "rule": rule if owner >= 0 else None,
        "covering": [entry.describe(t) for t in covering],
    }


_EXAMPLES = {
    "points": {
        "summary": "Points",
        "value": {"layer": "counties", "points": [[-122.42, 37.77], [-73.99, 40.73]]},
    },
    "geojson": {
        "summary": "GeoJSON FeatureCollection",
        "value": {
            "type": "FeatureCollection",
            "layer": "states",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [-87.6, 41.9]},
                    "properties": {"stop": 1},
                }
            ],
        },
    },
}
_BODY_SCHEMA = {
    "description": (
        f'{{"layer": ..., "points": [[lon, lat], ...]}} (up to {MAX_POINTS:,} points), or a '
        "GeoJSON FeatureCollection of Points (layer as ?layer= or a 'layer' member)"
    ),
    "type": "object",
    "properties": {
        "layer": {"type": "string"},
        "points": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_POINTS,
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        },
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_POINTS,
            "items": {"type": "object", "required": ["geometry"]},
        },
    },
    # A FeatureCollection is read for its features, anything else for its points.
    "if": {"required": ["type"]},
    "then": {"required": ["features"]},
    "else": {"required": ["points"]},
}


@router.post(
    "/lookup",
    response_class=Response,
    responses={
        200: {
            "description": "JSON {layer, count, results}; GeoJSON when a FeatureCollection was "
            "sent; one JSON line per point with Accept: application/x-ndjson",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/geo+json": {"schema": {"type": "object"}},
                NDJSON: {"schema": {"type": "string"}},
            },
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BODY_SCHEMA, "examples": _EXAMPLES}},
        }
    },
)
async def lookup_points(
    request: Request,
    registry: IndexDep,
    principal: ReadDep,
    layer: Annotated[str | None, Query(description="Layer (or give it in the body)")] = None,
) -> Response:
    """Owners of many points, in input order (JSON, GeoJSON in and out, or NDJSON lines)."""
    # The body is read raw and parsed with orjson: FastAPI's json.loads of 100,000 coordinate
    # pairs took longer than the look-ups themselves. The work runs off the event loop.
    raw = await request.body()
    accept = request.headers.get("accept", "")
    return await run_in_threadpool(_lookup_many, raw, registry, principal, layer, accept)


def _lookup_many(
    raw: bytes, registry: IndexRegistry, principal: Principal, layer: str | None, accept: str
) -> Response:
    body = _parse(raw)
    name = layer or body.get("layer")
    if not isinstance(name, str):
        raise InputError("give the layer: a 'layer' member or ?layer=", field="layer")
    if not principal.sees(name):
        raise unknown_layer(name)  # what an unknown layer gets, word for word
    is_geojson = body.get("type") == "FeatureCollection"
    features = body.get("features") if is_geojson else None
    coords = (
        _coordinates(features, "features")
        if is_geojson
        else _coordinates(body.get("points"), "points")
    )
    entry = registry.get(name)
    found = entry.index.owners(coords[:, 0], coords[:, 1])
    answers = (
        _answer(entry, o, r, c)
        for o, r, c in zip(
            found.owner.tolist(), found.rule.tolist(), found.covering.tolist(), strict=True
        )
    )
    if NDJSON in accept:
        return StreamingResponse(_lines(answers), media_type=NDJSON)
    if is_geojson:
        assert isinstance(features, list)
        for feature, answer in zip(features, answers, strict=True):
            feature["properties"] = {**(feature.get("properties") or {}), **answer}
        return GeoJSONResponse({**body, "layer": entry.layer})
    return GeoJSONResponse(
        {"layer": entry.layer, "count": len(coords), "results": list(answers)},
        media_type="application/json",
    )


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the body is not valid JSON: {exc}", field="body") from exc
    if not isinstance(body, dict):
        raise InputError(
            'expected {"layer": ..., "points": [[lon, lat], ...]} or a FeatureCollection',
            field="body",
        )
    return body


NDJSON_CHUNK = 2_000  # lines per streamed chunk: a chunk per line made 100,000 points take 10 s


def _lines(answers: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON line per answer, sent in chunks of NDJSON_CHUNK lines."""
    chunk: list[bytes] = []
    for answer in answers:
        chunk.append(orjson.dumps(answer))
        if len(chunk) == NDJSON_CHUNK:
            yield b"\n".join(chunk) + b"\n"
            chunk = []
    if chunk:
        yield b"\n".join(chunk) + b"\n"


def _coordinates(items: Any, field: str) -> np.ndarray:
    """An (n, 2) array of lon/lat from points or Point features; InputError naming the index."""
    if not isinstance(items, list) or not items:
        raise InputError(f"{field} must be a non-empty array", field=field)
    if len(items) > MAX_POINTS:
        raise InputError(
            f"{len(items):,} {field} in one request; at most {MAX_POINTS:,}: split the batch",
            field=field,
        )
    pairs = [_position(item, field) for item in items] if field == "features" else items
    try:
        coords = np.asarray(pairs, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError
    except (ValueError, TypeError):
        coords = np.array([_pair(p, f"{field}[{i}]") for i, p in enumerate(pairs)])
    return coords


def _position(feature: Any, field: str) -> Any:
    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return None  # reported with its index by _pair
    position = geometry.get("coordinates")
    # RFC 7946 positions may carry an altitude: the look-up is 2D.
    return position[:2] if isinstance(position, list) and len(position) > 2 else position


def _pair(item: Any, where: str) -> tuple[float, float]:
    ok = (
        isinstance(item, list | tuple)
        and len(item) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)
    )
    if not ok:
        raise InputError(f"{where} must be [lon, lat] (two numbers), got {item!r:.60}", field=where)
    return float(item[0]), float(item[1])
