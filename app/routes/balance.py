"""Balance of a layer's territories: customers, value and area, with their spread."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.auth import READ
from app.cache import LruCache
from app.coverage import balance_report
from app.db import SessionDep
from app.geojson import GEOJSON, GeoJSONResponse
from app.indexes import IndexDep
from app.repositories import layers
from app.routes.params import PROBLEMS, geojson
from app.schemas import BalancePublic
from spatial.coverage import tolerance_for_zoom

router = APIRouter(tags=["analysis"], responses=PROBLEMS, dependencies=[READ])


@router.get(
    "/layers/{layer}/balance",
    response_class=GeoJSONResponse,  # documents the GeoJSON; the route answers bytes itself
    responses=geojson(BalancePublic),
)
def layer_balance(
    layer: str,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    zoom: Annotated[
        int | None, Query(ge=0, le=22, description="Web-map zoom: simplify to a pixel there")
    ] = None,
) -> Response:
    """Balance of the layer: each territory's customers, value and area (km²) against the mean.

    Per metric: the mean, coefficient of variation, Gini index, max/min ratio, and the
    territories farthest above and below the mean. Customers are counted as assigned:
    ``assigned_at`` null means the layer was never assigned (POST /layers/{layer}/assign;
    territory and customer changes keep an assigned layer up to date).
    """
    target = layers.get_by_name(session, name=layer)
    entry = registry.current(target)
    cache: LruCache = request.app.state.cache
    tolerance = tolerance_for_zoom(zoom) if zoom is not None else 0.0
    body = balance_report(
        session, cache=cache, entry=entry, tolerance_m=tolerance, assigned_at=target.assigned_at
    )
    return Response(body, media_type=GEOJSON)
