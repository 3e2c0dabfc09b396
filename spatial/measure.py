"""Measures on the ellipsoid: areas in m² as PostGIS ``ST_Area(geom::geography)`` gives them.

Edges are geodesics on WGS 84 (as PostGIS geography treats them), not straight lines in
lon/lat nor in a projection, so engine areas and PostGIS areas agree to a fraction of a
per mille even for polygons many degrees wide. Never square degrees.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod

_GEOD = Geod(ellps="WGS84")


def geodesic_area_m2(geoms: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Area (m²) of each (Multi)Polygon in lon/lat degrees; 0 for empty or non-polygonal."""
    arr = np.asarray(geoms, dtype=object).ravel()
    out = np.zeros(arr.size, dtype=np.float64)
    polygonal = shapely.get_type_id(arr)
    # Exterior counter-clockwise, holes clockwise: the signed ring areas then add up to the
    # polygon's area (pyproj's sign follows orientation).
    for i in np.flatnonzero(np.isin(polygonal, (3, 6)) & ~shapely.is_empty(arr)).tolist():
        oriented = shapely.orient_polygons(arr[i])
        out[i] = abs(_GEOD.geometry_area_perimeter(oriented)[0])
    return out


def geodesic_area_km2(geoms: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Area (km²) of each (Multi)Polygon, as ``geodesic_area_m2`` / 1e6."""
    return geodesic_area_m2(geoms) / 1e6
