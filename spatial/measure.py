"""Measures on the ellipsoid: areas in m² as PostGIS ``ST_Area(geom::geography)`` gives them.

Edges are geodesics on WGS 84 (as PostGIS geography treats them), not straight lines in
lon/lat nor in a projection, so engine areas and PostGIS areas agree to a fraction of a
per mille even for polygons many degrees wide. Never square degrees. The default path is
vectorised over every vertex (24,000 overlaps: 3.2 s one by one, a small fraction this way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod

from spatial.geometry import ring_coordinates

FloatArray = npt.NDArray[np.float64]

_GEOD = Geod(ellps="WGS84")


def geodesic_area_m2(geoms: npt.ArrayLike, *, exact: bool = False) -> npt.NDArray[np.float64]:
    """Area (m²) of each (Multi)Polygon in lon/lat degrees; 0 for empty or non-polygonal.

    Vectorised on the authalic sphere, within ``MAX_FAST_ERROR`` of the ellipsoid's geodesic
    area; ``exact`` measures every geometry on the ellipsoid (pyproj, one at a time).
    """
    arr = np.asarray(geoms, dtype=object).ravel()
    return _exact_m2(arr) if exact else _fast_km2(arr) * 1e6


def geodesic_area_km2(geoms: npt.ArrayLike, *, exact: bool = False) -> npt.NDArray[np.float64]:
    """Area (km²) of each (Multi)Polygon, as ``geodesic_area_m2`` / 1e6."""
    return geodesic_area_m2(geoms, exact=exact) / 1e6


def _exact_m2(arr: npt.NDArray[np.object_]) -> npt.NDArray[np.float64]:
    """Area (m²) on the ellipsoid, geometry by geometry (pyproj's geodesic polygon area)."""
    out = np.zeros(arr.size, dtype=np.float64)
    polygonal = shapely.get_type_id(arr)
    # Exterior counter-clockwise, holes clockwise: the signed ring areas then add up to the
    # polygon's area (pyproj's sign follows orientation).
    for i in np.flatnonzero(np.isin(polygonal, (3, 6)) & ~shapely.is_empty(arr)).tolist():
        oriented = shapely.orient_polygons(arr[i])
        out[i] = abs(_GEOD.geometry_area_perimeter(oriented)[0])
    return out


# WGS 84, and the authalic (equal-area) sphere of the same surface area.
_A_M = 6_378_137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_E = np.sqrt(_E2)
# On the authalic sphere a great-circle edge of L radians strays from the ellipsoid's geodesic
# by O(f L² R): the area between them is below f L³ R² / 8 (measured: at most 0.13 f L³ R²
# over 24,000 overlaps, boxes and slivers; this bound is twice that).
_ERROR_PER_CUBE_KM2 = 0.25 * _F * 6_371.0088**2
MAX_FAST_ERROR = 1e-5  # relative; beyond it, exact (measure.py agrees with PostGIS to 1e-4)
# Longer edges get points along their geodesic first, so that sub-edges stay short: the error
# bound grows with the cube of an edge's length, and one 10° box edge alone would otherwise
# send a whole white space (100,000 vertices of coast) to the exact path, one by one.
MAX_EDGE_DEG = 0.5


def _q(sin_lat: FloatArray) -> FloatArray:
    """Snyder's q(φ): authalic latitude ξ = asin(q(φ) / q(90°))."""
    # ln((1 - e s) / (1 + e s)) / (2e) = -artanh(e s) / e: one ufunc pass instead of three.
    return (1 - _E2) * (sin_lat / (1 - _E2 * sin_lat**2) + np.arctanh(_E * sin_lat) / _E)


_Q_POLE = float(_q(np.array([1.0]))[0])
_AUTHALIC_R2_M2 = _A_M**2 * _Q_POLE / 2  # R_q², m²


def _fast_km2(arr: npt.NDArray[np.object_]) -> npt.NDArray[np.float64]:
    """Area (km²) of each (Multi)Polygon, vectorised; the exact path where it could miss.

    Vectorised over every vertex at once on the authalic sphere (the sphere with the
    ellipsoid's surface area; latitudes mapped to authalic latitudes, an equal-area map), with
    each edge a great circle. Where that could differ from the ellipsoid's geodesic edges by
    more than ``MAX_FAST_ERROR`` of the area (long edges, thin slivers) the geometry goes to
    the exact path (pyproj, one geometry at a time, ~10x slower per vertex).
    """
    out = np.zeros(arr.size, dtype=np.float64)
    live = np.flatnonzero(np.isin(shapely.get_type_id(arr), (3, 6)) & ~shapely.is_empty(arr))
    if not live.size:
        return out
    coords, ring_in, ring_geom, ring_sign = ring_coordinates(arr[live])
    xy, ring_of, cube = _split_long_edges(coords, ring_in)
    lon, lat = np.radians(xy[:, 0]), np.radians(xy[:, 1])
    # tan(ξ/2) from sin ξ = q(φ) / q(90°): sin ξ / (1 + cos ξ), no arcsin and tan per vertex.
    sin_xi = np.clip(_q(np.sin(lat)) / _Q_POLE, -1, 1)
    half_tan = sin_xi / (1 + np.sqrt(1 - sin_xi**2))
    d_lon = np.diff(lon)
    d_lon = (d_lon + np.pi) % (2 * np.pi) - np.pi  # across the antimeridian
    # Area between each great-circle edge and the equator (spherical excess, radians²):
    # tan(E/2) = tan(Δλ/2) (tan(ξ1/2) + tan(ξ2/2)) / (1 + tan(ξ1/2) tan(ξ2/2)).
    excess = 2 * np.arctan2(
        np.tan(d_lon / 2) * (half_tan[:-1] + half_tan[1:]), 1 + half_tan[:-1] * half_tan[1:]
    )
    # The "edge" from a ring's last point (which repeats its first) to the next ring's first
    # counts for nothing.
    excess[ring_of[1:] != ring_of[:-1]] = 0.0
    ring_area = np.abs(np.bincount(ring_of[:-1], weights=excess, minlength=ring_geom.size))
    out[live] = np.bincount(ring_geom, weights=ring_sign * ring_area, minlength=live.size)
    out[live] *= _AUTHALIC_R2_M2 / 1e6

    # Where that can miss by more than MAX_FAST_ERROR of the area, the exact path decides.
    cubes = np.bincount(ring_of[:-1], weights=cube, minlength=ring_geom.size)
    cubes = np.bincount(ring_geom, weights=cubes, minlength=live.size)
    bound_km2 = _ERROR_PER_CUBE_KM2 * cubes
    long_geom = np.flatnonzero(bound_km2 > MAX_FAST_ERROR * out[live])
    if long_geom.size:
        exact_m2 = _exact_rings_m2(coords, ring_in, ring_geom, ring_sign, long_geom)
        out[live[long_geom]] = exact_m2 / 1e6
    return out


def _exact_rings_m2(
    coords: FloatArray,
    ring_of: npt.NDArray[np.intp],
    ring_geom: npt.NDArray[np.intp],
    ring_sign: FloatArray,
    geoms: npt.NDArray[np.intp],
) -> FloatArray:
    """Area (m²) on the ellipsoid of the geometries ``geoms``, ring by ring (pyproj's geodesic
    polygon area) from the rings already read: no geometry made, nothing oriented (each
    ring's area taken unsigned, then signed as an exterior or a hole)."""
    start = np.searchsorted(ring_of, np.arange(ring_geom.size + 1))
    rings = np.flatnonzero(np.isin(ring_geom, geoms))
    areas = [
        abs(_GEOD.polygon_area_perimeter(coords[a:b, 0], coords[a:b, 1])[0])
        for a, b in zip(start[rings].tolist(), start[rings + 1].tolist(), strict=True)
    ]
    signed = ring_sign[rings] * np.asarray(areas)
    total = np.bincount(ring_geom[rings], weights=signed, minlength=int(ring_geom.max()) + 1)
    return total[geoms].astype(np.float64)


def _split_long_edges(
    xy: FloatArray, ring_of: npt.NDArray[np.intp]
) -> tuple[FloatArray, Any, FloatArray]:
    """The rings' vertices (degrees) with points added along every edge longer than
    ``MAX_EDGE_DEG``, on its geodesic (so the shape, with geodesic edges, is the same); and
    the cube of each (resulting) edge's length in radians, summed per edge of the input."""
    same = ring_of[1:] == ring_of[:-1]
    d_lon = (np.diff(xy[:, 0]) + 180) % 360 - 180
    approx_deg = np.hypot(d_lon * np.cos(np.radians(xy[:-1, 1])), np.diff(xy[:, 1]))
    approx_deg[~same] = 0.0  # between rings: no edge
    long = np.flatnonzero(approx_deg > MAX_EDGE_DEG)
    cube = np.radians(approx_deg) ** 3
    if not long.size:
        return xy, ring_of, cube
    pieces = np.ones(len(xy), dtype=np.int64)  # per vertex: itself and the points after it
    pieces[long] = np.ceil(approx_deg[long] / MAX_EDGE_DEG).astype(np.int64)
    added = pieces[long] - 1
    edge = np.repeat(np.arange(long.size), added)  # which long edge each new point is on
    step = np.arange(edge.size) - np.repeat(np.cumsum(added) - added, added) + 1  # 1..k-1
    start, end = xy[long], xy[long + 1]
    azimuth, _, metres = _GEOD.inv(start[:, 0], start[:, 1], end[:, 0], end[:, 1])
    lon, lat, _ = _GEOD.fwd(
        start[edge, 0],
        start[edge, 1],
        np.asarray(azimuth)[edge],
        np.asarray(metres)[edge] * step / pieces[long][edge],
    )
    at = np.cumsum(pieces) - pieces  # where each original vertex goes
    out = np.empty((int(pieces.sum()), 2))
    ring = np.empty(out.shape[0], dtype=ring_of.dtype)
    out[at], ring[at] = xy, ring_of
    new = at[long][edge] + step
    out[new, 0], out[new, 1], ring[new] = lon, lat, ring_of[long][edge]
    # A long edge becomes k sub-edges of about L / k each: k (L / k)³ = L³ / k². The cubes are
    # summed per ring, so each input edge's total may stay at the input edge's place.
    cube[long] /= pieces[long] ** 2
    cube_out = np.zeros(out.shape[0] - 1)
    cube_out[at[:-1]] = cube
    return out, ring, cube_out
