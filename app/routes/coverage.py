"""Coverage map of a layer: its territories with stats and colours, as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from app import coverage
from app.auth import READ
from app.cache import LruCache
from app.coverage import CoverageOptions
from app.db import SessionDep
from app.errors import InputError
from app.geojson import GEOJSON, GeoJSONResponse
from app.indexes import IndexDep
from app.repositories import layers
from app.routes.params import PROBLEMS, BboxDep, geojson
from app.schemas import CoveragePublic
from spatial.coverage import tolerance_for_zoom

router = APIRouter(tags=["analysis"], responses=PROBLEMS, dependencies=[READ])

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the If-None-Match ETag is current"}
}


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
    Customers are counted as assigned: ``summary.assigned_at`` null means the layer was never
    assigned (POST /layers/{layer}/assign; territory and customer changes keep an assigned
    layer up to date).
    """
    if zoom is not None and tolerance_m is not None:
        raise InputError("give zoom or tolerance_m, not both", field="zoom")
    target = layers.get_by_name(session, name=layer)
    tolerance = tolerance_for_zoom(zoom) if zoom is not None else (tolerance_m or 0.0)
    options = CoverageOptions(bbox=bbox, tolerance_m=tolerance, include_customers=include_customers)
    cache: LruCache = request.app.state.cache
    found = coverage.answer(
        session, cache=cache, registry=registry, layer=target, options=options,
        if_none_match=request.headers.get("if-none-match"),
    )  # fmt: skip
    headers = {"ETag": found.tag, "Cache-Control": "no-cache"}  # cache, ask again (304: cheap)
    if found.status == status.HTTP_304_NOT_MODIFIED:
        return Response(status_code=found.status, headers=headers)
    return Response(found.body, media_type=GEOJSON, headers=headers)
