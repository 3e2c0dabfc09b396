"""Polygon clipping with Clipper2 (``spatial/_clipper.cpp``): pairwise intersections, batched
(overlaps), and polygons less many others, in strips (white space).

Why not GEOS: for two polygons of ~100 vertices, GEOS's OverlayNG costs ~30 µs (a topology
graph per pair, floating-point noding with validation and fallbacks); Clipper2's Vatti sweep
on integer coordinates, after cutting both to the pair's common box, ~12 µs, and exact. The
overlaps of 5,000 drawn territories (32,000 candidate pairs) went from ~1.2 to ~0.4 CPU-s.

Coordinates are snapped to a grid of 1e-9 degree (~0.1 mm on the ground) for the computation:
a vertex moves by at most half of that, and every vertex of an answer lies on the grid (a
crossing of two edges is rounded to it). A decimal grid, so that a coordinate given with up
to 9 decimals (GeoJSON as people write it) comes back as exactly the same number. Shared
borders stay shared: equal input vertices snap to equal grid points. The batch runs without
the GIL, so threads split it.

The difference (``difference``): one Vatti sweep costs about its vertices times the edges a
scan line crosses, so the work is cut into strips across the scan lines (each sweep meets a
fraction of those edges), run on threads of the library's own, and the strips' pieces are
joined back by matching their edges along the seams, exactly (a crossing of a seam is
computed once, in integers, for both sides; seams lie 1e-6 degree off every vertex). 500
overlapping territories less the nation: ~20 CPU-ms in one sweep, ~7 in 16 strips.

The shared library is built with the package (``setup.py``; ``./scripts/test`` and
``./scripts/run`` install it); a RuntimeError says so when it is missing.
"""

from __future__ import annotations

import ctypes
import importlib.util
from functools import cache

import numpy as np
import numpy.typing as npt
import shapely

from spatial.errors import SpatialError
from spatial.geometry import as_multipolygon, ring_coordinates

IntArray = npt.NDArray[np.int64]
GeomArray = npt.NDArray[np.object_]

GRID = 1e9  # grid points per degree
MAX_DEG = 1e6  # largest coordinate taken (degrees): far inside the library's ±2.3e18 / GRID
# A sweep costs about its vertices times the edges one scan line meets, which a shape of many
# parallel teeth makes quadratic: a comb of 10,000 teeth (40,000 vertices) against a box took
# 2.6 s in Clipper2 and 0.08 s in GEOS (2,000 teeth: 0.07 s). Pairs with a shape of more
# vertices than this go to GEOS; so does a difference with one of more than DIFFERENCE_MAX
# (its strips cut the teeth between them: that comb, 0.2 s in 16 strips).
PAIR_MAX_VERTICES = 10_000
DIFFERENCE_MAX_VERTICES = 100_000
_I64P = ctypes.POINTER(ctypes.c_int64)
_F64P = ctypes.POINTER(ctypes.c_double)


class Rings:
    """Polygons as rings on the grid, as the library reads them (closing vertices dropped)."""

    def __init__(self, geoms: GeomArray) -> None:
        """Rings of each (Multi)Polygon of ``geoms`` (empty ones have none)."""
        parts, part_geom = shapely.get_parts(geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        xy, vertex_ring = shapely.get_coordinates(rings, return_index=True)
        # Each ring's last vertex repeats its first: dropped.
        last = np.append(vertex_ring[1:] != vertex_ring[:-1], True)[: vertex_ring.size]
        xy, vertex_ring = xy[~last], vertex_ring[~last]
        if xy.size and not (np.isfinite(xy).all() and np.abs(xy).max() <= MAX_DEG):
            # Far beyond any lon/lat, the grid's int64 would overflow (and NaN has no place).
            raise SpatialError(f"coordinates must be finite degrees within ±{MAX_DEG:g}")
        self.xy = np.ascontiguousarray(np.rint(xy * GRID), dtype=np.int64)
        self.ring_start = np.searchsorted(vertex_ring, np.arange(rings.size + 1)).astype(np.int64)
        ring_geom = part_geom[ring_part]
        self.geom_ring_start = np.searchsorted(ring_geom, np.arange(geoms.size + 1)).astype(
            np.int64
        )
        self.geoms = geoms  # for the pairs that go to GEOS
        self.vertices = np.diff(self.ring_start[self.geom_ring_start])


def intersect_pairs(rings: Rings, first: IntArray, second: IntArray) -> GeomArray:
    """The intersection of geometry ``first[k]`` with ``second[k]`` (by position in ``rings``):
    a Polygon, a MultiPolygon, or an empty Polygon where they share no area; lon/lat degrees,
    exteriors counter-clockwise and holes clockwise (RFC 7946). Thread-safe, GIL released."""
    lib = _library()
    pairs = np.ascontiguousarray(np.c_[first, second], dtype=np.int64)
    n_geoms = rings.geom_ring_start.size - 1
    if pairs.size and not (pairs.min() >= 0 and pairs.max() < n_geoms):
        # The library reads whatever memory a position points to: never a wrong one.
        raise IndexError(f"pair positions must be within 0..{n_geoms - 1}")
    big = (rings.vertices[first] > PAIR_MAX_VERTICES) | (rings.vertices[second] > PAIR_MAX_VERTICES)
    if big.any():
        out = np.empty(first.size, dtype=object)
        out[~big] = intersect_pairs(rings, first[~big], second[~big])
        found = shapely.intersection(rings.geoms[first[big]], rings.geoms[second[big]])
        out[big] = [as_multipolygon(g) for g in found]
        return out
    handle = lib.clipper_intersect_pairs(
        _ptr(rings.xy), _ptr(rings.ring_start), _ptr(rings.geom_ring_start),
        n_geoms, _ptr(pairs), pairs.shape[0],
    )  # fmt: skip
    if not handle:  # out of memory, or Clipper2 threw: a server fault either way
        raise RuntimeError("Clipper2 failed on the intersections (out of memory?)")
    xy, ring_start, ring_polygon, polygon_pair = _copied(lib, handle)
    found = _assemble(xy / GRID, ring_start, ring_polygon, polygon_pair, first.size)
    return repaired(found, shapely.is_valid(found))


def difference(
    subject: GeomArray, clip: GeomArray, *, strips: int, threads: int, repair: bool = True
) -> GeomArray | None:
    """The area of the ``subject`` polygons that no ``clip`` polygon covers, as polygons (lon/lat
    degrees), or None when the strips' pieces did not join into simple polygons or a shape has
    more than DIFFERENCE_MAX_VERTICES (the caller then takes another way). Cut into
    ``strips`` strips, ``threads`` at a time, GIL released.
    ``repair=False``: the answers as they come, which the caller passes through ``repaired``
    (so that it can check them on one thread while it measures them on another)."""
    lib = _library()
    if shapely.get_num_coordinates(np.r_[subject, clip]).max(initial=0) > DIFFERENCE_MAX_VERTICES:
        return None  # a shape that could make the sweep quadratic: GEOS instead
    xy_s, ring_s, _, sign_s = ring_coordinates(subject)
    xy_c, ring_c, _, sign_c = ring_coordinates(clip)
    n_subject = int(ring_s.max()) + 1 if ring_s.size else 0
    xy = np.ascontiguousarray(np.concatenate([xy_s, xy_c]), dtype=np.float64)
    if xy.size and not (np.isfinite(xy).all() and np.abs(xy).max() <= MAX_DEG):
        raise SpatialError(f"coordinates must be finite degrees within ±{MAX_DEG:g}")
    ring_of = np.concatenate([ring_s, ring_c + n_subject])
    n_rings = int(ring_of.max()) + 1 if ring_of.size else 0
    ring_start = np.searchsorted(ring_of, np.arange(n_rings + 1)).astype(np.int64)
    sign = np.concatenate([sign_s, sign_c]).astype(np.int64)
    status = np.zeros(1, dtype=np.int64)
    handle = lib.clipper_difference_strips(
        xy.ctypes.data_as(_F64P), _ptr(ring_start), _ptr(sign), n_rings, n_subject, GRID,
        strips, threads, _ptr(status),
    )  # fmt: skip
    if status[0] == 1:
        return None
    if not handle:
        raise RuntimeError("Clipper2 failed on the difference (out of memory?)")
    xy_out, ring_start, ring_polygon, polygon_pair = _copied(lib, handle)
    found = _assemble(xy_out / GRID, ring_start, ring_polygon, polygon_pair, polygon_pair.size)
    return repaired(found, shapely.is_valid(found)) if repair else found


def repaired(geoms: GeomArray, valid: npt.NDArray[np.bool_]) -> GeomArray:
    """``geoms`` with those not ``valid`` (``shapely.is_valid``) made valid, polygonal parts kept.

    Clipper2's rings never cross, but they may touch: a ring at one of its own vertices or
    edges (an "inverted hole"), a hole its exterior at two points, or at a point of its edge
    that is no vertex of it (a grid step off, so GEOS sees the two cross); and where a hole
    touches its exterior, Clipper2 may even give the hole as a polygon of its own. Not valid
    OGC polygons, but every ring runs the way its role says: exteriors counter-clockwise,
    holes clockwise (the sweep draws them so). So the answer is rebuilt from that: the union
    of the exteriors less the union of the holes, each ring made valid alone first. (By their
    linework, GEOS's make_valid lost a hole crossing its exterior by a grid step whole; by
    their structure, a hole given as a polygon was filled.) Checking every answer costs ~2 µs
    each (none of 24,000 random overlaps needs it; shapes with shared and collinear edges do).
    """
    bad = np.flatnonzero(~valid)
    if bad.size:  # few: one by one
        geoms[bad] = [_by_orientation(g) for g in geoms[bad]]
    return geoms


def _by_orientation(geom: shapely.Geometry) -> shapely.Geometry:
    """The exteriors' union less the holes', told apart by the way each ring runs: the sign of
    its shoelace area (GEOS's is_ccw looks at the top vertex alone, which a ring touching
    itself can mislead)."""
    rings = shapely.get_rings(shapely.get_parts(geom))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    step = xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]  # each ring is closed
    ccw = np.bincount(ring[:-1], weights=np.where(ring[1:] == ring[:-1], step, 0.0)) > 0
    shells, holes = (
        shapely.make_valid(shapely.polygons(rings[side]), method="structure")
        for side in (ccw, ~ccw)
    )
    return as_multipolygon(shapely.difference(shapely.union_all(shells), shapely.union_all(holes)))


def _assemble(
    xy: npt.NDArray[np.float64],
    ring_start: IntArray,
    ring_polygon: IntArray,
    polygon_pair: IntArray,
    n_pairs: int,
) -> GeomArray:
    """Shapely geometries from the library's rings: one per pair, vectorised."""
    out = np.empty(n_pairs, dtype=object)
    out[:] = [shapely.Polygon()] * n_pairs
    if not polygon_pair.size:
        return out
    vertex_ring = np.repeat(np.arange(ring_polygon.size), np.diff(ring_start))
    rings = shapely.linearrings(xy, indices=vertex_ring)  # closed by shapely
    # Each polygon's first ring is its exterior (the library writes it first).
    polys = shapely.polygons(rings, indices=ring_polygon)
    count = np.bincount(polygon_pair, minlength=n_pairs)
    one = count[polygon_pair] == 1
    out[polygon_pair[one]] = polys[one]
    many = ~one
    if many.any():
        pairs = np.unique(polygon_pair[many])
        multi = shapely.multipolygons(
            polys[many], indices=np.searchsorted(pairs, polygon_pair[many])
        )
        out[pairs] = multi
    return out


def _copied(lib: ctypes.CDLL, handle: int) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """A batch's arrays (vertices, ring starts, each ring's polygon, each polygon's pair),
    copied out; the batch freed."""
    try:
        sizes = np.zeros(3, dtype=np.int64)
        lib.clipper_batch_sizes(handle, _ptr(sizes))
        vertices, n_rings, polygons = (int(s) for s in sizes)
        xy = np.empty((vertices, 2), dtype=np.int64)
        ring_start = np.empty(n_rings + 1, dtype=np.int64)
        ring_polygon = np.empty(n_rings, dtype=np.int64)
        polygon_pair = np.empty(polygons, dtype=np.int64)
        lib.clipper_batch_copy(
            handle, _ptr(xy), _ptr(ring_start), _ptr(ring_polygon), _ptr(polygon_pair)
        )
    finally:
        lib.clipper_batch_free(handle)
    return xy, ring_start, ring_polygon, polygon_pair


def _ptr(arr: npt.NDArray[np.int64]) -> ctypes._Pointer[ctypes.c_int64]:
    return arr.ctypes.data_as(_I64P)


@cache
def _library() -> ctypes.CDLL:
    """The compiled library, loaded once per process."""
    spec = importlib.util.find_spec("spatial._clipper")
    if spec is None or spec.origin is None:
        # An installation fault, not the caller's: a 500, never a client error.
        raise RuntimeError(
            "spatial/_clipper is not built: run ./scripts/test (or pip install -e .) to build it"
        )
    lib = ctypes.CDLL(spec.origin)
    lib.clipper_intersect_pairs.restype = ctypes.c_void_p
    lib.clipper_intersect_pairs.argtypes = [
        _I64P, _I64P, _I64P, ctypes.c_int64, _I64P, ctypes.c_int64,
    ]  # fmt: skip
    lib.clipper_difference_strips.restype = ctypes.c_void_p
    lib.clipper_difference_strips.argtypes = [
        _F64P, _I64P, _I64P, ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int64,
        ctypes.c_int64, _I64P,
    ]  # fmt: skip
    lib.clipper_batch_sizes.argtypes = [ctypes.c_void_p, _I64P]
    lib.clipper_batch_copy.argtypes = [ctypes.c_void_p, _I64P, _I64P, _I64P, _I64P]
    lib.clipper_batch_free.argtypes = [ctypes.c_void_p]
    return lib
