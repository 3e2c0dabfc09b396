"""Assembling RFC 7946 GeoJSON responses around geometry text that PostGIS produced."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from app.errors import InputError

GEOJSON = "application/geo+json"


class GeoJSONResponse(JSONResponse):
    """``application/geo+json`` serialised with orjson; embeds PostGIS geometry text as is."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        """Serialise without re-parsing geometries (they are orjson Fragments)."""
        return orjson.dumps(content, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return float(obj)
    raise TypeError


def feature(fid: int, geometry_json: str | None, properties: dict[str, Any]) -> dict[str, Any]:
    """A Feature whose geometry is GeoJSON text from ``ST_AsGeoJSON`` (not parsed again)."""
    return {
        "type": "Feature",
        "id": fid,
        "geometry": orjson.Fragment(geometry_json) if geometry_json else None,
        "properties": properties,
    }


def page_links(request: Request, *, offset: int, limit: int, matched: int) -> list[dict[str, str]]:
    """self/next/prev links of an offset-paged collection (query parameters kept)."""

    def at(new_offset: int) -> str:
        return str(request.url.include_query_params(offset=new_offset, limit=limit))

    links = [{"rel": "self", "type": GEOJSON, "href": str(request.url)}]
    if offset + limit < matched:
        links.append({"rel": "next", "type": GEOJSON, "href": at(offset + limit)})
    if offset > 0:
        links.append({"rel": "prev", "type": GEOJSON, "href": at(max(offset - limit, 0))})
    return links


def feature_collection(
    request: Request,
    features: list[dict[str, Any]],
    *,
    offset: int,
    limit: int,
    matched: int,
) -> dict[str, Any]:
    """A paged FeatureCollection with counts (OGC API style) and self/next/prev links."""
    return {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(features),
        "features": features,
        "links": page_links(request, offset=offset, limit=limit, matched=matched),
    }


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (degrees) as a tuple; InputError saying what is wrong."""
    try:
        return _bbox(raw)
    except ValueError as exc:
        raise InputError(str(exc), field="bbox") from exc


def _bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) != 4:
        raise ValueError("bbox needs 4 numbers: minlon,minlat,maxlon,maxlat")
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"bbox '{raw}' has a value that is not a number") from exc
    values = (minx, miny, maxx, maxy)
    if not all(-180 <= x <= 180 for x in (minx, maxx)) or not all(
        -90 <= y <= 90 for y in (miny, maxy)
    ):
        raise ValueError("bbox must be within lon -180..180 and lat -90..90 (lon first)")
    if miny > maxy or minx > maxx:
        # A bbox across the antimeridian (minlon > maxlon) is not supported yet: send two.
        raise ValueError("bbox needs minlon <= maxlon and minlat <= maxlat")
    return values
