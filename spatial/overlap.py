"""Overlaps (channel conflicts): the pairs of a layer's territories whose interiors overlap.

Two territories overlap when their intersection has a polygonal part of at least a tolerance
(0.01 km² by default): territories that only touch (a shared border or a point) do not, and
slivers below the tolerance (digitising noise) are ignored.

How, and why:

* Candidate pairs come from one ``STRtree.query(geoms)`` on boxes, kept as (i, j) with i < j.
  No exact ``intersects`` test first: the intersection below costs little more than the test
  for a pair whose boxes meet and whose shapes do not (both are cut to the common box first).
* Each pair's intersection is computed by Clipper2 (``spatial.clip``): on integer coordinates
  (a 1e-9-degree grid, ~0.1 mm), each shape cut to the pair's common box, one sweep. It is
  exact and ~3x cheaper than GEOS's OverlayNG per pair (32,000 pairs of random territories:
  ~0.4 vs ~1.2 CPU-s), which builds a topology graph per pair and noding checks and fallbacks
  for floating point. The answer is always polygonal (a touch along a border or at a point
  leaves nothing), exteriors counter-clockwise.
* The intersections run in a thread pool by slices of pairs (the library releases the GIL),
  their geodesic areas too (NumPy releases it in its loops); 2 cores: ~1.6x.
* Areas are geodesic (WGS 84) in km², as PostGIS ``ST_Area(geom::geography)`` gives them; see
  ``spatial.measure.geodesic_area_km2`` for how they are computed fast.

Coordinates are lon/lat degrees (EPSG:4326).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
import shapely

from spatial.clip import GRID, Rings, intersect_pairs
from spatial.errors import SpatialError
from spatial.geometry import unprepared_copies
from spatial.measure import geodesic_area_km2

DEFAULT_MIN_AREA_KM2 = 0.01  # 100 m x 100 m: below this an overlap is digitising noise

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
GeomArray = npt.NDArray[np.object_]

_SLICE = 512  # fewest pairs per thread's slice: ~8 ms of intersections, far above a hand-over
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
    geom_arr = np.asarray(geoms, dtype=object).ravel()
    if id_arr.size != geom_arr.size:
        raise SpatialError("ids and geoms must have the same length")
    workers = threads or os.cpu_count() or 1
    if workers < 1:
        raise SpatialError("threads must be >= 1", field="threads")
    with ThreadPoolExecutor(workers) as executor:
        pool = _Pool(executor, workers)
        # The territories' own areas (for the percentages) meanwhile, in the pool.
        own_km2 = executor.submit(geodesic_area_km2, geom_arr) if areas_km2 is None else None
        first, second = _box_pairs(geom_arr, among)
        # Only the territories in a pair go onto the grid (with ``among``, a few of many).
        used, at = np.unique(np.r_[first, second], return_inverse=True)
        overlap, area = _overlaps(Rings(geom_arr[used]), at[: first.size], at[first.size :], pool)
        own = (
            own_km2.result()
            if own_km2 is not None
            else np.asarray(areas_km2, dtype=np.float64).ravel()
        )
    keep = (area >= min_area_km2) & (area > 0)  # > 0: a touch is never an overlap
    first, second, overlap, area = first[keep], second[keep], overlap[keep], area[keep]
    swap = id_arr[first] > id_arr[second]  # each pair as (smaller id, larger id)
    first, second = np.where(swap, second, first), np.where(swap, first, second)
    # An overlap is never larger than either territory: where one holds the other, the snap
    # to the grid (spatial.clip) could otherwise make it larger by a few parts in 1e9.
    area = np.minimum(area, np.minimum(own[first], own[second]))
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


def _box_pairs(geoms: GeomArray, among: npt.ArrayLike | None) -> tuple[IntArray, IntArray]:
    """Positions (i, j), i < j, of the territories whose boxes meet (with ``among``: only
    pairs with one of those positions)."""
    tree = shapely.STRtree(geoms)
    if among is None:
        left, right = tree.query(geoms)
    else:
        picked = np.unique(np.asarray(among, dtype=np.int64).ravel())
        hit, right = tree.query(geoms[picked])
        left = picked[hit]
    first, second = np.minimum(left, right), np.maximum(left, right)
    key = np.unique(first[first != second] * geoms.size + second[first != second])
    return (key // geoms.size).astype(np.int64), (key % geoms.size).astype(np.int64)


def _overlaps(
    rings: Rings, first: IntArray, second: IntArray, pool: _Pool
) -> tuple[GeomArray, FloatArray]:
    """Each pair's overlap (maybe empty) and its km², by slices in the pool."""
    out = np.empty(first.size, dtype=object)
    area = np.zeros(first.size)
    positions = np.arange(first.size)
    for at, (overlap, km2) in zip(
        *_in_slices(lambda k: _overlay(rings, first[k], second[k]), positions, pool), strict=True
    ):
        out[at], area[at] = overlap, km2
    return out, area


def _in_slices(
    run: Callable[[IntArray], T], positions: IntArray, pool: _Pool
) -> tuple[list[IntArray], list[T]]:
    """``run`` over slices of ``positions`` in the pool; the slices and their answers."""
    # A few slices per thread, so that one slow slice does not leave a core idle at the end.
    step = max(_SLICE, -(-positions.size // (4 * pool.threads)))
    slices = [positions[k : k + step] for k in range(0, positions.size, step)]
    return slices, list(pool.executor.map(run, slices))


def _overlay(rings: Rings, first: IntArray, second: IntArray) -> tuple[GeomArray, FloatArray]:
    """Each pair's intersection and its area (km²); thread-safe."""
    out = intersect_pairs(rings, first, second)
    return out, geodesic_area_km2(out)


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
    # Widened by one grid step: the overlaps' vertices were snapped to it (spatial.clip).
    pad = np.array([-1.0, -1.0, 1.0, 1.0]) / GRID
    boxes = shapely.box(*(shapely.bounds(found.geoms) + pad).T)
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
