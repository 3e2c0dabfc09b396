"""Clipper2 intersections (spatial.clip) against GEOS's, on the canonical shapes and at random."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import shape

from bench.bench_overlaps import random_territories
from spatial import clip
from spatial.clip import GRID, Rings, difference, intersect_pairs
from spatial.errors import SpatialError
from spatial.geometry import as_multipolygon
from spatial.measure import geodesic_area_m2
from tests import canonical

HOLE, MULTI = shape(canonical.WITH_HOLE), shape(canonical.MULTI)
LEFT, RIGHT = shape(canonical.LEFT_OF_BORDER), shape(canonical.RIGHT_OF_BORDER)
ANTIMERIDIAN = shape(canonical.ANTIMERIDIAN)


def _intersect(pairs: list[tuple[shapely.Geometry, shapely.Geometry]]) -> np.ndarray:
    geoms = np.array([g for pair in pairs for g in pair], dtype=object)
    k = np.arange(len(pairs), dtype=np.int64)
    return intersect_pairs(Rings(geoms), 2 * k, 2 * k + 1)


def test_the_canonical_shapes_by_hand() -> None:
    box = shapely.box
    found = _intersect(
        [
            (LEFT, RIGHT),  # a shared border only: nothing
            (box(31, 1, 32, 2), RIGHT),  # a corner only: nothing
            (HOLE, box(11.5, 11.5, 12.5, 12.5)),  # inside the hole: nothing
            (HOLE, box(9, 9, 12, 12)),  # across the hole's corner: an L
            (MULTI, box(20.5, 0.25, 22.5, 0.75)),  # both parts: a MultiPolygon
            (HOLE, box(10, 10, 14, 14)),  # the hole's box: the shape with its hole
            (ANTIMERIDIAN, box(179.5, 51, 180, 52)),  # the part west of 180° only
            (box(0, 0, 1, 1), box(0, 0, 1, 1)),  # identical: itself
        ]
    )
    assert shapely.is_empty(found[:3]).all()
    assert found[3].equals(box(10, 10, 12, 12).difference(box(11, 11, 12, 12)))
    assert found[4].geom_type == "MultiPolygon"
    assert found[4].equals(shapely.union(box(20.5, 0.25, 21, 0.75), box(22, 0.25, 22.5, 0.75)))
    assert found[5].equals(HOLE) and len(found[5].interiors) == 1
    assert found[6].equals(box(179.5, 51, 180, 52))
    assert found[7].equals(box(0, 0, 1, 1))


def test_an_island_in_a_hole_is_a_polygon_of_its_own() -> None:
    # A 4x4 square with a 2x2 hole holding a 1x1 island, against a box over all of it.
    frame = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (1, 3), (3, 3), (3, 1)]])
    shapes = shapely.MultiPolygon([frame, shapely.box(1.5, 1.5, 2.5, 2.5)])
    (found,) = _intersect([(shapes, shapely.box(-1, -1, 5, 5))])
    assert found.geom_type == "MultiPolygon" and len(found.geoms) == 2
    assert found.equals(shapes)


def test_exteriors_counter_clockwise_holes_clockwise_decimals_kept() -> None:
    # A clockwise square with 0.1-steps: RFC 7946 orientation, and every coordinate the very
    # number given (a decimal grid: 0.3 comes back as 0.3, not 0.30000000004).
    cw = shapely.Polygon([(0.1, 0.1), (0.1, 0.7), (0.7, 0.7), (0.7, 0.1)])
    (found,) = _intersect([(cw, shapely.box(0.3, 0.3, 1.0, 1.0))])
    assert shapely.is_ccw(found.exterior)
    assert sorted(set(shapely.get_coordinates(found).ravel().tolist())) == [0.3, 0.7]
    (holed,) = _intersect([(HOLE, shapely.box(0, 0, 20, 20))])
    assert shapely.is_ccw(holed.exterior) and not shapely.is_ccw(holed.interiors[0])


def test_random_territories_agree_with_geos() -> None:
    """Every pair of 1,000 random territories (holes, two-part ones) whose boxes meet: the same
    pairs with area, the same shapes up to the 1e-9-degree grid, all valid."""
    geoms = random_territories(1000, seed=21)
    left, right = shapely.STRtree(geoms).query(geoms)
    first, second = left[left < right], right[left < right]
    ours = intersect_pairs(Rings(geoms), first, second)
    theirs = shapely.intersection(geoms[first], geoms[second])
    assert shapely.is_valid(ours).all()
    has_area = shapely.area(theirs) > 0
    assert (shapely.area(ours) > 0).tolist() == has_area.tolist()
    assert has_area.sum() > 600
    # What differs is within a grid step of the boundary: a band 1e-9 wide.
    band = shapely.length(theirs) / GRID
    assert (shapely.area(shapely.symmetric_difference(ours, theirs)) <= band).all()
    assert (np.abs(shapely.area(ours) - shapely.area(theirs)) <= band).all()


def test_no_pairs_and_empty_shapes() -> None:
    geoms = np.array([shapely.Polygon(), shapely.box(0, 0, 1, 1)], dtype=object)
    rings = Rings(geoms)
    assert intersect_pairs(rings, np.array([], np.int64), np.array([], np.int64)).size == 0
    (found,) = intersect_pairs(rings, np.array([0]), np.array([1]))
    assert found.is_empty and found.geom_type == "Polygon"


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # shapely, making the NaN one
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e7])
def test_coordinates_that_are_no_degrees_are_refused(bad: float) -> None:
    # NaN and infinity cannot be put on the grid, 1e7 degrees would overflow it.
    ring = shapely.Polygon([(0, 0), (1, 0), (1, 1)])
    wild = shapely.Polygon([(0, 0), (bad, 0), (1, 1)])
    with pytest.raises(SpatialError, match="finite degrees"):
        Rings(np.array([ring, wild], dtype=object))


def test_positions_outside_the_shapes_are_refused() -> None:
    rings = Rings(np.array([shapely.box(0, 0, 1, 1), shapely.box(0, 0, 2, 2)], dtype=object))
    for first, second in (([0], [2]), ([-1], [0])):
        with pytest.raises(IndexError, match=r"within 0\.\.1"):
            intersect_pairs(rings, np.array(first), np.array(second))


Corners = list[tuple[int, int, int, int, int, int]]


def _shape(parts: Corners) -> shapely.Geometry:
    """The union of a few triangles and boxes with corners on a coarse grid: shared edges,
    vertices on edges, holes, parts touching at a corner; the cases where clippers go wrong."""
    pieces = []
    for x0, y0, x1, y1, x2, y2 in parts:
        pieces.append(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1))
        triangle = shapely.Polygon([(x0, y0), (x1, y1), (x2, y2)])
        if triangle.area > 0:
            pieces.append(triangle)
    return shapely.union_all([shapely.affinity.scale(p, 0.25, 0.25, origin=(0, 0)) for p in pieces])


_PARTS = st.lists(st.tuples(*[st.integers(0, 8)] * 6), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(_PARTS, _PARTS)
def test_degenerate_shapes_agree_with_geos(a_parts: Corners, b_parts: Corners) -> None:
    a, b = _shape(a_parts), _shape(b_parts)
    (ours,) = _intersect([(a, b)])
    theirs = shapely.intersection(a, b)
    band = (a.length + b.length) / GRID  # a crossing off the grid moves by half a step
    assert ours.is_valid
    assert abs(ours.area - theirs.area) <= band
    assert shapely.symmetric_difference(ours, theirs).area <= band
    if theirs.area > band:
        assert not ours.is_empty


def test_a_ring_touching_itself_is_repaired() -> None:
    # Clipper2 answers this pair with one ring passing twice through (0.5, 0.5), where the
    # two triangles of the true answer meet: not a valid OGC polygon until repaired.
    a = _shape([(3, 3, 4, 2, 0, 0)])
    b = _shape([(1, 3, 1, 1, 0, 3), (0, 2, 3, 2, 3, 3)])
    (found,) = _intersect([(a, b)])
    assert found.is_valid and found.geom_type == "MultiPolygon" and len(found.geoms) == 2
    assert all(shapely.is_ccw(part.exterior) for part in found.geoms)
    assert found.equals(shapely.intersection(a, b))


# --- the difference in strips (white space) ----------------------------------------------------


def _difference(
    market: shapely.Geometry, territories: list[shapely.Geometry], *, strips: int
) -> np.ndarray:
    found = difference(
        np.array([market], dtype=object), np.array(territories, dtype=object),
        strips=strips, threads=2,
    )  # fmt: skip
    assert found is not None  # the strips' pieces joined
    return found


STRIPS = [1, 2, 3, 8]


@pytest.mark.parametrize("strips", STRIPS)
def test_difference_by_hand_whatever_the_strips(strips: int) -> None:
    box = shapely.box
    market = box(0, 0, 10, 10)
    frame = box(2, 2, 8, 8).difference(box(4, 4, 6, 6))  # a territory with a hole
    # Two overlapping boxes along the bottom: they cover once, the rest is one L-shaped part.
    (ell,) = _difference(market, [box(0, 0, 6, 3), box(4, 0, 10, 3)], strips=strips)
    assert ell.equals(box(0, 3, 10, 10))
    # One box in the middle: the market with a hole, rejoined across every seam through it.
    (holed,) = _difference(market, [box(4, 4, 6, 6)], strips=strips)
    assert holed.equals(market.difference(box(4, 4, 6, 6))) and len(holed.interiors) == 1
    # A territory's hole is white space (an island of its own) unless another covers it.
    island = _difference(market, [frame], strips=strips)
    assert sorted(shapely.area(island).tolist()) == [4.0, 64.0]
    assert shapely.union_all(island).equals(market.difference(frame))
    (outer,) = _difference(market, [frame, box(3.5, 3.5, 6.5, 6.5)], strips=strips)
    assert outer.equals(market.difference(box(2, 2, 8, 8)))
    # The market's own hole stays a hole; the MultiPolygon's parts stay apart.
    (left,) = _difference(HOLE, [box(12, 9, 15, 15)], strips=strips)
    assert left.equals(HOLE.difference(box(12, 9, 15, 15)))
    both = _difference(MULTI, [box(20.5, -1, 22.5, 2)], strips=strips)
    assert shapely.union_all(both).equals(MULTI.difference(box(20.5, -1, 22.5, 2)))
    assert len(both) == 2
    # Covered whole: nothing; nothing to take away: the market itself.
    assert _difference(market, [box(-1, -1, 11, 11)], strips=strips).size == 0
    (whole,) = _difference(market, [box(20, 20, 21, 21)], strips=strips)
    assert whole.equals(market)


def test_seams_leave_no_trace_in_the_answer() -> None:
    """The points where edges crossed a seam are taken out again: the same vertices (and so
    the same geodesic area) whatever the number of strips."""
    geoms = random_territories(300, seed=4)
    market = shapely.box(-120, 30, -80, 45)
    one = shapely.normalize(shapely.union_all(_difference(market, list(geoms), strips=1)))
    for strips in (4, 16):
        many = shapely.normalize(shapely.union_all(_difference(market, list(geoms), strips=strips)))
        assert shapely.get_num_coordinates(many) == shapely.get_num_coordinates(one)
        assert shapely.equals_exact(many, one, tolerance=2 / GRID)


def test_random_territories_difference_agrees_with_geos() -> None:
    """A market less 1,000 random territories (holes, two-part ones, overlapping) in 16 strips:
    the same parts as GEOS's difference with their union, up to the grid, all valid."""
    geoms = random_territories(1000, seed=22)
    market = shapely.union_all([shapely.box(-125, 25, -95, 49), shapely.box(-95, 30, -66, 45)])
    ours = _difference(market, list(geoms), strips=16)
    theirs = shapely.get_parts(shapely.difference(market, shapely.union_all(geoms)))
    assert shapely.is_valid(ours).all()
    assert len(shapely.get_parts(ours)) == len(theirs) > 50
    band = shapely.length(shapely.union_all(geoms)) / GRID
    apart = shapely.symmetric_difference(shapely.union_all(ours), shapely.union_all(theirs))
    assert shapely.area(apart) <= band
    assert abs(shapely.area(ours).sum() - shapely.area(theirs).sum()) <= band


@settings(max_examples=300, deadline=None)
@given(_PARTS, st.lists(_PARTS, min_size=1, max_size=4), st.integers(1, 9))
def test_degenerate_differences_agree_with_geos(
    market_parts: Corners, territory_parts: list[Corners], strips: int
) -> None:
    """Markets and territories with shared and collinear edges, holes, corner touches, vertices
    on others' edges, on a coarse grid (seams pass close to many vertices): GEOS's answer up
    to the grid, valid. Found here first: bridges the sweep leaves along a seam (a piece
    split wrongly, 0.1 of the area), and a hole touching its exterior between grid points
    (made valid by linework, the hole was lost: now by structure)."""
    market = _shape(market_parts)
    territories = [_shape(parts) for parts in territory_parts]
    found = difference(
        np.array([market], dtype=object), np.array(territories, dtype=object),
        strips=strips, threads=2,
    )  # fmt: skip
    theirs = shapely.difference(market, shapely.union_all(territories))
    if found is None:  # pieces that would touch themselves: the caller asks GEOS instead
        return
    ours = shapely.union_all(found)
    band = (market.length + sum(t.length for t in territories)) / GRID
    assert shapely.is_valid(found).all()
    assert abs(ours.area - theirs.area) <= band
    assert shapely.symmetric_difference(ours, theirs).area <= band
    # Part by part they may differ where GEOS's answer has a neck or a touch narrower than a
    # grid step (shapes GEOS computed, on edges of others): one part on one side, two on the
    # other. The 1,000 random territories above, and the API against PostGIS, count parts.


def test_difference_refuses_coordinates_that_are_no_degrees() -> None:
    wild = shapely.Polygon([(0, 0), (1e7, 0), (1, 1)])
    with pytest.raises(SpatialError, match="finite degrees"):
        difference(
            np.array([shapely.box(0, 0, 1, 1)], dtype=object), np.array([wild], dtype=object),
            strips=1, threads=1,
        )  # fmt: skip


def test_vertices_along_a_parallel_are_kept() -> None:
    """A lon/lat edge is a geodesic: the vertices of a border along a parallel hold it there
    (without them the one geodesic between its ends bulges north). Both operations keep every
    vertex of the input on the answer's boundary, so the areas are GEOS's (Clipper2's own
    RectClip dropped them: 2.2% of this answer's area; a Colorado whose northern border lost
    its vertices would grow by 0.9%, 2,300 km²)."""
    top = [(x / 2, 61.0) for x in range(20, -1, -1)]  # 10 degrees along 61°N, every 0.5°
    shape_ = shapely.Polygon([(0, 60), (10, 60), *top])
    west = shapely.box(-1, 59, 6, 62)
    (ours,) = _intersect([(shape_, west)])
    theirs = shapely.intersection(shape_, west)
    assert ours.normalize().equals_exact(theirs.normalize(), 0)
    assert geodesic_area_m2([ours])[0] == pytest.approx(geodesic_area_m2([theirs])[0], rel=1e-12)
    (rest,) = _difference(shape_, [west], strips=1)
    left = shapely.difference(shape_, west)
    assert rest.normalize().equals_exact(left.normalize(), 0)
    # What dropping them costs, for the record: the area with the parallel's ends only.
    bare = shapely.Polygon([(0, 60), (6, 60), (6, 61), (0, 61)])
    assert geodesic_area_m2([bare])[0] / geodesic_area_m2([theirs])[0] - 1 > 0.02


@pytest.mark.parametrize(
    ("a_parts", "b_parts"),
    [
        # A hole of b touches a's edge at a point: Clipper2 gave the hole as a polygon of its
        # own, which make_valid by structure filled (0.0104 too much area).
        ([(3, 7, 0, 2, 8, 5)], [(3, 7, 4, 5, 7, 7), (5, 0, 1, 0, 7, 3), (7, 8, 6, 7, 4, 3)]),
        # Two parts meeting at a point came as one ring through it twice; GEOS's is_ccw, which
        # looks at the top vertex alone, took that ring for a hole (0.1875 too little).
        ([(3, 2, 3, 1, 4, 5), (1, 8, 4, 3, 1, 0), (5, 6, 3, 3, 0, 2)],
         [(7, 7, 1, 5, 0, 7), (1, 1, 3, 0, 7, 3)]),
    ],
)  # fmt: skip
def test_answers_repaired_by_the_way_their_rings_run(a_parts: Corners, b_parts: Corners) -> None:
    """Found by drawing thousands of the degenerate cases above (1 in ~8,000 each)."""
    a, b = _shape(a_parts), _shape(b_parts)
    (ours,) = _intersect([(a, b)])
    theirs = shapely.intersection(a, b)
    band = (a.length + b.length) / GRID
    assert ours.is_valid
    assert abs(ours.area - theirs.area) <= band
    assert shapely.symmetric_difference(ours, theirs).area <= band


def test_an_edge_across_a_whole_strip_meets_both_seams_where_the_next_strips_do() -> None:
    """A long edge crossing two seams: both crossings come from its own ends (cutting at one
    seam and then at the other took the second from the first: a grid step off what the next
    strip computed, two points left on the seam, the edge split there, and the geodesic area
    9% off at 8 strips). Found by review."""
    market = shapely.segmentize(shapely.box(-125, 25, -66, 49), 0.5)
    territory = shapely.Polygon(
        [(-120.123456789, 30), (-70.987654321, 44.4444444443), (-70.987654321, 48),
         (-120.123456789, 48)]
    )  # fmt: skip
    theirs = shapely.difference(market, territory)
    for strips in range(1, 13):
        (ours,) = _difference(market, [territory], strips=strips)
        assert shapely.get_num_coordinates(ours) == shapely.get_num_coordinates(theirs)
        assert geodesic_area_m2([ours])[0] == pytest.approx(geodesic_area_m2([theirs])[0], rel=1e-7)


def test_vertices_crowding_a_seam_cost_no_more_than_sorting_them() -> None:
    """90,000 vertices within 0.01 degree of longitude, where the seams fall: each seam is
    moved past them along the sorted vertices (stepping one margin at a time and rescanning,
    100,000 took 4 s; found by review). The answer is GEOS's; the time is not asserted here
    (bench/ measures, tests do not)."""
    n = 90_000
    crowd = shapely.Polygon(
        np.c_[np.r_[np.linspace(-100, -99.99, n), -95, -95], np.r_[np.linspace(30, 40, n), 40, 30]]
    )
    market = shapely.box(-120, 25, -80, 45)
    (ours,) = _difference(market, [crowd], strips=16)
    theirs = shapely.difference(market, crowd)
    assert shapely.symmetric_difference(ours, theirs).area <= theirs.length / GRID


def test_shapes_with_very_many_vertices_go_to_geos(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep is quadratic on a comb of parallel teeth (10,000 teeth: 2.6 s for one pair in
    Clipper2, 0.08 s in GEOS; found by review): pairs with a shape beyond PAIR_MAX_VERTICES
    are GEOS's, and a difference with one beyond DIFFERENCE_MAX_VERTICES says so (None)."""
    monkeypatch.setattr(clip, "PAIR_MAX_VERTICES", 4)
    triangle = shapely.Polygon([(0, 0), (3, 0), (0, 1)])  # 4 coordinates: Clipper2's
    pentagon = shapely.Polygon([(1, -1), (2, -1), (2, 2), (1.5, 3), (1, 2)])  # 6: GEOS's
    both = _intersect([(triangle, shapely.box(1, 0, 2, 1)), (triangle, pentagon)])
    # GEOS computes the crossing at y = 1/3 in floating point; the grid would say 0.333333333.
    assert both[1].equals_exact(as_multipolygon(shapely.intersection(triangle, pentagon)), 0)
    assert 1 / 3 in shapely.get_coordinates(both[1])[:, 1].tolist()
    assert 1 / 3 not in shapely.get_coordinates(both[0])[:, 1].tolist()
    monkeypatch.setattr(clip, "DIFFERENCE_MAX_VERTICES", 5)
    subject = np.array([shapely.box(0, 0, 3, 3)], dtype=object)
    assert difference(subject, np.array([triangle], dtype=object), strips=1, threads=1) is not None
    assert difference(subject, np.array([pentagon], dtype=object), strips=1, threads=1) is None
