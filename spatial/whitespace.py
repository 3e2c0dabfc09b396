"""White space: the part of a market that no territory of a layer covers, and what lies in it.

The uncovered part is ``market - union(territories)``, as PostGIS
``ST_Difference(market, ST_Union(geom))`` gives it. Why it is computed this way:

* Territories that overlap much (``overlapping``: drawn plans, partners' areas) are taken
  at once, with no union (``uncovered_by``): the market less all of them in one pass of
  Clipper2 per strip (``clip.difference``), the strips on every core and joined back along
  their seams. 500 such territories and the nation: ~10 ms, against ~25 ms for GEOS's union
  and difference, the path below (whose union is not worth keeping for them: the difference
  with it alone costs as much). Coordinates go on a 1e-9-degree grid for it (``clip``).
* Otherwise the union is made once per layer version (``covered_union``) and reused for
  every market: it does not depend on the market, and it is the costly step (the service
  keeps it; ``overlapping`` layers keep none). A layer that tiles its ground
  without overlaps (counties, states) is a *coverage*: ``shapely.coverage_union_all`` merges
  one by matching edges (0.02 s for the 3,230 counties, against 0.25 s for the overlay union)
  but takes only a correctly noded coverage and gives garbage otherwise. So the territories
  are checked first (``coverage_invalid_edges``, split across threads): those with no invalid
  edge form a valid coverage and are merged so, the few others (13 counties are not noded to
  their neighbours) go through the overlay union. A layer of overlapping territories (a
  sample of interior points says so), when its union is asked for, skips the check and takes
  ``disjoint_subset_union_all``, which unions each group of touching territories apart, in
  west-to-east slices (one thread each), the slices' unions joined last.
* The difference is taken per market part, after one vectorised ``covers`` test: parts the
  union covers whole (all of them, for the counties against the states) cost a relate, not an
  overlay, and the overlays left are of one part each against the union. Parts are related
  in threads too, each thread on its own copy of the union (prepared indexes are built on
  first use, which is not thread-safe).
* Threads: shapely releases the GIL inside GEOS, so on a free core a slice runs beside the
  other (``threads``: ``os.cpu_count()`` when not given, 1 for this thread only). The
  coverage functions need shapely >= 2.1 (GEOS >= 3.12), as ``orient_polygons`` already did.
* Customers are not tested against the uncovered polygons: the layer's index already knows
  who is covered (owner -1: nobody), so only those points are tested against the market.

Areas are geodesic km² on WGS 84 (as PostGIS ``ST_Area(geography)``); coordinates are lon/lat
degrees (EPSG:4326). H3 cells come from the ``h3`` package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import h3
import h3.api.numpy_int as h3_int
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from spatial import clip
from spatial.errors import GeometryTypeError, SpatialError
from spatial.geometry import unprepared_copies
from spatial.measure import geodesic_area_km2

MIN_PART_M2 = 1.0  # overlay slivers under 1 m² are floating-point noise, not white space
MAX_H3_RES = 15
# Coverage or not: interior points of this many territories (evenly spread) are tested against
# the layer; when more than OVERLAP_SHARE of them lie in two territories or more, the layer
# overlaps too much for the coverage check (~20 µs a territory) to pay.
PROBE = 64
OVERLAP_SHARE = 0.25
COVERAGE_MIN = 16  # fewer territories: the overlay union is as quick as the check
THREAD_MIN = 200  # fewer territories per thread: one thread is as quick
VERTICES_PER_THREAD = 2_000  # market vertices per thread below which one thread relates all
# The difference in strips: about this many vertices (market and territories) a strip, at most
# MAX_STRIPS. 500 custom territories and the nation (41,000 vertices): 4 strips 10.7 ms, 16
# strips 9.5 ms, 32 strips 12.6 ms (each strip's sweep gets cheaper, seams add points).
STRIP_VERTICES = 2_500
MAX_STRIPS = 64

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
GeomArray = npt.NDArray[np.object_]

_POLYGON = 3


def _geoms(geoms: npt.ArrayLike) -> GeomArray:
    return np.asarray(geoms, dtype=object).reshape(-1)


def _polygons(geom: BaseGeometry | GeomArray) -> GeomArray:
    """The polygons of a geometry or array of them; lines and points (no area) dropped."""
    # Two levels of get_parts flatten a GeometryCollection of MultiPolygons.
    parts = shapely.get_parts(shapely.get_parts(geom))
    return np.asarray(parts[shapely.get_type_id(parts) == _POLYGON], dtype=object)


def covered_union(
    geoms: npt.ArrayLike, *, within: BaseGeometry | None = None, threads: int | None = None
) -> BaseGeometry:
    """The union of the territories (only those meeting ``within``, when given)."""
    arr = _geoms(geoms)
    if within is not None and arr.size:
        arr = arr[shapely.STRtree(arr).query(within, predicate="intersects")]
    if not arr.size:
        return Polygon()
    workers = threads or os.cpu_count() or 1
    if arr.size < COVERAGE_MIN or overlapping(arr):
        return _overlay_union(arr, workers)
    bad = _not_coverage(arr, workers)
    if not bad.any():
        return _coverage_union(arr)
    # The few others united first: one overlay with the coverage's union, not one each.
    return shapely.union(_coverage_union(arr[~bad]), shapely.disjoint_subset_union_all(arr[bad]))


def overlapping(territories: npt.ArrayLike) -> bool:
    """Whether the territories overlap each other much (a sample of them says so): then they
    are not worth checking as a coverage, nor their union worth keeping (``uncovered_by``)."""
    geoms = _geoms(territories)
    if not geoms.size:
        return False
    sample = geoms[np.linspace(0, geoms.size - 1, min(PROBE, geoms.size)).astype(np.intp)]
    # A point on a territory's surface lies inside it, and inside no other in a coverage.
    hits, _ = shapely.STRtree(geoms).query(shapely.point_on_surface(sample), predicate="intersects")
    return bool((np.bincount(hits, minlength=sample.size) > 1).mean() > OVERLAP_SHARE)


def _overlay_union(geoms: GeomArray, threads: int) -> BaseGeometry:
    """The union by overlays: slices west to east united in threads, then the slices' unions."""
    slices = _west_to_east(geoms, threads)
    if len(slices) == 1:
        return shapely.disjoint_subset_union_all(geoms)
    # Slices meet only along a band: the last union overlays a few large polygons (2 ms for
    # the two halves of 500 custom territories, each half 9 ms; union_all takes 12 ms).
    unions = _in_threads(lambda k: shapely.disjoint_subset_union_all(geoms[k]), slices)
    return shapely.disjoint_subset_union_all(unions)


def _west_to_east(geoms: GeomArray, threads: int) -> list[npt.NDArray[np.intp]]:
    """Positions of the territories in up to ``threads`` slices by longitude (one when few)."""
    bounds = shapely.bounds(geoms)
    order = np.argsort(bounds[:, 0] + bounds[:, 2], kind="stable")
    return np.array_split(order, max(1, min(threads, geoms.size // THREAD_MIN)))


def _not_coverage(geoms: GeomArray, threads: int) -> npt.NDArray[np.bool_]:
    """Which territories have an edge that overlaps or is not noded to a neighbour's."""
    boxes = shapely.box(*shapely.bounds(geoms).T)
    # Each slice is checked with the neighbours it has in other slices (what the validator
    # compares a polygon with: those whose envelope meets its own), so every territory's
    # answer is the one the whole layer gives.
    slices = _west_to_east(geoms, threads)
    tree = shapely.STRtree(boxes)

    def check(part: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        _, near = tree.query(boxes[part])
        with_neighbours = np.r_[part, np.setdiff1d(near, part)]
        edges = shapely.coverage_invalid_edges(geoms[with_neighbours])
        return ~shapely.is_empty(edges[: part.size])

    bad = np.zeros(geoms.size, dtype=bool)
    for part, found in zip(slices, _in_threads(check, slices), strict=True):
        bad[part] = found
    return bad


def _coverage_union(geoms: GeomArray) -> BaseGeometry:
    """The union of a valid coverage (no overlaps, edges noded): matched edges dropped."""
    if not geoms.size:
        return Polygon()
    try:
        return shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:  # not noded after all: the overlay union is exact
        return shapely.disjoint_subset_union_all(geoms)


S = TypeVar("S")
T = TypeVar("T")


def _in_threads(run: Callable[[S], T], slices: list[S]) -> list[T]:
    """``run`` over each slice, one thread each (shapely releases the GIL inside GEOS)."""
    if len(slices) <= 1:
        return [run(s) for s in slices]
    with ThreadPoolExecutor(len(slices)) as pool:
        return list(pool.map(run, slices))


def updated_union(
    union: BaseGeometry, *, gone: npt.ArrayLike, added: npt.ArrayLike, current: npt.ArrayLike
) -> BaseGeometry:
    """The union of a layer's territories after a change, from the union before it.

    ``gone``: the old shapes of the territories changed or removed; ``added``: the new shapes
    of those changed or added; ``current``: every territory now. Outside the old shapes,
    nothing was covered or uncovered but what the new shapes add; inside them, a point is
    covered when a territory of now covers it, and every such territory meets the old
    shapes. So one edit costs overlays of the union with a few territories, not the union of
    the whole layer again.
    """
    old, new, now = _geoms(gone), _geoms(added), _geoms(current)
    if not old.size and not new.size:
        return union  # names, owners or nothing changed
    pieces = [union]
    if old.size:
        hole = shapely.union_all(old)
        pieces = [shapely.difference(union, hole), covered_union(now, within=hole)]
    pieces += list(new)
    return shapely.union_all(pieces)


def uncovered_parts(
    market: BaseGeometry, covered: BaseGeometry, *, threads: int | None = None
) -> GeomArray:
    """The polygons of ``market`` that ``covered`` leaves out (slivers under 1 m² dropped)."""
    parts = _market_parts(market)
    if covered.is_empty or not parts.size:
        rest = parts
    else:
        # A prepared geometry builds its indexes on first use, which is not thread-safe, and
        # the union given may be in use by other asks: every thread relates to a copy of its
        # own (~1 ms for the counties' union).
        own = unprepared_copies(covered)
        shapely.prepare(own)
        met = shapely.intersects(own, parts)
        slices = _balanced(shapely.get_num_coordinates(parts[met]), threads or os.cpu_count() or 1)
        copies = [own, *(unprepared_copies(covered) for _ in slices[1:])]
        meeting = parts[met]
        found = _in_threads(
            lambda k: _left_out(meeting[slices[k]], copies[k]), list(range(len(slices)))
        )
        rest = np.concatenate([parts[~met], *found])
    return _finished(rest)


@dataclass(frozen=True, eq=False)
class Uncovered:
    """A market's uncovered polygons (RFC 7946 orientation) and their geodesic areas (km²)."""

    parts: GeomArray
    km2: FloatArray

    @classmethod
    def measured(cls, parts: GeomArray) -> Uncovered:
        """The parts with their areas measured."""
        return cls(parts, geodesic_area_km2(parts))


def uncovered_by(
    market: BaseGeometry, territories: npt.ArrayLike, *, threads: int | None = None
) -> Uncovered:
    """The polygons of ``market`` that no territory covers (slivers under 1 m² dropped), as
    ``uncovered_parts(market, covered_union(territories))`` gives them, without the union;
    with their areas.

    The market less every territory at once, by Clipper2 in strips on the 1e-9-degree grid
    (``clip.difference``): for 500 overlapping territories and the nation, ~6 ms against
    ~25 ms for GEOS's union and difference. Parts of the market no territory's box meets
    (Alaska, Hawaii for territories in the lower 48) are taken whole, without the library.
    The answers are checked (``is_valid``, GEOS, without the GIL) on one thread while they
    are measured on this one: ~1.5 ms of the ~3 the two take one after the other.
    """
    parts = _market_parts(market)
    arr = _geoms(territories)
    arr = arr[np.isin(shapely.get_type_id(arr), (3, 6)) & ~shapely.is_empty(arr)]
    if not parts.size or not arr.size:
        return _measured(parts)
    part_i, near_i = shapely.STRtree(arr).query(parts)  # boxes that meet
    met = np.zeros(parts.size, dtype=bool)
    met[part_i] = True
    near = arr[np.unique(near_i)]
    vertices = int(shapely.get_num_coordinates(np.r_[parts[met], near]).sum())
    strips = min(MAX_STRIPS, max(1, vertices // STRIP_VERTICES))
    workers = threads or os.cpu_count() or 1
    found = clip.difference(parts[met], near, strips=strips, threads=workers, repair=False)
    if found is None:  # a shape too big for a sweep, or pieces that did not join: GEOS's
        covered = covered_union(arr, threads=threads)
        return _measured(uncovered_parts(market, covered, threads=threads))
    rest = np.concatenate([parts[~met], found])
    measure = lambda: geodesic_area_km2(rest)  # noqa: E731
    km2, checked = _in_threads_too(measure, shapely.is_valid, found, workers)
    valid = np.r_[np.ones((~met).sum(), dtype=bool), checked]
    if not valid.all():  # few: made valid, their parts measured anew
        fixed = _polygons(clip.repaired(rest[~valid], np.zeros((~valid).sum(), dtype=bool)))
        rest = np.concatenate([rest[valid], fixed])
        km2 = np.concatenate([km2[valid], geodesic_area_km2(fixed)])
    keep = km2 * 1e6 >= MIN_PART_M2
    # RFC 7946: exteriors counter-clockwise, holes clockwise.
    oriented = np.asarray(shapely.orient_polygons(rest[keep], exterior_cw=False), dtype=object)
    return Uncovered(oriented, km2[keep])


def _in_threads_too(
    first: Callable[[], T], second: Callable[[S], npt.NDArray[np.bool_]], arg: S, threads: int
) -> tuple[T, npt.NDArray[np.bool_]]:
    """``first()`` here and ``second(arg)`` on another thread (when ``threads`` > 1)."""
    if threads <= 1:
        return first(), second(arg)
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(second, arg)
        return first(), other.result()


def _measured(parts: GeomArray) -> Uncovered:
    return Uncovered.measured(_finished(parts))


def _market_parts(market: BaseGeometry) -> GeomArray:
    """The market's polygons; a GeometryTypeError when it is not polygonal."""
    if market.geom_type not in ("Polygon", "MultiPolygon"):
        raise GeometryTypeError(f"a market must be polygonal, not {market.geom_type}")
    return _polygons(market)


def _finished(rest: GeomArray) -> GeomArray:
    """White space parts as answered: slivers under 1 m² dropped, oriented as RFC 7946 says."""
    if not rest.size:
        return rest
    # Only parts small in square degrees can be slivers (1e-6 deg² is ~12,000 m² or less):
    # the geodesic area, a Python-level loop per part, is worked out for those alone.
    small = np.flatnonzero(shapely.area(rest) < 1e-6)
    sliver = small[geodesic_area_km2(rest[small]) * 1e6 < MIN_PART_M2]
    rest = np.delete(rest, sliver)
    # RFC 7946: exteriors counter-clockwise, holes clockwise.
    return np.asarray(shapely.orient_polygons(rest, exterior_cw=False), dtype=object)


def _left_out(parts: GeomArray, covered: BaseGeometry) -> GeomArray:
    """What ``covered`` leaves of the parts (which meet it)."""
    # Relates first (prepared): parts covered whole are dropped without an overlay against
    # the whole union; only the others are overlaid. ``covered`` is this thread's own copy.
    shapely.prepare(covered)
    crossed = parts[~shapely.covers(covered, parts)]
    return _polygons(shapely.difference(crossed, covered))


def _balanced(sizes: IntArray, threads: int) -> list[npt.NDArray[np.intp]]:
    """Positions in up to ``threads`` slices of about equal total size (largest first)."""
    k = max(1, min(threads, int(sizes.sum()) // VERTICES_PER_THREAD, sizes.size))
    order = np.argsort(-sizes, kind="stable")
    # Largest first, each to the slice with least so far: a greedy balance, good enough
    # when one part (the mainland) dominates.
    load = np.zeros(k)
    slot = np.empty(sizes.size, dtype=np.intp)
    for i in order.tolist():
        slot[i] = int(np.argmin(load))
        load[slot[i]] += sizes[i]
    return [np.flatnonzero(slot == j) for j in range(k)]


def uncovered_customers(
    market: BaseGeometry, *, lon: npt.ArrayLike, lat: npt.ArrayLike, owner: npt.ArrayLike
) -> IntArray:
    """Positions of the points in the market (border included) that no territory covers."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    owners = np.asarray(owner, dtype=np.int64)
    if not x.size == y.size == owners.size:
        raise SpatialError("lon, lat and owner must have the same length")
    candidates = np.flatnonzero(owners == -1)
    if not candidates.size or market.is_empty:
        return candidates
    own = unprepared_copies(market)  # the caller's may be in use by other asks
    shapely.prepare(own)
    # intersects_xy: a point on the market's border is in it, as PostGIS ST_Covers says.
    inside = shapely.intersects_xy(own, x[candidates], y[candidates])
    return candidates[inside].astype(np.int64)


@dataclass(frozen=True, eq=False)
class Regions:
    """Uncovered area and customers per region (county) meeting the white space, ranked."""

    position: IntArray  # index into the regions given, best ranked first
    area_km2: FloatArray
    customers: IntArray
    value: FloatArray


@dataclass(frozen=True, eq=False)
class Hexagons:
    """Uncovered customers per H3 cell, ranked by value (shapes: ``cell_polygons``)."""

    cells: list[str]  # H3 cell ids (hex strings)
    customers: IntArray
    value: FloatArray
    res: int


@dataclass(frozen=True, eq=False)
class WhiteSpace:
    """The uncovered part of a market and what lies in it."""

    parts: GeomArray  # uncovered polygons, largest first
    part_km2: FloatArray
    market_km2: float
    customers: IntArray  # positions of the uncovered customers in the input
    value: float  # their total value
    regions: Regions
    hexagons: Hexagons

    @property
    def area_km2(self) -> float:
        """Total uncovered area (km²)."""
        return float(self.part_km2.sum())

    @property
    def percent(self) -> float:
        """Uncovered share of the market's area, in percent (0 for an empty market)."""
        return 100.0 * self.area_km2 / self.market_km2 if self.market_km2 > 0 else 0.0


def _rank(area: FloatArray, value: FloatArray) -> IntArray:
    """Order by value, then area, both descending (lexsort's last key is the primary)."""
    return np.lexsort((-area, -value)).astype(np.int64)


def by_region(
    parts: npt.ArrayLike,
    regions: npt.ArrayLike,
    *,
    lon: npt.ArrayLike,
    lat: npt.ArrayLike,
    value: npt.ArrayLike,
    region_km2: npt.ArrayLike | None = None,
) -> Regions:
    """Uncovered area (km²) and customers (the points given) per region, ranked by value.

    ``region_km2``: each region's own area, when known; a region that one uncovered part
    covers whole then takes it as is, without an overlay (660 of the 2,017 counties the
    white space of 500 custom territories meets).
    """
    areas = _geoms(regions)
    x, y, v = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (lon, lat, value))
    n = areas.size
    tree = shapely.STRtree(areas)
    polys = _geoms(parts)
    inside = np.zeros(n, dtype=bool)
    if region_km2 is not None and polys.size:
        # STRtree.query tests predicate(part, region) with each part prepared.
        inside[tree.query(polys, predicate="covers")[1]] = True
    area_km2 = _area_by_region(_subdivided(polys), areas, tree, skip=inside)
    if region_km2 is not None:
        area_km2[inside] = np.asarray(region_km2, dtype=np.float64)[inside]
    point_i, point_region = tree.query(shapely.points(x, y), predicate="intersects")
    # A point on a border between two regions counts once, for the first region found.
    _, first = np.unique(point_i, return_index=True)
    hits = point_region[first]
    customers = np.bincount(hits, minlength=n).astype(np.int64)
    worth = np.bincount(hits, weights=v[point_i[first]], minlength=n).astype(np.float64)
    met = np.flatnonzero((area_km2 * 1e6 >= MIN_PART_M2) | (customers > 0))
    order = met[_rank(area_km2[met], worth[met])]
    return Regions(
        position=order.astype(np.int64),
        area_km2=area_km2[order],
        customers=customers[order],
        value=worth[order],
    )


def _area_by_region(
    pieces: GeomArray, areas: GeomArray, tree: shapely.STRtree, *, skip: npt.NDArray[np.bool_]
) -> FloatArray:
    """Area (km²) of the pieces within each region (0 for those in ``skip``); pieces a region
    covers need no overlay."""
    piece_i, region_i = tree.query(pieces, predicate="intersects")
    wanted = ~skip[region_i]
    piece_i, region_i = piece_i[wanted], region_i[wanted]
    # The regions are shared by every ask: the ones met are prepared on copies of this ask's.
    used, at = np.unique(region_i, return_inverse=True)
    mine = np.asarray(unprepared_copies(areas[used]), dtype=object)
    shapely.prepare(mine)
    whole = shapely.covers(mine[at], pieces[piece_i])
    clipped = pieces[piece_i].copy()
    cut = np.flatnonzero(~whole)
    if cut.size:
        # Clipper2, pair by pair (``clip.intersect_pairs``, as the overlaps): 2,435 pieces of
        # the white space of 500 custom territories against their counties, ~30 ms where
        # GEOS's intersections took ~90; in two halves on two threads (no GIL in the library).
        # Not quite GEOS's shapes: where a piece's corner touches a county's edge, GEOS puts
        # a vertex there and Clipper2 does not, which on a long edge along a parallel moves
        # that county's geodesic share (by 11 km² of 10,955 in one Utah county here, 0.1%;
        # the 2,017 counties' total by 3e-6). Within the 0.5% PostGIS is held to.
        rings = clip.Rings(np.r_[pieces, areas[used]])
        first, second = piece_i[cut], pieces.size + at[cut]
        halves = np.array_split(np.arange(cut.size), 2 if cut.size >= THREAD_MIN else 1)
        found = _in_threads(lambda k: clip.intersect_pairs(rings, first[k], second[k]), halves)
        clipped[cut] = np.concatenate(found)
    return np.bincount(region_i, weights=geodesic_area_km2(clipped), minlength=areas.size).astype(
        np.float64
    )


def _subdivided(polys: GeomArray, max_vertices: int = 256) -> GeomArray:
    """The polygons cut in halves until each has at most ``max_vertices`` (as ST_Subdivide).

    A uncovered part can be the whole nation less some holes (tens of thousands of vertices):
    intersecting it with each county would overlay it whole each time, its small pieces not.
    """
    done: list[GeomArray] = []
    todo = polys
    for _ in range(32):  # halving 32 times reaches cells far below any real vertex spacing
        big = shapely.get_num_coordinates(todo) > max_vertices
        done.append(todo[~big])
        todo = todo[big]
        if not todo.size:
            break
        b = shapely.bounds(todo)
        wide = (b[:, 2] - b[:, 0]) >= (b[:, 3] - b[:, 1])
        mid_x, mid_y = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        # Halves across the longer side: [minx, miny, cut_x, cut_y] and [from_x, from_y, ...].
        cut_x, cut_y = np.where(wide, mid_x, b[:, 2]), np.where(wide, b[:, 3], mid_y)
        from_x, from_y = np.where(wide, mid_x, b[:, 0]), np.where(wide, b[:, 1], mid_y)
        low = shapely.box(b[:, 0], b[:, 1], cut_x, cut_y)
        high = shapely.box(from_x, from_y, b[:, 2], b[:, 3])
        todo = _polygons(shapely.intersection(np.r_[todo, todo], np.r_[low, high]))
    done.append(todo)
    return np.concatenate(done)


def cell_polygons(cells: list[str]) -> GeomArray:
    """H3 cells' boundaries as lon/lat polygons; one crossing 180° is cut there in two."""
    if not cells:
        return np.empty(0, dtype=object)
    # h3-py has no vectorised boundary call: one call per cell, then one array build.
    rings = [np.asarray(h3.cell_to_boundary(c), dtype=np.float64)[:, ::-1] for c in cells]
    sizes = np.array([r.shape[0] for r in rings])
    coords = np.concatenate(rings)
    polys = shapely.polygons(
        shapely.linearrings(coords, indices=np.repeat(np.arange(len(cells)), sizes))
    )
    span = np.array([np.ptp(r[:, 0]) for r in rings])
    for i in np.flatnonzero(span > 180).tolist():
        polys[i] = _cut_at_180(rings[i])
    return np.asarray(shapely.orient_polygons(polys, exterior_cw=False), dtype=object)


def _cut_at_180(ring: FloatArray) -> MultiPolygon:
    """A lon/lat ring across the antimeridian as two polygons either side (RFC 7946 3.1.9)."""
    lon, lat = ring[:, 0], ring[:, 1]
    shifted = Polygon(np.c_[np.where(lon < 0, lon + 360, lon), lat])  # drawn on 0..360
    east = shapely.clip_by_rect(shifted, 0, -90, 180, 90)
    west = shapely.transform(shapely.clip_by_rect(shifted, 180, -90, 360, 90), _west_of_180)
    return MultiPolygon([*_polygons(east), *_polygons(west)])


def _west_of_180(coords: FloatArray) -> FloatArray:
    """Coordinates drawn on 180..360 degrees of longitude, brought back to -180..0."""
    return coords - np.array([360.0, 0.0])


def by_hexagon(
    lon: npt.ArrayLike, lat: npt.ArrayLike, value: npt.ArrayLike, *, res: int = 5
) -> Hexagons:
    """Customers (count and value) per H3 cell of resolution ``res``, ranked by value."""
    if not 0 <= res <= MAX_H3_RES:
        raise SpatialError(f"h3_res must be 0..{MAX_H3_RES}, not {res}", field="h3_res")
    x, y, v = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (lon, lat, value))
    # h3-py has no vectorised latlng_to_cell: one call per uncovered customer, as integers
    # (a third faster than strings, and np.unique on them ten times faster).
    ids = np.fromiter(
        (h3_int.latlng_to_cell(b, a, res) for a, b in zip(x.tolist(), y.tolist(), strict=True)),
        dtype=np.uint64,
        count=x.size,
    )
    cells, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=cells.size).astype(np.int64)
    worth = np.bincount(inverse, weights=v, minlength=cells.size).astype(np.float64)
    order = _rank(counts.astype(np.float64), worth)
    return Hexagons(
        cells=[h3.int_to_str(int(c)) for c in cells[order].tolist()],
        customers=counts[order],
        value=worth[order],
        res=res,
    )


def white_space(
    market: BaseGeometry,
    uncovered: Uncovered,
    *,
    lon: npt.ArrayLike,
    lat: npt.ArrayLike,
    value: npt.ArrayLike,
    owner: npt.ArrayLike,
    regions: npt.ArrayLike,
    region_km2: npt.ArrayLike | None = None,
    h3_res: int = 5,
) -> WhiteSpace:
    """The market's white space: its ``uncovered`` polygons (``uncovered_by``, or
    ``uncovered_parts`` measured) and what lies in them.

    ``owner`` is each customer's owner in the layer (-1: none covers it), as
    ``TerritoryIndex.owners`` gives it; ``regions`` (counties) break the result down, and
    ``region_km2`` (their areas, when known) spares the overlay of those covered whole.
    """
    sizes = {np.size(lon), np.size(lat), np.size(value), np.size(owner)}
    if len(sizes) != 1:
        raise SpatialError("lon, lat, value and owner need one entry per customer")
    parts, part_km2 = uncovered.parts, uncovered.km2
    biggest = np.argsort(-part_km2, kind="stable")
    found = uncovered_customers(market, lon=lon, lat=lat, owner=owner)
    x, y, v = (np.asarray(a, dtype=np.float64).reshape(-1)[found] for a in (lon, lat, value))
    return WhiteSpace(
        parts=parts[biggest],
        part_km2=part_km2[biggest],
        market_km2=float(geodesic_area_km2([market])[0]),
        customers=found,
        value=float(v.sum()),
        regions=by_region(parts, regions, lon=x, lat=y, value=v, region_km2=region_km2),
        hexagons=by_hexagon(x, y, v, res=h3_res),
    )
