"""White space: the uncovered part of a market, and where its neglected potential lies.

The work and what is kept between asks live in ``app.whitespace``; this module reads the
request (which market, which layer) and sends the bytes back.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.auth import READ
from app.db import SessionDep
from app.errors import InputError
from app.geojson import GEOJSON, GeoJSONResponse
from app.indexes import IndexDep, LayerIndex
from app.models import Layer
from app.repositories import layers
from app.routes.params import PROBLEMS, RepairQuery, geojson
from app.schemas import WhiteSpacePublic
from app.whitespace import Market, WhiteSpaceService
from spatial.geometry import polygonal_from_geojson
from spatial.whitespace import MAX_H3_RES

router = APIRouter(
    prefix="/layers/{layer}/whitespace", tags=["analysis"], responses=PROBLEMS, dependencies=[READ]
)

H3Res = Annotated[
    int, Query(ge=0, le=MAX_H3_RES, description="H3 resolution of the hexagon breakdown")
]
Top = Annotated[int, Query(ge=1, le=10_000, description="Counties and hexagons listed (best)")]


_CREATE_LOCK = threading.Lock()


def service_of(app: FastAPI) -> WhiteSpaceService:
    """The app's white space service (what it keeps, per worker), made on first use."""
    with _CREATE_LOCK:
        service = getattr(app.state, "whitespace", None)
        if service is None:
            service = WhiteSpaceService()
            app.state.whitespace = service
        return service


def _codes(raw: str, field: str) -> list[str]:
    codes = [c.strip().upper() for c in raw.split(",") if c.strip()]
    if not codes:
        raise InputError(f"{field} needs at least one code, comma-separated", field=field)
    return codes


def _named_market(
    session: Session,
    service: WhiteSpaceService,
    *,
    market: str | None,
    states: str | None,
    counties: str | None,
) -> Market:
    """The market a GET names: the nation, some states or some counties."""
    given = [name for name, v in (("market", market), ("states", states), ("counties", counties))
             if v is not None]  # fmt: skip
    if len(given) > 1:
        raise InputError(
            f"give one market, not {' and '.join(given)}: market=nation, states=CA,NV "
            "or counties=06001,06075",
            field=given[1],
        )
    if states is not None:
        return service.named_market(session, kind="states", codes=_codes(states, "states"))
    if counties is not None:
        return service.named_market(session, kind="counties", codes=_codes(counties, "counties"))
    return service.named_market(session, kind="nation", codes=[])


def _drawn_market(body: dict[str, Any], *, repair: bool) -> Market:
    """The market a POST sends: a GeoJSON Polygon, MultiPolygon or Feature of one."""
    field = "body"
    geometry: Any = body
    if body.get("type") == "Feature":
        geometry, field = body.get("geometry"), "geometry"
    geom = polygonal_from_geojson(geometry, repair=repair, field=field)
    digest = hashlib.blake2b(shapely.to_wkb(geom), digest_size=16).hexdigest()
    return Market(("geometry", digest), "geometry", [], geom)


def _answer(
    request: Request,
    session: Session,
    layer: tuple[Layer, LayerIndex],
    market: Market,
    *,
    h3_res: int,
    top: int,
) -> Response:
    """The white space of the market in the layer (as stored, and its index), kept or made."""
    found, entry = layer
    body, kept = service_of(request.app).answer(
        session, layer=found, entry=entry, market=market, h3_res=h3_res, top=top
    )
    return Response(body, media_type=GEOJSON, headers={"X-Cache": "hit" if kept else "miss"})


@router.get("", response_class=GeoJSONResponse, responses=geojson(WhiteSpacePublic))
def get_whitespace(
    *,
    layer: str,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    market: Annotated[
        Literal["nation"] | None, Query(description="nation (default): every state")
    ] = None,
    states: Annotated[
        str | None, Query(description="States, comma-separated (postal or FIPS)")
    ] = None,
    counties: Annotated[str | None, Query(description="County FIPS, comma-separated")] = None,
    h3_res: H3Res = 5,
    top: Top = 100,
) -> Response:
    """The part of a market no territory of the layer covers, its customers, by county and H3."""
    found = layers.get_by_name(session, name=layer)
    entry = registry.current(found)
    named = _named_market(
        session, service_of(request.app), market=market, states=states, counties=counties
    )
    return _answer(request, session, (found, entry), named, h3_res=h3_res, top=top)


@router.post("", response_class=GeoJSONResponse, responses=geojson(WhiteSpacePublic))
def post_whitespace(
    *,
    layer: str,
    body: Annotated[
        dict[str, Any], Body(description="GeoJSON Polygon, MultiPolygon or a Feature of one")
    ],
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    repair: RepairQuery = False,
    h3_res: H3Res = 5,
    top: Top = 100,
) -> Response:
    """White space of a drawn market (GeoJSON) in the layer; as GET otherwise."""
    found = layers.get_by_name(session, name=layer)
    entry = registry.current(found)
    drawn = _drawn_market(body, repair=repair)
    return _answer(request, session, (found, entry), drawn, h3_res=h3_res, top=top)
