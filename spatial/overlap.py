"""Overlaps (channel conflicts): the pairs of a layer's territories whose interiors overlap.

Two territories overlap when their intersection has a polygonal part of at least a tolerance
(0.01 km² by default): territories that only touch (a shared border or a point) do not, and
slivers below the tolerance (digitising noise) are ignored.

How, and why:

* Candidate pairs come from one ``STRtree.query(geoms, predicate="intersects")`` (the tree
  prepares the query geometries), kept as (i, j) with i < j.
* A pair where one territory covers the other overlaps by the smaller one whole: no overlay
  is run for it (prepared ``covers``, far cheaper than an intersection).
* In a coverage most candidates only touch: when a sample says so, a relate test (interiors
  meet?) drops them before the overlay, which costs three times as much per pair.
* The others get one vectorised ``shapely.intersection``; only its polygonal part is kept (an
  intersection of polygons is a GeometryCollection when they overlap in one place and touch in
  another). GEOS's overlay clips both inputs to their common envelope itself.
* Areas are geodesic (WGS 84) in km², as PostGIS ``ST_Area(geom::geography)`` gives them; see
  ``spatial.measure.geodesic_area_km2`` for how they are computed fast.

Coordinates are lon/lat degrees (EPSG:4326).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from spatial.errors import SpatialError
from spatial.measure import geodesic_area_km2

DEFAULT_MIN_AREA_KM2 = 0.01  # 100 m x 100 m: below this an overlap is digitising noise

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
GeomArray = npt.NDArray[np.object_]

_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7
_SNAP_DEG = 1e-9  # grid of the fallback overlay, degrees (~0.1 mm)
_SAMPLE = 256  # candidate pairs sampled to decide whether a relate test pays
_TOUCHING_WORTH_TESTING = 0.3  # share of touching-only pairs above which it does


@dataclass(frozen=True, eq=False)
class Overlaps:
    """Every overlapping pair, by (first id, second id); ``first``/``second`` index the input."""

    first: IntArray  # (k,) position of the pair's territory with the smaller id
    second: IntArray  # (k,) position of the one with the larger id
    ids: IntArray  # (k, 2) their ids, smaller first
    geoms: GeomArray  # (k,) polygonal overlap (Polygon or MultiPolygon), lon/lat degrees
    area_km2: FloatArray  # (k,) geodesic area of the overlap
    percent: FloatArray  # (k, 2) overlap area as % of each territory's area

    def __len__(self) -> int:
        return len(self.first)


def find_overlaps(
    ids: npt.ArrayLike,
    geoms: npt.ArrayLike,
    *,
    min_area_km2: float = DEFAULT_MIN_AREA_KM2,
    areas_km2: npt.ArrayLike | None = None,
    among: npt.ArrayLike | None = None,
) -> Overlaps:
    """Pairs of territories overlapping by at least ``min_area_km2``, with the overlaps.

    ``areas_km2`` (each territory's area, for the percentages) is computed when not given.
    ``among`` (positions) limits the answer to pairs with at least one of those territories.
    """
    if not np.isfinite(min_area_km2) or min_area_km2 < 0:
        raise SpatialError("min_area_km2 must be a finite number >= 0", field="min_area_km2")
    id_arr = np.asarray(ids, dtype=np.int64).ravel()
    geom_arr = np.asarray(geoms, dtype=object).ravel()
    if id_arr.size != geom_arr.size:
        raise SpatialError("ids and geoms must have the same length")
    first, second = candidate_pairs(geom_arr, among=among)
    overlap = _overlap_geoms(geom_arr, first, second)
    area = geodesic_area_km2(overlap)
    keep = (area >= min_area_km2) & (area > 0)  # > 0: a touch is never an overlap
    first, second, overlap, area = first[keep], second[keep], overlap[keep], area[keep]
    swap = id_arr[first] > id_arr[second]  # each pair as (smaller id, larger id)
    first, second = np.where(swap, second, first), np.where(swap, first, second)
    own = (
        geodesic_area_km2(geom_arr)
        if areas_km2 is None
        else np.asarray(areas_km2, dtype=np.float64).ravel()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        percent = 100 * area[:, None] / np.c_[own[first], own[second]]
    order = np.lexsort((id_arr[second], id_arr[first]))
    return Overlaps(
        first=first[order],
        second=second[order],
        ids=np.c_[id_arr[first], id_arr[second]][order],
        geoms=overlap[order],
        area_km2=area[order],
        percent=np.nan_to_num(percent[order], nan=0.0, posinf=0.0),
    )


def candidate_pairs(
    geoms: GeomArray, *, among: npt.ArrayLike | None = None
) -> tuple[IntArray, IntArray]:
    """Positions (i, j), i < j, of the territories that intersect (borders included)."""
    tree = shapely.STRtree(geoms)
    if among is None:
        left, right = tree.query(geoms, predicate="intersects")
    else:
        picked = np.unique(np.asarray(among, dtype=np.int64).ravel())
        hit, right = tree.query(geoms[picked], predicate="intersects")
        left = picked[hit]
    first, second = np.minimum(left, right), np.maximum(left, right)
    pairs = np.unique(np.c_[first, second][first != second], axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def _overlap_geoms(geoms: GeomArray, first: IntArray, second: IntArray) -> GeomArray:
    """The polygonal part of each pair's intersection (an empty polygon when there is none)."""
    a, b = geoms[first], geoms[second]
    shapely.prepare(a)
    shapely.prepare(b)
    # One inside the other: the overlap is the inner one whole, no overlay needed.
    a_covers = shapely.covers(a, b)
    b_covers = ~a_covers & shapely.covers(b, a)
    out = np.empty(first.size, dtype=object)
    out[a_covers] = b[a_covers]
    out[b_covers] = a[b_covers]
    rest = np.flatnonzero(~(a_covers | b_covers))
    rest = rest[_interiors_meet(a[rest], b[rest])]
    out[rest] = polygonal_part(_intersection(a[rest], b[rest]))
    return out


def _intersection(a: GeomArray, b: GeomArray) -> GeomArray:
    """Pairwise intersections; a pair the overlay cannot node is snapped to a 1e-9° grid."""
    try:
        return np.asarray(shapely.intersection(a, b), dtype=object)
    except shapely.errors.GEOSException:
        # Rare (OverlayNG falls back to snapping itself): redo pair by pair, and snap-round
        # only those that fail (1e-9 degrees is 0.1 mm).
        out = np.empty(a.size, dtype=object)
        for k in range(a.size):
            try:
                out[k] = shapely.intersection(a[k], b[k])
            except shapely.errors.GEOSException:
                out[k] = shapely.intersection(a[k], b[k], grid_size=_SNAP_DEG)
        return out


def _interiors_meet(a: GeomArray, b: GeomArray) -> npt.NDArray[np.bool_]:
    """Which pairs' interiors meet; all True when testing would cost more than it saves.

    In a coverage (counties, layers composed from them) most candidate pairs only touch, and
    a relate test (~20 µs a pair) is far cheaper than their intersection (~60 µs). Among drawn
    territories most candidates do overlap and the test is wasted: a sample decides.
    """
    sample = np.unique(np.linspace(0, a.size - 1, min(a.size, _SAMPLE)).astype(np.int64))
    if not sample.size:
        return np.ones(a.size, dtype=bool)
    touching = ~shapely.relate_pattern(a[sample], b[sample], "T********")
    if touching.mean() < _TOUCHING_WORTH_TESTING:
        return np.ones(a.size, dtype=bool)
    return np.asarray(shapely.relate_pattern(a, b, "T********"), dtype=bool)


def polygonal_part(geoms: GeomArray) -> GeomArray:
    """The polygonal part of each geometry: lines and points dropped, collections filtered."""
    out = np.asarray(geoms, dtype=object).copy()
    types = shapely.get_type_id(out)
    out[~np.isin(types, (_POLYGON, _MULTIPOLYGON, _COLLECTION))] = shapely.Polygon()
    mixed = np.flatnonzero(types == _COLLECTION)
    if mixed.size:
        # Two levels of parts: a collection may hold MultiPolygons as well as Polygons.
        parts, owner = shapely.get_parts(out[mixed], return_index=True)
        polys, sub = shapely.get_parts(parts, return_index=True)
        owner = owner[sub]
        keep = (shapely.get_type_id(polys) == _POLYGON) & ~shapely.is_empty(polys)
        collected = np.full(mixed.size, None, dtype=object)
        collected[:] = [shapely.MultiPolygon()] * mixed.size
        if keep.any():
            shapely.multipolygons(polys[keep], indices=owner[keep], out=collected)
        out[mixed] = collected
    return out


def contested_points(
    found: Overlaps, geoms: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[IntArray, IntArray]:
    """(pair, point) positions of every point inside an overlap, by pair then point.

    A point is inside when both territories of the pair cover it (border included, as the
    ownership rule and PostGIS ``ST_Covers``) and it lies within the overlap's bounds (so a
    point on a border the two merely share elsewhere is not counted).
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if not len(found) or not xs.size:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    geom_arr = np.asarray(geoms, dtype=object).ravel()
    # The overlaps' boxes in a tree, the points against it: one bbox pass, then exact tests.
    boxes = shapely.box(*shapely.bounds(found.geoms).T)
    point, pair = shapely.STRtree(boxes).query(shapely.points(xs, ys))
    shapely.prepare(geom_arr[np.union1d(found.first, found.second)])
    inside = shapely.intersects_xy(
        geom_arr[found.first[pair]], xs[point], ys[point]
    ) & shapely.intersects_xy(geom_arr[found.second[pair]], xs[point], ys[point])
    pair, point = pair[inside], point[inside]
    order = np.lexsort((point, pair))
    return pair[order].astype(np.int64), point[order].astype(np.int64)
