"""Reading and validating input geometries: GeoJSON in, valid lon/lat (Multi)Polygons out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from spatial.errors import (
    CoordinateRangeError,
    GeometryTooLargeError,
    GeometryTypeError,
    InvalidGeometryError,
    MalformedGeometryError,
)

POLYGONAL_TYPES = ("Polygon", "MultiPolygon")
_LOCATION = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")


# Vertices one territory (or drawn market) may have. The reference states have at most 4,148
# (all of them together 15,586); full-resolution TIGER outlines run to a few hundred thousand.
# A million keeps every real boundary in while a runaway polygon cannot hold a worker
# (validity checks, overlays and look-up indexes cost n log n and more in vertices).
MAX_VERTICES = 1_000_000


def polygonal_from_geojson(
    obj: Any, *, repair: bool = False, field: str = "geometry", max_vertices: int = MAX_VERTICES
) -> MultiPolygon:
    """A valid, counter-clockwise MultiPolygon (degrees, EPSG:4326) from a GeoJSON geometry."""
    # RFC 7946 positions may carry an altitude; territories are 2D, so it is dropped.
    geom = shapely.force_2d(_read(obj, field))
    if geom.geom_type not in POLYGONAL_TYPES:
        raise GeometryTypeError(
            f"a territory needs a Polygon or MultiPolygon, got {geom.geom_type}", field=field
        )
    vertices = shapely.get_num_coordinates(geom)
    if vertices > max_vertices:
        raise GeometryTooLargeError(
            f"the geometry has {vertices:,} vertices; at most {max_vertices:,} per shape: "
            "simplify it (e.g. ST_Simplify, mapshaper) or split it into several territories",
            field=field,
        )
    check_coordinates(geom, field=field)
    if geom.is_empty:
        raise InvalidGeometryError("the geometry is empty", field=field)
    if not geom.is_valid:
        geom = _repaired(geom, field) if repair else _raise_invalid(geom, field)
    return as_multipolygon(geom)


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """The polygonal part of ``geom`` as a MultiPolygon, exteriors counter-clockwise (RFC 7946)."""
    # Two levels of get_parts flatten a collection of MultiPolygons (what make_valid returns).
    parts = shapely.get_parts(shapely.get_parts(geom))
    polygons = [p for p in parts if isinstance(p, Polygon) and not p.is_empty]
    return shapely.orient_polygons(MultiPolygon(polygons), exterior_cw=False)


def check_coordinates(geom: BaseGeometry, *, field: str = "geometry") -> None:
    """Raise if a coordinate is not finite or outside lon ±180 / lat ±90 (degrees)."""
    coords = shapely.get_coordinates(geom)
    bad = invalid_lonlat(coords[:, 0], coords[:, 1])
    if bad.size:
        lon, lat = coords[bad[0]]
        raise CoordinateRangeError(
            f"coordinate [{lon}, {lat}] is outside lon -180..180 / lat -90..90 or not a number "
            "(GeoJSON positions are [longitude, latitude])",
            field=field,
        )


def unprepared_copies(geoms: Any) -> Any:
    """Fresh copies (same coordinates, nothing prepared) of a geometry or an array of them.

    GEOS prepared geometries are not thread-safe (libgeos/geos#825): they build their indexes
    lazily, on first use, and two threads doing that at once corrupt the heap (the process
    aborts). So work that prepares geometries which may be in use elsewhere (a layer's look-up
    index, a cached answer) prepares its own copies (about 26 ms for 645,000 vertices).
    """
    return shapely.transform(geoms, _same, include_z=None)


def ring_coordinates(
    geoms: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ring's vertices (degrees, each ring closed) and each vertex's ring; each ring's
    geometry and sign (+1 an exterior, -1 a hole). Non-empty (Multi)Polygons only."""
    arr = np.asarray(geoms, dtype=object).reshape(-1)
    # A polygon without holes is its one ring: its coordinates are read without making a
    # geometry per part and per ring (clones, and garbage to collect; most shapes are such).
    plain = (shapely.get_type_id(arr) == 3) & (shapely.get_num_interior_rings(arr) == 0)
    simple = np.flatnonzero(plain)
    xy_simple, ring_simple = shapely.get_coordinates(arr[simple], return_index=True)
    others = np.flatnonzero(~plain)
    polys, poly_geom = shapely.get_parts(arr[others], return_index=True)
    # An empty part has no ring at all (not even an exterior): counted, it would shift every
    # ring after it from exterior to hole.
    kept = ~shapely.is_empty(polys)
    polys, poly_geom = polys[kept], poly_geom[kept]
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    xy_other, ring_other = shapely.get_coordinates(rings, return_index=True)
    # The first ring of each polygon is its exterior; the others are holes.
    starts = np.r_[0, np.cumsum(shapely.get_num_interior_rings(polys) + 1)[:-1]]
    sign = -np.ones(rings.size)
    sign[starts[: polys.size]] = 1
    return (
        np.concatenate([xy_simple, xy_other]),
        np.concatenate([ring_simple, ring_other + simple.size]),
        np.concatenate([simple, others[poly_geom[ring_poly]]]),
        np.concatenate([np.ones(simple.size), sign]),
    )


def _same(coords: np.ndarray) -> np.ndarray:
    return coords


def invalid_lonlat(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Indices of points whose lon/lat (degrees) is not finite or out of range."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    return np.flatnonzero(~ok)


def _read(obj: Any, field: str) -> BaseGeometry:
    if not isinstance(obj, Mapping) or "type" not in obj:
        raise MalformedGeometryError("expected a GeoJSON geometry object with a type", field=field)
    if obj["type"] in POLYGONAL_TYPES and "coordinates" not in obj:
        raise MalformedGeometryError(f"a {obj['type']} needs coordinates", field=field)
    try:
        return shape(obj)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise MalformedGeometryError(
            f"not a readable GeoJSON geometry: {exc}", field=field
        ) from exc
    except shapely.errors.ShapelyError as exc:
        raise MalformedGeometryError(
            f"not a readable GeoJSON geometry: {exc}", field=field
        ) from exc


def _raise_invalid(geom: BaseGeometry, field: str) -> BaseGeometry:
    reason = shapely.is_valid_reason(geom)
    match = _LOCATION.search(reason)
    location = (float(match.group(1)), float(match.group(2))) if match else None
    raise InvalidGeometryError(
        f"invalid geometry: {reason}; fix the rings, or send ?repair=true to repair it "
        "with make_valid",
        field=field,
        location=location,
    )


def _repaired(geom: BaseGeometry, field: str) -> BaseGeometry:
    fixed = as_multipolygon(shapely.make_valid(geom))
    if fixed.is_empty:
        raise InvalidGeometryError("the geometry has no area left after repair", field=field)
    return fixed
