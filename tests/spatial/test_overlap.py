"""Overlaps: by hand on small shapes, and against PostGIS on random territories and counties."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.bench_overlaps import random_territories
from spatial import overlap
from spatial.errors import SpatialError
from spatial.measure import geodesic_area_km2
from spatial.overlap import contested_points, find_overlaps
from tests import canonical


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


def test_touching_squares_do_not_overlap() -> None:
    left, right = shape(canonical.LEFT_OF_BORDER), shape(canonical.RIGHT_OF_BORDER)
    corner = _box(32, 1, 33, 2)  # meets `right` at the point (32, 1) only
    found = find_overlaps([1, 2, 3], [left, right, corner], min_area_km2=0)
    assert len(found) == 0


def test_one_overlap_by_hand() -> None:
    # Two unit squares at the equator overlapping by a 0.5 x 1 degree strip.
    found = find_overlaps([7, 3], [_box(0, 0, 1, 1), _box(0.5, 0, 1.5, 1)])
    assert found.ids.tolist() == [[3, 7]]  # smaller id first
    assert found.first.tolist() == [1] and found.second.tolist() == [0]
    (strip,) = found.geoms
    assert strip.equals(_box(0.5, 0, 1, 1))
    (expected,) = geodesic_area_km2([_box(0.5, 0, 1, 1)])
    assert found.area_km2[0] == pytest.approx(expected, rel=1e-9)
    # Not quite 50%: the squares' top edges are geodesics, which bulge poleward.
    square, _ = geodesic_area_km2([_box(0, 0, 1, 1), _box(0.5, 0, 1.5, 1)])
    assert found.percent[0].tolist() == pytest.approx([100 * expected / square] * 2, rel=1e-9)


def test_slivers_below_the_tolerance_are_ignored() -> None:
    base = _box(-100, 40, -99, 41)
    wide = _box(-99.0005, 40, -98, 41)  # overlaps by a 0.0005-degree strip: ~4.2 km²
    thin = _box(-99.0000002, 40.2, -98.5, 40.8)  # 2e-7 degrees x 0.6: ~0.01 km² x 0.2
    found = find_overlaps([1, 2, 3], [base, wide, thin])
    assert found.ids.tolist() == [[1, 2], [2, 3]]  # wide contains thin whole: thin is its overlap
    assert found.percent[1, 1] == pytest.approx(100)
    sliver = find_overlaps([1, 3], [base, thin], min_area_km2=0)
    assert 0 < sliver.area_km2[0] < 0.01
    assert len(find_overlaps([1, 3], [base, thin], min_area_km2=sliver.area_km2[0] * 1.01)) == 0


def test_only_the_polygonal_part_of_a_mixed_intersection_is_kept() -> None:
    a = _box(0, 0, 2, 1)
    # Overlaps `a` in [1.5, 2] x [0.2, 0.8] and touches it along x = 0: for GEOS, a
    # GeometryCollection of a polygon and a line; the overlap is the polygon alone.
    b = shapely.MultiPolygon([_box(1.5, 0.2, 2.5, 0.8), _box(-1, 0, 0, 1)])
    assert shapely.intersection(a, b).geom_type == "GeometryCollection"
    found = find_overlaps([1, 2], [a, b])
    assert found.ids.tolist() == [[1, 2]]
    assert found.geoms[0].geom_type == "Polygon"
    assert found.geoms[0].equals(_box(1.5, 0.2, 2, 0.8))


def test_among_limits_to_one_territory() -> None:
    geoms = random_territories(300, seed=3)
    ids = np.arange(10, 310)
    every = find_overlaps(ids, geoms)
    one = find_overlaps(ids, geoms, among=[42])
    mine = (every.first == 42) | (every.second == 42)
    assert one.ids.tolist() == every.ids[mine].tolist()
    np.testing.assert_array_equal(one.area_km2, every.area_km2[mine])


def test_contested_points_are_those_both_territories_cover() -> None:
    a = _box(0, 0, 2, 1)
    b = shapely.MultiPolygon([_box(1.5, 0.2, 2.5, 0.8), _box(-1, 0, 0, 1)])  # also touches a
    c = _box(10, 10, 11, 11)  # overlaps nothing
    found = find_overlaps([1, 2, 3], [a, b, c])
    x = np.array([1.75, 2.0, 1.5, 0.0, 1.0, 2.2, 10.5, 1.9])
    y = np.array([0.5, 0.5, 0.2, 0.5, 0.5, 0.5, 10.5, 0.8])
    # inside; on a's border (b covers it); on the overlap's corner; on the border a and b share
    # away from the overlap (not counted); a only; b only; c only; on b's top edge inside a.
    pair, point = contested_points(found, [a, b, c], x, y)
    assert pair.tolist() == [0, 0, 0, 0]
    assert point.tolist() == [0, 1, 2, 7]
    rng = np.random.default_rng(1)
    geoms = random_territories(200, seed=9)
    many = find_overlaps(np.arange(200), geoms)
    xs, ys = rng.uniform(-124, -68, 20_000), rng.uniform(26, 48, 20_000)
    pair, point = contested_points(many, geoms, xs, ys)
    expected = [
        (k, p)
        for k in range(len(many))
        for p in np.flatnonzero(
            shapely.intersects_xy(geoms[many.first[k]], xs, ys)
            & shapely.intersects_xy(geoms[many.second[k]], xs, ys)
        ).tolist()
    ]
    assert list(zip(pair.tolist(), point.tolist(), strict=True)) == expected
    assert len(expected) > 50


def test_the_callers_geometries_are_never_prepared() -> None:
    """Prepared geometries are not thread-safe, and the caller's may be a look-up index's in
    use by other threads: the engine prepares copies of its own."""
    geoms = random_territories(60, seed=3)
    found = find_overlaps(np.arange(60), geoms)
    assert len(found) >= 3
    contested_points(found, geoms, np.array([-100.0]), np.array([40.0]))
    assert not shapely.is_prepared(geoms).any()


def test_threads_find_exactly_what_one_thread_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    geoms = random_territories(400, seed=11)
    ids = np.arange(400)[::-1] * 3  # ids in another order than positions
    alone = find_overlaps(ids, geoms, threads=1)
    workers = set()
    real = overlap._overlay
    # The first two slices wait for each other, so they run in two threads at once: without
    # that, one thread may finish every slice before the other starts (~0.2 ms a slice).
    both, calls = threading.Barrier(2, timeout=10), itertools.count()

    def spy(rings: Any, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        workers.add(threading.get_ident())
        if next(calls) < 2:
            both.wait()
        return real(rings, first, second)

    monkeypatch.setattr(overlap, "_overlay", spy)
    monkeypatch.setattr(overlap, "_SLICE", 8)  # many small slices, so both threads get some
    shared = find_overlaps(ids, geoms, threads=2)
    assert len(workers) == 2  # the overlays did run in two threads
    assert len(alone) > 100
    assert shared.ids.tolist() == alone.ids.tolist()
    np.testing.assert_array_equal(shared.first, alone.first)
    np.testing.assert_array_equal(shared.area_km2, alone.area_km2)
    np.testing.assert_array_equal(shared.percent, alone.percent)
    assert shapely.equals_exact(shared.geoms, alone.geoms, tolerance=0).all()


def test_a_territory_inside_another_overlaps_by_itself_whole() -> None:
    outer = _box(0, 0, 2, 2)
    inner = _box(0, 0.5, 1, 1.5)  # touches the outer's west edge: same min x
    same = _box(0, 0, 2, 2)  # identical to the outer: each covers the other
    found = find_overlaps([1, 2, 3], [outer, inner, same])
    assert found.ids.tolist() == [[1, 2], [1, 3], [2, 3]]
    # The inner territory whole, vertex for vertex (each on the 2**-30-degree grid already).
    assert found.geoms[0].normalize().equals_exact(inner.normalize(), 0)
    assert found.geoms[2].normalize().equals_exact(inner.normalize(), 0)
    assert found.geoms[1].equals(outer)
    assert found.percent[0].tolist() == pytest.approx(
        [100 * found.area_km2[0] / found.area_km2[1], 100]
    )


def test_bad_tolerance() -> None:
    with pytest.raises(SpatialError):
        find_overlaps([1], [_box(0, 0, 1, 1)], min_area_km2=-1)
    with pytest.raises(SpatialError):
        find_overlaps([1], [_box(0, 0, 1, 1)], min_area_km2=float("nan"))
    with pytest.raises(SpatialError):
        find_overlaps([1], [_box(0, 0, 1, 1)], threads=-1)


@pytest.fixture
def random_table(session: Session) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """400 random territories (holes, two-part ones) in a temporary table of the test database."""
    geoms = random_territories(400, seed=5)
    ids = np.arange(1, geoms.size + 1) * 10
    session.execute(text("CREATE TEMP TABLE rnd (id bigint primary key, geom geometry)"))
    session.execute(
        text(
            "INSERT INTO rnd SELECT u.i, ST_GeomFromWKB(u.w, 4326) "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:wkb AS bytea[])) AS u(i, w)"
        ),
        {"ids": ids.tolist(), "wkb": [shapely.to_wkb(g) for g in geoms]},
    )
    session.execute(text("CREATE INDEX ON rnd USING gist (geom)"))
    yield ids, geoms
    session.rollback()


def test_pairs_and_areas_match_a_postgis_self_join(
    session: Session, random_table: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, geoms = random_table
    found = find_overlaps(ids, geoms)
    rows = session.execute(
        text(
            "SELECT a.id AS a, b.id AS b, "
            "ST_Area(ST_Intersection(a.geom, b.geom)::geography) / 1e6 AS km2 "
            "FROM rnd a JOIN rnd b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)"
        )
    ).all()
    truth = {(r.a, r.b): r.km2 for r in rows if r.km2 >= 0.01}
    assert len(truth) > 100  # the fixture overlaps a lot
    mine = {(a, b): km2 for (a, b), km2 in zip(found.ids.tolist(), found.area_km2, strict=True)}
    assert set(mine) == set(truth)
    for pair, km2 in truth.items():
        assert mine[pair] == pytest.approx(km2, rel=5e-3)  # the brief's bound
        assert mine[pair] == pytest.approx(km2, rel=1e-4)  # what we actually hold to


def test_percentages_are_of_each_territory(random_table: tuple[np.ndarray, np.ndarray]) -> None:
    ids, geoms = random_table
    found = find_overlaps(ids, geoms)
    own = geodesic_area_km2(geoms)
    np.testing.assert_allclose(found.percent[:, 0], 100 * found.area_km2 / own[found.first])
    np.testing.assert_allclose(found.percent[:, 1], 100 * found.area_km2 / own[found.second])
    assert (found.percent <= 100 + 1e-9).all()


def test_fast_areas_agree_with_postgis(session: Session) -> None:
    """Counties (short edges), a continent-sized box and a thin sliver (long edges)."""
    rows = session.execute(
        text(
            "SELECT ST_AsBinary(geom) AS wkb, ST_Area(geom::geography) / 1e6 AS km2 "
            "FROM territories WHERE layer_id = (SELECT id FROM layers WHERE name = 'counties') "
            "AND id % 7 = 0"
        )
    ).all()
    extra = [_box(-125, 25, -65, 50), shapely.Polygon([(-100, 40), (-99, 40.5), (-99, 40.5001)])]
    truth = [r.km2 for r in rows] + [
        session.scalar(
            text("SELECT ST_Area(ST_GeomFromText(:w, 4326)::geography) / 1e6"), {"w": g.wkt}
        )
        for g in extra
    ]
    session.rollback()
    geoms = [shapely.from_wkb(bytes(r.wkb)) for r in rows] + extra
    fast = geodesic_area_km2(geoms)
    np.testing.assert_allclose(fast, truth, rtol=2e-5)
    np.testing.assert_allclose(fast, geodesic_area_km2(geoms, exact=True), rtol=2e-5)
