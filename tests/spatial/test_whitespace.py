"""The white space engine on shapes small enough to work the answers out by hand."""

from __future__ import annotations

from typing import Any

import h3
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape

from spatial import whitespace
from spatial.errors import GeometryTypeError, SpatialError
from spatial.measure import geodesic_area_km2
from spatial.whitespace import (
    MIN_PART_M2,
    by_hexagon,
    by_region,
    cell_polygons,
    covered_union,
    uncovered_by,
    uncovered_customers,
    uncovered_parts,
    updated_union,
    white_space,
)
from tests import canonical

MARKET = box(0, 0, 4, 2)  # two 2x2 degree squares side by side


def _km2(geom: object) -> float:
    return float(geodesic_area_km2([geom])[0])


def test_uncovered_is_the_market_less_the_union() -> None:
    territories = [box(0, 0, 1, 2), box(0.5, 0, 2, 1)]  # overlapping
    parts = uncovered_parts(MARKET, covered_union(territories))
    expected = MARKET.difference(shapely.union_all(territories))
    assert shapely.union_all(parts).equals(expected)
    assert geodesic_area_km2(parts).sum() == pytest.approx(_km2(expected))
    assert all(p.geom_type == "Polygon" and p.is_valid for p in parts)
    # RFC 7946: exteriors counter-clockwise.
    assert all(p.exterior.is_ccw for p in parts)


def test_covered_market_has_no_parts_and_uncovered_market_is_whole() -> None:
    assert uncovered_parts(MARKET, covered_union([box(-1, -1, 5, 3)])).size == 0
    whole = uncovered_parts(MARKET, covered_union([]))
    assert len(whole) == 1 and whole[0].equals(MARKET)


def test_covered_union_within_takes_only_territories_meeting_it() -> None:
    far = box(10, 10, 11, 11)
    union = covered_union([box(0, 0, 1, 1), far], within=MARKET)
    assert union.equals(box(0, 0, 1, 1))


def test_market_parts_split_and_slivers_dropped() -> None:
    market = MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)])
    # The second part is covered but for a strip 1e-11 degrees wide: ~0.1 m², noise.
    covered = covered_union([box(0, 0, 0.5, 1), box(2, 0, 3 - 1e-11, 1)])
    parts = uncovered_parts(market, covered)
    assert len(parts) == 1 and parts[0].equals(box(0.5, 0, 1, 1))
    assert MIN_PART_M2 == 1.0


def test_market_must_be_polygonal() -> None:
    with pytest.raises(GeometryTypeError):
        uncovered_parts(shapely.Point(0, 0), covered_union([]))


def test_uncovered_customers_are_unowned_and_in_the_market() -> None:
    lon = np.array([0.5, 3.5, 9.0, 4.0, 1.0])
    lat = np.array([0.5, 1.5, 9.0, 1.0, 1.0])
    owner = np.array([-1, 7, -1, -1, -1])
    found = uncovered_customers(MARKET, lon=lon, lat=lat, owner=owner)
    # 0: inside, unowned; 1: owned; 2: outside the market; 3: on its border (counts, as
    # ST_Covers); 4: inside.
    assert found.tolist() == [0, 3, 4]
    with pytest.raises(SpatialError):
        uncovered_customers(MARKET, lon=lon, lat=lat, owner=owner[:2])


def test_regions_rank_by_value_then_area() -> None:
    regions = [box(0, 0, 2, 2), box(2, 0, 4, 2), box(4, 0, 6, 2)]
    parts = uncovered_parts(MARKET, covered_union([box(0, 0, 1, 2)]))  # x 1..4 uncovered
    out = by_region(
        parts, regions, lon=[1.5, 3.0, 3.5], lat=[1.0, 1.0, 1.0], value=[10.0, 1.0, 2.0]
    )
    assert out.position.tolist() == [0, 1]  # value 10 (1x2 deg) before value 3 (2x2 deg)
    assert out.customers.tolist() == [1, 2]
    assert out.value.tolist() == [10.0, 3.0]
    assert out.area_km2[0] == pytest.approx(_km2(box(1, 0, 2, 2)), rel=1e-6)
    assert out.area_km2[1] == pytest.approx(_km2(box(2, 0, 4, 2)), rel=1e-6)


def test_region_areas_add_up_over_a_large_part() -> None:
    # A part with many vertices is cut in pieces before the regions are overlaid.
    circle = shapely.Point(0, 0).buffer(5, quad_segs=512)  # 2,049 vertices
    regions = [box(x, y, x + 2, y + 2) for x in range(-6, 6, 2) for y in range(-6, 6, 2)]
    out = by_region([circle], regions, lon=[], lat=[], value=[])
    assert out.area_km2.sum() == pytest.approx(_km2(circle), rel=1e-4)
    assert out.area_km2.tolist() == sorted(out.area_km2.tolist(), reverse=True)


def test_hexagons_count_and_rank_customers() -> None:
    lon = np.array([-122.42, -122.4201, -73.99, -73.99])
    lat = np.array([37.77, 37.7701, 40.73, 40.73])
    out = by_hexagon(lon, lat, [1.0, 2.0, 5.0, 0.5], res=7)
    assert out.cells == [h3.latlng_to_cell(40.73, -73.99, 7), h3.latlng_to_cell(37.77, -122.42, 7)]
    assert out.customers.tolist() == [2, 2]
    assert out.value.tolist() == [5.5, 3.0]
    for cell, geom in zip(out.cells, cell_polygons(out.cells), strict=True):
        assert geom.is_valid and geom.exterior.is_ccw
        lat_c, lon_c = h3.cell_to_latlng(cell)
        assert geom.contains(shapely.Point(lon_c, lat_c))  # lon first
    with pytest.raises(SpatialError):
        by_hexagon(lon, lat, lat, res=16)


def test_cell_across_the_antimeridian_is_cut_in_two() -> None:
    cell = h3.latlng_to_cell(52.0, 179.99, 3)
    (geom,) = cell_polygons([cell])
    assert geom.geom_type == "MultiPolygon" and geom.is_valid
    lon, _lat = shapely.get_coordinates(geom).T
    assert lon.min() >= -180 and lon.max() <= 180
    assert {round(float(x)) for x in lon if abs(x) == 180} == {-180, 180}
    # Its area is the cell's (h3 gives km² on a sphere: a per mille apart from WGS 84).
    assert _km2(geom) == pytest.approx(h3.cell_area(cell, unit="km^2"), rel=5e-3)


def test_white_space_puts_it_together() -> None:
    uncovered = uncovered_by(MARKET, [box(0, 0, 2, 2)])
    regions = [box(0, 0, 2, 2), box(2, 0, 4, 2)]
    result = white_space(
        MARKET,
        uncovered,
        lon=[1.0, 3.0, 3.5],
        lat=[1.0, 1.0, 1.5],
        value=[4.0, 2.0, 3.0],
        owner=[1, -1, -1],
        regions=regions,
        h3_res=4,
    )
    assert result.area_km2 == pytest.approx(_km2(box(2, 0, 4, 2)))
    assert result.percent == pytest.approx(100 * result.area_km2 / _km2(MARKET))
    assert result.customers.tolist() == [1, 2]
    assert result.value == 5.0
    assert result.regions.position.tolist() == [1]
    assert int(result.hexagons.customers.sum()) == 2
    with pytest.raises(SpatialError):
        white_space(MARKET, uncovered, lon=[1.0], lat=[1.0], value=[], owner=[1], regions=regions)


def test_updated_union_equals_the_union_made_anew() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 10, 40), rng.uniform(0, 10, 40)
    before = shapely.box(x, y, x + rng.uniform(0.5, 2, 40), y + rng.uniform(0.5, 2, 40))
    now = before.copy()
    now[3] = box(2, 2, 6, 3)  # reshaped
    now = np.delete(now, [7, 8])  # removed
    added = np.array([now[3], box(20, 20, 21, 21)], dtype=object)
    now = np.r_[now, added[1:]]  # and one added
    gone = before[[3, 7, 8]]
    updated = updated_union(covered_union(before), gone=gone, added=added, current=now)
    fresh = covered_union(now)
    assert updated.symmetric_difference(fresh).area == pytest.approx(0, abs=1e-9)
    same = updated_union(fresh, gone=[], added=[], current=now)
    assert same is fresh


def _grid(n: int, x0: float = 0.0) -> list[Polygon]:
    """An n x n grid of unit squares from (x0, 0): a valid coverage, edges noded."""
    return [box(x0 + i, j, x0 + i + 1, j + 1) for i in range(n) for j in range(n)]


def _same_union(territories: list[Any], *, threads: int = 2) -> None:
    union = covered_union(territories, threads=threads)
    expected = shapely.union_all(territories)
    assert union.is_valid
    assert shapely.symmetric_difference(union, expected).area == pytest.approx(0, abs=1e-9)


def test_coverage_union_equals_the_overlay_union_on_canonical_shapes() -> None:
    hole = shape(canonical.WITH_HOLE)
    filler = box(11, 11, 13, 13)  # fills the hole exactly: a coverage with it
    multi = shape(canonical.MULTI)
    beside = box(21, 0, 22, 1)  # between the two squares of MULTI, sharing both edges
    east, west = shape(canonical.ANTIMERIDIAN).geoms
    next_to_180 = box(178, 51, 179, 52)  # touches the eastern part across lon 179
    coverage = [*_grid(5), hole, filler, multi, beside, east, west, next_to_180]
    assert len(coverage) >= whitespace.COVERAGE_MIN
    _same_union(coverage)
    _same_union(coverage, threads=1)
    market = box(-180, -10, 180, 60)
    parts = uncovered_parts(market, covered_union(coverage))
    expected = market.difference(shapely.union_all(coverage))
    assert geodesic_area_km2(parts).sum() == pytest.approx(_km2(expected), rel=1e-9)


def test_territories_not_noded_or_overlapping_go_through_the_overlay() -> None:
    coverage = _grid(6)
    t_junction = box(6, 0, 7, 2)  # its west edge meets two squares' corners mid-edge
    overlapping = box(2.5, 2.5, 3.5, 3.5)
    nested = box(0.2, 0.2, 0.4, 0.4)  # inside a square, touching nothing
    duplicate = box(4, 4, 5, 5)
    _same_union([*coverage, t_junction, overlapping, nested, duplicate])
    bad = whitespace._not_coverage(
        np.array([*coverage, t_junction, overlapping], dtype=object), threads=1
    )
    assert bad[-2:].all()  # both flagged, with the squares they meet
    assert not bad[:6].any()  # the column x 0..1 meets neither


def test_coverage_check_in_slices_agrees_with_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whitespace, "THREAD_MIN", 10)
    rng = np.random.default_rng(5)
    squares = np.array(_grid(12), dtype=object)
    # Some squares nudged (edges no longer noded to their neighbours), across the slices.
    nudged = rng.choice(squares.size, 12, replace=False)
    squares[nudged] = shapely.transform(squares[nudged], lambda xy: xy + np.array([0.1, 0.0]))
    one = whitespace._not_coverage(squares, threads=1)
    sliced = whitespace._not_coverage(squares, threads=4)
    assert one.any() and (one == sliced).all()
    _same_union(list(squares), threads=4)


def test_overlapping_layer_is_united_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whitespace, "THREAD_MIN", 10)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 20, 80), rng.uniform(0, 10, 80)
    discs = shapely.buffer(shapely.points(x, y), rng.uniform(0.5, 2.0, 80))
    assert whitespace.overlapping(discs)
    _same_union(list(discs), threads=3)


def test_parts_related_in_threads_are_the_parts_related_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(whitespace, "VERTICES_PER_THREAD", 10)
    market = shapely.union_all(
        [shape(canonical.WITH_HOLE), shape(canonical.MULTI), shape(canonical.ANTIMERIDIAN),
         box(0, 0, 4, 2)]
    )  # fmt: skip
    covered = covered_union([box(1, 0, 3, 1), box(10, 10, 12, 14), box(20.5, 0, 22.5, 1)])
    one = uncovered_parts(market, covered, threads=1)
    many = uncovered_parts(market, covered, threads=3)
    expected = market.difference(covered)
    for parts in (one, many):
        assert shapely.union_all(parts).symmetric_difference(expected).area == pytest.approx(0)
    assert len(one) == len(many)


def test_regions_covered_whole_take_their_own_area() -> None:
    regions = [box(x, 0, x + 1, 1) for x in range(6)]  # unit squares along the equator
    parts = uncovered_parts(box(0, 0, 6, 1), covered_union([box(4.5, 0, 6, 1)]))
    plain = by_region(parts, regions, lon=[0.5], lat=[0.5], value=[3.0])
    known = by_region(
        parts, regions, lon=[0.5], lat=[0.5], value=[3.0], region_km2=geodesic_area_km2(regions)
    )
    assert known.position.tolist() == plain.position.tolist() == [0, 1, 2, 3, 4]
    assert known.area_km2 == pytest.approx(plain.area_km2, rel=1e-9)
    assert known.customers.tolist() == plain.customers.tolist()


# --- uncovered_by: the market less every territory at once, no union -----------------------


_SPREAD = shapely.union_all(
    [shape(canonical.WITH_HOLE), shape(canonical.MULTI), shape(canonical.ANTIMERIDIAN),
     box(0, 0, 4, 2)]
)  # fmt: skip
_OVER_IT = [box(1, 0, 3, 1), box(2, 0.5, 5, 1.5), box(10, 10, 12, 14), box(11.5, 11.5, 12.5, 12.5),
            box(20.5, 0, 22.5, 1)]  # fmt: skip


def test_uncovered_by_is_the_market_less_the_union() -> None:
    found = uncovered_by(_SPREAD, _OVER_IT)
    ours = found.parts
    theirs = uncovered_parts(_SPREAD, covered_union(_OVER_IT))
    assert len(ours) == len(theirs) == 7
    assert shapely.union_all(ours).equals(shapely.union_all(theirs))
    assert all(p.geom_type == "Polygon" and p.is_valid and p.exterior.is_ccw for p in ours)
    # By hand: the 4x2 box leaves 2 parts, the holed square 1 (a C), the two-part one 2, the
    # antimeridian pair 2 (met by nothing); 11.5..12.5 lies in the market's hole: takes nothing.
    assert found.km2 == pytest.approx(geodesic_area_km2(ours))
    assert found.km2.sum() == pytest.approx(geodesic_area_km2(theirs).sum())


def test_uncovered_by_takes_parts_no_territory_meets_whole() -> None:
    # The antimeridian parts and the hole square meet no territory's box: as they were.
    found = uncovered_by(_SPREAD, [box(0, 0, 1, 1)]).parts
    untouched = [p for p in shapely.get_parts(_SPREAD) if not p.intersects(box(0, 0, 1, 1))]
    for part in untouched:
        assert any(p.equals_exact(shapely.orient_polygons(part), 0) for p in found)
    assert uncovered_by(_SPREAD, []).parts.size == len(shapely.get_parts(_SPREAD))


def test_uncovered_by_asks_geos_when_the_strips_do_not_join(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = uncovered_by(_SPREAD, _OVER_IT)
    monkeypatch.setattr(whitespace.clip, "difference", lambda *a, **k: None)
    fallen_back = uncovered_by(_SPREAD, _OVER_IT)
    assert shapely.union_all(fallen_back.parts).equals(shapely.union_all(expected.parts))
    assert sorted(fallen_back.km2) == pytest.approx(sorted(expected.km2))


def test_uncovered_by_market_must_be_polygonal() -> None:
    with pytest.raises(GeometryTypeError):
        uncovered_by(shapely.Point(0, 0), [box(0, 0, 1, 1)])


def test_uncovered_by_repairs_and_measures_anew_what_comes_invalid() -> None:
    # The territory's corner (0.5, 1.5) lies on the market's edge between two vertices GEOS
    # computed (0.67647...): on the grid, Clipper2's hole crosses that edge by a step. Made
    # valid by its structure, measured again: the market less the box, as GEOS says.
    market = shapely.from_wkt(_TOUCHED)
    found = uncovered_by(market, [box(0.5, 1.5, 1, 2)])
    expected = market.difference(box(0.5, 1.5, 1, 2))
    assert all(p.is_valid for p in found.parts)
    assert shapely.union_all(found.parts).symmetric_difference(expected).area < 1e-8
    assert found.km2.sum() == pytest.approx(_km2(expected), rel=1e-8)


_TOUCHED = (
    "POLYGON ((0.25 0, 0.25 0.5, 0.25 0.75, 0.5416666666666666 0.75, 0.6 0.8, "
    "0.6764705882352942 1.411764705882353, 0 1.75, 0 2.25, 0.75 2.25, 1.5 2.25, 2 2.25, 2 2, "
    "2 1.75, 1.8125 1.75, 1.5 1.3333333333333333, 1.5 1.25, 2 1.25, 1.5 1.05, 1.5 0.75, "
    "1.0625 0.75, 0.75 0.3333333333333334, 0.75 0, 0.5 0, 0.25 0), (1.7083333333333333 1.75, "
    "1.5 1.75, 1.5 1.5714285714285714, 1.7083333333333333 1.75))"
)
