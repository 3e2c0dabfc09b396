"""Vector tiles (Mapbox Vector Tiles) and TileJSON of layers and of the customers.

``/tiles/{layer}/{z}/{x}/{y}.mvt`` is one ``territories`` layer: feature id = territory id,
with name, owner, customer_count and color (the coverage map's: 0-5, never shared by
touching territories), simplified for the zoom. ``/tiles/customers/{z}/{x}/{y}.mvt`` is one
``customers`` layer: points below zoom ``CLUSTER_BELOW_ZOOM`` are grid clusters (count, value
sum), from it on one point per customer (id, value). ``customers`` is a reserved layer name,
so the paths cannot clash. ``/tiles/{layer}.json`` and ``/tiles/customers.json`` describe them
(TileJSON 3.0.0) for MapLibre, Mapbox GL, OpenLayers or QGIS.

Caching: ``Cache-Control: no-cache`` (keep, but revalidate) with a strong ETag; a matching
If-None-Match gets 304. A layer tile's ETag names the layer's version, its assignments'
version and the tile, so it changes with any edit of the layer or of its customers'
assignments and is answered without making the tile; a customers tile's ETag is a digest of
its bytes (customers have no version cheaper than reading them). A tile with no feature is 204.

Tile coordinates outside the tile grid (z 0..22, x and y 0..2^z-1) are 404: that tile does
not exist, and the problem names the coordinate; a coordinate that is no integer is 422.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response, status
from sqlalchemy.orm import Session

from app import coverage
from app.auth import READ
from app.cache import LruCache
from app.coverage import matches as _matches
from app.db import SessionDep
from app.errors import NotFoundError
from app.indexes import IndexDep, LayerIndex
from app.models import Layer
from app.repositories import assignments, layers
from app.repositories import tiles as repo
from app.routes.params import PROBLEMS

router = APIRouter(prefix="/tiles", tags=["tiles"], responses=PROBLEMS, dependencies=[READ])

MVT = "application/vnd.mapbox-vector-tile"
MAX_ZOOM = 22  # the deepest tile served
TILEJSON_MAXZOOM = 14  # advertised: clients overzoom beyond (4,096 units: ~0.6 m at z14)
# Part of every layer tile's ETag: a change to what a tile holds (fields, simplification)
# must not be answered 304 from a cache filled by the previous release.
TILE_FORMAT = 1
CACHE_CONTROL = "no-cache"  # caches keep tiles but ask each time; a 304 costs two tiny queries
WORLD = (-180.0, -85.051129, 180.0, 85.051129)  # web mercator's square, degrees

_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MVT: {}}, "description": "The tile (Mapbox Vector Tile 2.1)"},
    204: {"description": "No feature in this tile"},
    304: {"description": "Not modified: the If-None-Match ETag is current"},
}
TERRITORY_FIELDS = {
    "name": "String",
    "owner": "String",
    "customer_count": "Number",
    "color": "Number",
}
CUSTOMER_FIELDS = {"value": "Number", "count": "Number"}


# --- customers (before the layer routes: "customers" would match {layer} too) ----------------


@router.get("/customers.json", name="customer_tilejson", summary="TileJSON of the customers")
def customer_tilejson(request: Request, session: SessionDep) -> Response:
    """TileJSON 3.0.0 of the customer tiles: URL template, fields, zooms, bounds."""
    template = _template(request, "customer_tile", {})
    description = (
        f"Customers: below zoom {repo.CLUSTER_BELOW_ZOOM} grid clusters (count, value = their "
        "sum), from it one point per customer (feature id = customer id, value, count = 1)"
    )
    layer = {"id": "customers", "description": description, "fields": CUSTOMER_FIELDS}
    doc = _tilejson("customers", template, layer, repo.customer_bounds(session))
    return Response(orjson.dumps(doc), media_type="application/json", headers=_cache_headers())


@router.get(
    "/customers/{z}/{x}/{y}.mvt",
    name="customer_tile",
    summary="A tile of the customers",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
def customer_tile(z: int, x: int, y: int, *, request: Request, session: SessionDep) -> Response:
    """The customers in tile z/x/y as MVT (clusters below zoom 10); 204 when none."""
    _check_tile(z, x, y)
    body = repo.customer_tile(session, z=z, x=x, y=y)
    tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return _tile_response(request, tag, body)


# --- layers --------------------------------------------------------------------------------


@router.get("/{layer}.json", name="layer_tilejson", summary="TileJSON of a layer")
def layer_tilejson(layer: str, request: Request, session: SessionDep) -> Response:
    """TileJSON 3.0.0 of the layer's tiles: URL template, fields, zooms, bounds and centre."""
    target = layers.get_by_name(session, name=layer)
    template = _template(request, "layer_tile", {"layer": target.name})
    vector_layer = {
        "id": "territories",
        "description": "Territories (feature id = territory id); color 0-5 differs between "
        "touching territories",
        "fields": TERRITORY_FIELDS,
    }
    bounds = repo.layer_bounds(session, layer_id=target.id)
    doc = _tilejson(target.name, template, vector_layer, bounds)
    doc["name"] = target.title or target.name
    if target.description:
        doc["description"] = target.description
    return Response(orjson.dumps(doc), media_type="application/json", headers=_cache_headers())


@router.get(
    "/{layer}/{z}/{x}/{y}.mvt",
    name="layer_tile",
    summary="A tile of a layer",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
def layer_tile(
    layer: str,
    z: int,
    x: int,
    y: int,
    *,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
) -> Response:
    """The layer's territories in tile z/x/y as MVT, simplified for the zoom; 204 when none.

    Each feature: id (the territory's), name, owner, customer_count, color (0-5).
    """
    _check_tile(z, x, y)
    target = layers.get_by_name(session, name=layer)
    version = assignments.version(session, layer_id=target.id)
    tag = _layer_etag(target, version, z, x, y)
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=_cache_headers(tag))
    attributes = _attributes(request, session, registry.current(target), version)
    body = repo.cached_tile(
        request.app.state, tag,
        lambda: repo.territory_tile(
            session, layer_id=target.id, z=z, x=x, y=y, attributes=attributes
        ),
    )  # fmt: skip
    return _tile_response(request, tag, body)


# --- helpers ---------------------------------------------------------------------------------


def _check_tile(z: int, x: int, y: int) -> None:
    """404 naming the coordinate when z/x/y is not a tile of the grid."""
    if not 0 <= z <= MAX_ZOOM:
        raise NotFoundError(f"no tile at zoom {z}: zoom is 0..{MAX_ZOOM}", field="z")
    top = 2**z - 1
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value <= top:
            raise NotFoundError(
                f"no tile {name}={value} at zoom {z}: {name} is 0..{top} there", field=name
            )


def _layer_etag(layer: Layer, assignment_version: int, z: int, x: int, y: int) -> str:
    """A strong ETag: the layer's version, its assignments' version and the tile."""
    key = repr((TILE_FORMAT, layer.id, layer.updated_at.isoformat(), assignment_version, z, x, y))
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


def _attributes(
    request: Request, session: Session, entry: LayerIndex, assignment_version: int
) -> repo.TerritoryAttributes:
    """Colour and customer count of each of the layer's territories, kept per version.

    Colours are the coverage map's (made once per layer version for both); counts are one
    scan of the layer's assignments, kept until the layer or its assignments change.
    """
    cache: LruCache = request.app.state.cache

    def make() -> repo.TerritoryAttributes:
        territory_ids = entry.index.territories.ids
        count = coverage.stats(cache, session, entry, assignment_version).count
        color = coverage.colors(entry)  # the coverage map's, made once for both
        return repo.TerritoryAttributes.of(territory_ids.tolist(), color.tolist(), count.tolist())

    key = ("tile-attributes", entry.layer_id, entry.version, assignment_version)
    found: repo.TerritoryAttributes = cache.get_or_make(key, make)
    return found


def _tile_response(request: Request, tag: str, body: bytes) -> Response:
    headers = _cache_headers(tag)
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if not body:
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=headers)
    return Response(body, media_type=MVT, headers=headers)


def _cache_headers(tag: str | None = None) -> dict[str, str]:
    headers = {"Cache-Control": CACHE_CONTROL}
    if tag:
        headers["ETag"] = tag
    return headers


def _template(request: Request, route: str, params: dict[str, str]) -> str:
    """The absolute URL template of a tile route, with {z}/{x}/{y} left for the client."""
    url = str(request.url_for(route, **params, z="0", x="0", y="0"))
    # url_for quotes its values: build from a placeholder tile and swap the numbers back.
    head, _, _ = url.rpartition("/0/0/0.mvt")
    return head + "/{z}/{x}/{y}.mvt"


def _tilejson(
    name: str,
    template: str,
    vector_layer: dict[str, Any],
    bounds: tuple[float, float, float, float] | None,
) -> dict[str, Any]:
    """A TileJSON 3.0.0 document of one vector layer."""
    west, south, east, north = bounds or WORLD
    # Clamped to web mercator's square: a client cannot ask for tiles beyond it.
    south, north = max(south, WORLD[1]), min(north, WORLD[3])
    return {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [template],
        "minzoom": 0,
        "maxzoom": TILEJSON_MAXZOOM,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, _fit_zoom(east - west, north - south)],
        "vector_layers": [{**vector_layer, "minzoom": 0, "maxzoom": TILEJSON_MAXZOOM}],
    }


def _fit_zoom(width_deg: float, height_deg: float) -> int:
    """The largest zoom at which a box of this size (degrees) fits in one 256-px tile."""
    span = max(width_deg, height_deg, 1e-9)
    return max(0, min(TILEJSON_MAXZOOM, math.floor(math.log2(360.0 / span))))
