"""Coverage map of a layer: its territories with stats and colours, as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from app.cache import LruCache
from app.coverage import CoverageOptions, coverage_map, etag
from app.db import SessionDep
from app.errors import InputError
from app.geojson import GEOJSON, GeoJSONResponse
from app.indexes import IndexDep
from app.repositories import assignments, layers
from app.routes.params import PROBLEMS, BboxDep, geojson
from app.schemas import CoveragePublic
from spatial.coverage import tolerance_for_zoom

router = APIRouter(tags=["analysis"], responses=PROBLEMS)

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the If-None-Match ETag is current"}
}


def _matches(if_none_match: str | None, tag: str) -> bool:
    """Does an If-None-Match header name ``tag`` (weak or strong), or ``*``?"""
    if not if_none_match:
        return False
    names = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return tag in names or "*" in names


@router.get(
    "/layers/{layer}/coverage",
    response_class=GeoJSONResponse,  # documents the GeoJSON; the route answers bytes itself
    responses={**geojson(CoveragePublic), **_NOT_MODIFIED},
)
def layer_coverage(
    layer: str,
    *,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    bbox: BboxDep,
    zoom: Annotated[
        int | None, Query(ge=0, le=22, description="Web-map zoom: simplify to a pixel there")
    ] = None,
    tolerance_m: Annotated[
        float | None, Query(ge=0, le=1_000_000, description="Simplification tolerance, metres")
    ] = None,
    include_customers: Annotated[
        bool, Query(description="Add the layer's assigned customers as points")
    ] = False,
) -> Response:
    """The layer's territories with customers, value, area (km²), shares, owner and a colour.

    ``color`` (0-5) differs between territories that touch. ``zoom`` or ``tolerance_m``
    simplify the shapes together, so neighbours keep one shared border. The ETag changes
    exactly when the layer or its assignments change; a matching If-None-Match gets 304.
    """
    if zoom is not None and tolerance_m is not None:
        raise InputError("give zoom or tolerance_m, not both", field="zoom")
    target = layers.get_by_name(session, name=layer)
    tolerance = tolerance_for_zoom(zoom) if zoom is not None else (tolerance_m or 0.0)
    options = CoverageOptions(bbox=bbox, tolerance_m=tolerance, include_customers=include_customers)
    tag = etag(target, assignments.version(session, layer_id=target.id), options)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}  # cache, but ask again (304 is cheap)
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    entry = registry.current(target)
    cache: LruCache = request.app.state.cache
    body = cache.get_or_make(
        ("coverage", tag),
        lambda: coverage_map(session, cache=cache, entry=entry, options=options),
    )
    return Response(body, media_type=GEOJSON, headers=headers)
