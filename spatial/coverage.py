"""Coverage maps: colours that touching territories never share, and simplification that keeps
shared borders shared.

* **Colours**: territories that touch (a shared border or a single point) or overlap are
  neighbours. A layer without overlaps is a map, whose neighbour graph has a vertex of degree
  at most 5 (a planar graph's degeneracy), so a greedy colouring in *smallest-last* order never
  needs more than 6 colours (0-5). The ordering is a sequential peeling of the graph, done in
  a small Python loop over a heap: a few milliseconds for 3,230 counties.
* **Simplification**: ``shapely.coverage_simplify`` (GEOS's coverage simplifier, as PostGIS
  ``ST_CoverageSimplify``) simplifies each shared edge once, so neighbours keep one border and no
  gaps or slivers open between them, as simplifying each polygon on its own would.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import numpy.typing as npt
import shapely

from spatial.errors import SpatialError
from spatial.geometry import unprepared_copies

MAX_COLORS = 6
_PAIRS_PER_BATCH = 8  # neighbour pairs intersected at once while looking for a real overlap
FLAW_SHARE = 0.01  # overlaps under 1 % of the smaller territory are data flaws, not intent
EARTH_M_PER_DEGREE = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
TILE_PIXEL_M = 156_543.03392  # metres per pixel of a 256-px web-mercator tile at zoom 0, equator

IntArray = npt.NDArray[np.int64]


def neighbours(geoms: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Pairs (i < j) of territories that touch or overlap, by position."""
    arr = np.asarray(geoms, dtype=object)
    if not arr.size:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # The query prepares what it is given, or uses it prepared: copies, as the caller's may be
    # a look-up index's, in use by other threads (see unprepared_copies).
    mine = unprepared_copies(arr)
    a, b = shapely.STRtree(mine).query(mine, predicate="intersects")
    keep = a < b
    return a[keep].astype(np.int64), b[keep].astype(np.int64)


def colors(geoms: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """A colour 0..5 per territory such that neighbours differ (when 6 suffice, always for maps).

    Where overlaps make the neighbour graph need more, the extra colours wrap around modulo 6:
    ``conflicts`` tells how many neighbour pairs then share one.
    """
    n = len(np.asarray(geoms, dtype=object))
    a, b = neighbours(geoms)
    adjacency = _adjacency(n, a, b)
    color = np.full(n, -1, dtype=np.int64)
    for v in reversed(_smallest_last(adjacency)):
        used = {int(c) for c in color[adjacency[v]] if c >= 0}
        color[v] = next(c for c in range(len(used) + 1) if c not in used)
    return (color % MAX_COLORS).astype(np.int8)


def conflicts(geoms: npt.ArrayLike, color: npt.ArrayLike) -> int:
    """How many neighbour pairs share a colour (0 for any layer without overlaps)."""
    a, b = neighbours(geoms)
    c = np.asarray(color)
    return int((c[a] == c[b]).sum())


def _adjacency(n: int, a: IntArray, b: IntArray) -> list[IntArray]:
    """Neighbours of each vertex, from the pair list (both directions)."""
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    order = np.argsort(src, kind="stable")
    bounds = np.searchsorted(src[order], np.arange(n + 1))
    dst = dst[order]
    return [dst[bounds[v] : bounds[v + 1]] for v in range(n)]


def _smallest_last(adjacency: list[IntArray]) -> list[int]:
    """Vertices in the order they are peeled off, always one of the smallest remaining degree."""
    degree = [len(nbrs) for nbrs in adjacency]
    heap = [(d, v) for v, d in enumerate(degree)]
    heapq.heapify(heap)
    removed = [False] * len(adjacency)
    order: list[int] = []
    while heap:
        d, v = heapq.heappop(heap)
        if removed[v] or d != degree[v]:
            continue  # a stale entry: the vertex lost neighbours since it was pushed
        removed[v] = True
        order.append(v)
        for u in adjacency[v].tolist():
            if not removed[u]:
                degree[u] -= 1
                heapq.heappush(heap, (degree[u], u))
    return order


def tolerance_for_zoom(zoom: int) -> float:
    """Simplification tolerance (metres) for a web-map zoom: one 256-px tile pixel there."""
    if not 0 <= zoom <= 22:
        raise SpatialError(f"zoom {zoom} is outside 0..22", field="zoom")
    return TILE_PIXEL_M / 2**zoom


def simplify(geoms: npt.ArrayLike, *, tolerance_m: float) -> npt.NDArray[np.object_]:
    """The territories simplified together (shared borders stay shared), tolerance in metres.

    Give it ``cleaned(geoms)``: a coverage with flaws would open holes at the flaws.

    Degrees are converted at the equator's 111.32 km: a slightly coarser tolerance towards the
    poles, where a degree of longitude is shorter, which a map at one zoom does not show.
    Parts made invalid (possible only where territories overlap, which is not a coverage) are
    repaired.
    """
    if not np.isfinite(tolerance_m) or tolerance_m < 0:
        raise SpatialError(f"tolerance_m must be >= 0, not {tolerance_m}", field="tolerance_m")
    arr = np.asarray(geoms, dtype=object)
    if not arr.size or tolerance_m == 0:
        return arr
    tolerance = tolerance_m / EARTH_M_PER_DEGREE
    out = np.asarray(shapely.coverage_simplify(arr, tolerance), dtype=object)
    # Coordinates rounded to a thousandth of the tolerance: digits below it only cost bytes.
    # A shared vertex rounds the same way on both sides, so shared borders stay shared; a
    # coarser grid folded the smallest polygons at low zooms into their neighbours.
    # At most 15 decimals (a float64 degree has no more): a tiny tolerance (1e-308 m) asked for
    # 316, and rounding to those overflowed into NaN coordinates, rings no longer closed.
    digits = min(15, max(0, math.ceil(-math.log10(tolerance / 1000))))
    out = np.asarray(shapely.transform(out, lambda xy: np.round(xy, digits)), dtype=object)
    _repair(out)
    return out


def cleaned(geoms: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """The layer made a clean coverage when it is one but for small flaws; simplify that.

    Source data often has shared edges that do not match vertex for vertex (13 of the US
    counties do); simplified as they are, those spots open holes. Overlaps under
    ``FLAW_SHARE`` of the smaller territory are such flaws, and GEOS's coverage cleaner
    removes them. A layer whose territories overlap on purpose is drawn as it is: cleaning
    would hide its overlaps.
    """
    geoms = np.asarray(geoms, dtype=object)
    if not geoms.size or shapely.coverage_is_valid(geoms):
        return geoms
    a, b = neighbours(geoms)
    area = shapely.area(geoms)  # square degrees
    smaller = np.minimum(area[a], area[b])
    # A batch of pairs at a time, stopping at the first overlap beyond a flaw: a layer that
    # overlaps on purpose shows it early, and its later pairs need no intersection (the
    # partners layer of bench/bench_load.py: 41 -> 12 ms, redone after every reshape).
    for start in range(0, a.size, _PAIRS_PER_BATCH):
        pick = slice(start, start + _PAIRS_PER_BATCH)
        overlap = shapely.area(shapely.intersection(geoms[a[pick]], geoms[b[pick]]))
        if (overlap > FLAW_SHARE * smaller[pick]).any():
            return geoms
    return np.asarray(shapely.coverage_clean(geoms), dtype=object)


def _repair(geoms: npt.NDArray[np.object_]) -> None:
    """Make the invalid ones valid, in place."""
    broken = ~shapely.is_valid(geoms)
    if broken.any():
        # "structure" with collapsed parts dropped: polygons stay polygons (no stray lines).
        geoms[broken] = shapely.make_valid(geoms[broken], method="structure", keep_collapsed=False)
