"""Overlaps (channel conflicts): the pairs of a layer's territories whose interiors overlap.

Two territories overlap when their intersection has a polygonal part of at least a tolerance
(0.01 km² by default): territories that only touch (a shared border or a point) do not, and
slivers below the tolerance (digitising noise) are ignored.

How, and why:

* Candidate pairs come from one ``STRtree.query(geoms)`` on boxes, kept as (i, j) with i < j,
  then one prepared ``intersects`` per pair, on the territory with more vertices (a tree query
  with the predicate tests each pair twice, once from each side: 2x the work).
* A pair where one territory covers the other overlaps by the smaller one whole: no overlay
  is run for it (prepared ``covers``, far cheaper than an intersection, and only where one's
  box holds the other's).
* In a coverage most candidates only touch: when a sample says so, a relate test (interiors
  meet?) drops them before the overlay, which costs three times as much per pair.
* The others get vectorised ``shapely.intersection`` calls; only the polygonal part is kept (an
  intersection of polygons is a GeometryCollection when they overlap in one place and touch in
  another). GEOS's overlay clips both inputs to their common envelope itself (clipping them
  first with ``clip_by_rect`` gained nothing; snap-rounding with ``grid_size`` is 2.5x slower).
* Everything per pair runs in a thread pool: shapely releases the GIL inside GEOS, NumPy
  inside its loops (2 cores: 1.6x). The overlays and their areas go by slices of pairs. The
  prepared tests go by prepared geometry, each to one thread only: GEOS prepared geometries
  are not thread-safe (two threads testing one at once crash the process).
* Areas are geodesic (WGS 84) in km², as PostGIS ``ST_Area(geom::geography)`` gives them; see
  ``spatial.measure.geodesic_area_km2`` for how they are computed fast.

Coordinates are lon/lat degrees (EPSG:4326).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
import shapely

from spatial.errors import SpatialError
from spatial.geometry import unprepared_copies
from spatial.measure import geodesic_area_km2

DEFAULT_MIN_AREA_KM2 = 0.01  # 100 m x 100 m: below this an overlap is digitising noise

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
GeomArray = npt.NDArray[np.object_]

_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7
_SNAP_DEG = 1e-9  # grid of the fallback overlay, degrees (~0.1 mm)
_SAMPLE = 256  # candidate pairs sampled to decide whether a relate test pays
_TOUCHING_WORTH_TESTING = 0.3  # share of touching-only pairs above which it does
_SLICE = 256  # fewest pairs per thread's slice: ~10 ms of overlays, far above a hand-over
T = TypeVar("T")


class _Pool(NamedTuple):
    """Threads to share work out to, and how many."""

    executor: Executor
    threads: int


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
    threads: int | None = None,
) -> Overlaps:
    """Pairs of territories overlapping by at least ``min_area_km2``, with the overlaps.

    ``areas_km2`` (each territory's area, for the percentages) is computed when not given.
    ``among`` (positions) limits the answer to pairs with at least one of those territories.
    ``threads`` share the work out (``os.cpu_count()`` when not given); the answer is the same.
    """
    if not np.isfinite(min_area_km2) or min_area_km2 < 0:
        raise SpatialError("min_area_km2 must be a finite number >= 0", field="min_area_km2")
    id_arr = np.asarray(ids, dtype=np.int64).ravel()
    # Prepared below: copies, as the caller's may be in use by other threads (a look-up index).
    geom_arr = np.asarray(unprepared_copies(np.asarray(geoms, dtype=object).ravel()), dtype=object)
    if id_arr.size != geom_arr.size:
        raise SpatialError("ids and geoms must have the same length")
    workers = threads or os.cpu_count() or 1
    if workers < 1:
        raise SpatialError("threads must be >= 1", field="threads")
    with ThreadPoolExecutor(workers) as executor:
        pool = _Pool(executor, workers)
        # The territories' own areas (for the percentages) meanwhile, in the pool.
        own_km2 = executor.submit(geodesic_area_km2, geom_arr) if areas_km2 is None else None
        first, second = _candidates(geom_arr, among, pool)
        overlap, area = _overlaps(geom_arr, first, second, pool)
        own = (
            own_km2.result()
            if own_km2 is not None
            else np.asarray(areas_km2, dtype=np.float64).ravel()
        )
    keep = (area >= min_area_km2) & (area > 0)  # > 0: a touch is never an overlap
    first, second, overlap, area = first[keep], second[keep], overlap[keep], area[keep]
    swap = id_arr[first] > id_arr[second]  # each pair as (smaller id, larger id)
    first, second = np.where(swap, second, first), np.where(swap, first, second)
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
    geoms: GeomArray, *, among: npt.ArrayLike | None = None, threads: int = 1
) -> tuple[IntArray, IntArray]:
    """Positions (i, j), i < j, of the territories that intersect (borders included)."""
    with ThreadPoolExecutor(threads) as executor:
        geom_arr = np.asarray(geoms, dtype=object).ravel()
        return _candidates(geom_arr, among, _Pool(executor, threads))


def _candidates(
    geoms: GeomArray, among: npt.ArrayLike | None, pool: _Pool
) -> tuple[IntArray, IntArray]:
    """``candidate_pairs``, its exact tests in the pool."""
    tree = shapely.STRtree(geoms)
    # Boxes first (a tree query with a predicate tests every pair twice, once from each side),
    # then one exact test per pair, prepared on the territory with more vertices.
    if among is None:
        left, right = tree.query(geoms)
    else:
        picked = np.unique(np.asarray(among, dtype=np.int64).ravel())
        hit, right = tree.query(geoms[picked])
        left = picked[hit]
    first, second = np.minimum(left, right), np.maximum(left, right)
    key = np.unique(first[first != second] * geoms.size + second[first != second])
    first, second = key // geoms.size, key % geoms.size
    big = shapely.get_num_coordinates(geoms[first]) >= shapely.get_num_coordinates(geoms[second])
    hub, spoke = np.where(big, first, second), np.where(big, second, first)
    meet = _prepared(shapely.intersects, geoms, hub, spoke, pool)
    return first[meet].astype(np.int64), second[meet].astype(np.int64)


def _overlaps(
    geoms: GeomArray, first: IntArray, second: IntArray, pool: _Pool
) -> tuple[GeomArray, FloatArray]:
    """Each pair's overlap (polygonal part of the intersection, maybe empty) and its km²."""
    a, b = geoms[first], geoms[second]
    # One inside the other: the overlap is the inner one whole, no overlay needed. Only a
    # territory whose box holds the other's can cover it: the box test spares most covers.
    box = shapely.bounds(geoms)
    outer, inner = np.r_[first, second], np.r_[second, first]  # both ways round at once
    holds = _holds(box[outer], box[inner])
    covers = np.zeros(outer.size, dtype=bool)
    covers[holds] = _prepared(shapely.covers, geoms, outer[holds], inner[holds], pool)
    a_covers, b_covers = covers[: first.size], covers[first.size :] & ~covers[: first.size]
    out = np.empty(first.size, dtype=object)
    out[a_covers] = b[a_covers]
    out[b_covers] = a[b_covers]
    area = np.zeros(first.size)
    whole = np.flatnonzero(a_covers | b_covers)
    area[whole] = geodesic_area_km2(out[whole])
    rest = np.flatnonzero(~(a_covers | b_covers))
    rest = rest[_interiors_meet(geoms, first[rest], second[rest], pool)]
    # The overlays (GEOS releases the GIL) and their areas (NumPy) in the pool, by slices.
    for at, (overlap, km2) in zip(
        *_in_slices(lambda k: _overlay(a[k], b[k]), rest, pool), strict=True
    ):
        out[at], area[at] = overlap, km2
    return out, area


def _prepared(
    test: Callable[[GeomArray, GeomArray], npt.NDArray[np.bool_]],
    geoms: GeomArray,
    x: IntArray,
    y: IntArray,
    pool: _Pool,
) -> npt.NDArray[np.bool_]:
    """``test(geoms[x], geoms[y])``, ``geoms[x]`` prepared, in the pool's threads.

    GEOS prepared geometries are not thread-safe (two threads testing one at once crash the
    process): the pairs are shared out by the prepared geometry, each to one thread only.
    """
    shapely.prepare(geoms[np.unique(x)])
    # By object, not position: a geometry given at two positions is one prepared geometry.
    _, owner = np.unique(np.fromiter(map(id, geoms), np.int64, geoms.size), return_inverse=True)
    share = owner[x] % pool.threads

    def run(k: int) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        at = np.flatnonzero(share == k)
        return at, np.asarray(test(geoms[x[at]], geoms[y[at]]), dtype=bool)

    out = np.zeros(x.size, dtype=bool)
    for at, hit in pool.executor.map(run, range(pool.threads)):
        out[at] = hit
    return out


def _holds(outer: FloatArray, inner: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether each box (minx, miny, maxx, maxy) ``outer`` holds the box ``inner``."""
    return np.all(outer[:, :2] <= inner[:, :2], axis=1) & np.all(
        outer[:, 2:] >= inner[:, 2:], axis=1
    )


def _in_slices(
    run: Callable[[IntArray], T], positions: IntArray, pool: _Pool
) -> tuple[list[IntArray], list[T]]:
    """``run`` over slices of ``positions`` in the pool; the slices and their answers."""
    # A few slices per thread, so that one slow slice does not leave a core idle at the end.
    step = max(_SLICE, -(-positions.size // (4 * pool.threads)))
    slices = [positions[k : k + step] for k in range(0, positions.size, step)]
    return slices, list(pool.executor.map(run, slices))


def _overlay(a: GeomArray, b: GeomArray) -> tuple[GeomArray, FloatArray]:
    """The polygonal part of each pair's intersection and its area (km²); thread-safe."""
    out = polygonal_part(_intersection(a, b))
    return out, geodesic_area_km2(out)


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


def _interiors_meet(
    geoms: GeomArray, first: IntArray, second: IntArray, pool: _Pool
) -> npt.NDArray[np.bool_]:
    """Which pairs' interiors meet; all True when testing would cost more than it saves.

    In a coverage (counties, layers composed from them) most candidate pairs only touch, and
    a relate test (~20 µs a pair) is far cheaper than their intersection (~60 µs). Among drawn
    territories most candidates do overlap and the test is wasted: a sample decides.
    """
    sample = np.unique(np.linspace(0, first.size - 1, min(first.size, _SAMPLE)).astype(np.int64))
    if not sample.size:
        return np.ones(first.size, dtype=bool)
    interiors = partial(shapely.relate_pattern, pattern="T********")
    touching = ~_prepared(interiors, geoms, first[sample], second[sample], pool)
    if touching.mean() < _TOUCHING_WORTH_TESTING:
        return np.ones(first.size, dtype=bool)
    return _prepared(interiors, geoms, first, second, pool)


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
    # The territories met are prepared as copies: the caller's may be in use by other threads.
    geom_arr = geom_arr.copy()
    used = np.union1d(found.first, found.second)
    geom_arr[used] = unprepared_copies(geom_arr[used])
    shapely.prepare(geom_arr[used])
    inside = shapely.intersects_xy(
        geom_arr[found.first[pair]], xs[point], ys[point]
    ) & shapely.intersects_xy(geom_arr[found.second[pair]], xs[point], ys[point])
    pair, point = pair[inside], point[inside]
    order = np.lexsort((point, pair))
    return pair[order].astype(np.int64), point[order].astype(np.int64)
