"""The territory index: owners and rules on hand-checkable layouts, against brute force, and
incremental changes against a fresh build."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import shape

from spatial.errors import SpatialError
from spatial.index import RULES, Territories, TerritoryIndex, _Frame
from tests import canonical

_GEOD = Geod(ellps="WGS84")


def _layer(
    geometries: list[dict[str, Any]], priority: list[int] | None = None, **build: Any
) -> TerritoryIndex:
    geoms = np.array([shape(g) for g in geometries], dtype=object)
    area = np.array([abs(_GEOD.geometry_area_perimeter(g)[0]) for g in geoms])
    territories = Territories(
        ids=np.arange(1, len(geoms) + 1, dtype=np.int64),
        geoms=geoms,
        priority=np.array(priority or [0] * len(geoms), dtype=np.int64),
        area_m2=area,
    )
    return TerritoryIndex.build(territories, **build)


def _square(x0: float, y0: float, side: float) -> dict[str, Any]:
    ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _owners(index: TerritoryIndex, points: list[tuple[float, float]]) -> list[tuple[int, str]]:
    lon, lat = zip(*points, strict=True)
    found = index.owners(lon, lat)
    return list(zip(found.owner.tolist(), found.rules(), strict=True))


def test_inside_outside_and_on_the_border() -> None:
    index = _layer([canonical.SQUARE])
    got = _owners(index, [(0.5, 0.5), (2, 2), (1, 0.5), (0, 0), (1.0000001, 0.5)])
    assert got == [(1, "only"), (-1, "none"), (1, "only"), (1, "only"), (-1, "none")]


def test_a_hole_is_not_covered_but_its_edge_is() -> None:
    index = _layer([canonical.WITH_HOLE])
    got = _owners(index, [(12, 12), (11, 12), (10.5, 10.5), (14, 14)])
    assert got == [(-1, "none"), (1, "only"), (1, "only"), (1, "only")]


def test_every_part_of_a_multipolygon_counts() -> None:
    index = _layer([canonical.MULTI])
    assert _owners(index, [(20.5, 0.5), (22.5, 0.5), (21.5, 0.5)]) == [
        (1, "only"),
        (1, "only"),
        (-1, "none"),
    ]


def test_priority_then_area_then_id_decide() -> None:
    big, small = _square(0, 0, 4), _square(1, 1, 1)
    # Lower priority number wins even over a smaller territory.
    assert _owners(_layer([big, small], priority=[0, 5]), [(1.5, 1.5), (3, 3)]) == [
        (1, "priority"),
        (1, "only"),
    ]
    # Same priority: the smaller area wins.
    assert _owners(_layer([big, small]), [(1.5, 1.5)]) == [(2, "area")]
    # Same priority and area: the smaller id wins.
    assert _owners(_layer([small, small]), [(1.5, 1.5)]) == [(1, "id")]


def test_a_shared_border_is_covered_by_both_neighbours() -> None:
    index = _layer([canonical.LEFT_OF_BORDER, canonical.RIGHT_OF_BORDER])
    found = index.owners([31.0, 30.5, 31.5], [0.5, 0.5, 0.5])
    assert found.covering.tolist() == [2, 1, 1]
    # Equal squares at the same latitudes have equal areas: the id decides on the border.
    assert found.owner.tolist() == [1, 1, 2]
    assert found.rules() == ["id", "only", "only"]
    assert index.covering(31.0, 0.5).tolist() == [1, 2]


def test_the_antimeridian() -> None:
    index = _layer([canonical.ANTIMERIDIAN])
    got = _owners(index, [(179.5, 51.5), (-179.5, 51.5), (180, 51.5), (-180, 51.5), (0, 51.5)])
    assert got == [(1, "only")] * 4 + [(-1, "none")]


def test_bad_points_name_their_index() -> None:
    index = _layer([canonical.SQUARE])
    with pytest.raises(SpatialError) as err:
        index.owners([0.5, 0.5, 200.0], [0.5, np.nan, 0.5])
    assert err.value.field == "points[1]"
    with pytest.raises(SpatialError):
        index.owners([0.5, 0.5], [0.5])


def test_an_empty_layer_owns_nothing() -> None:
    index = _layer([])
    assert index.owners([1.0], [2.0]).owner.tolist() == [-1]


def _brute_force(index: TerritoryIndex, x: np.ndarray, y: np.ndarray) -> list[tuple[int, int]]:
    t = index.territories
    expected = []
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        hits = [i for i, g in enumerate(t.geoms) if shapely.intersects_xy(g, px, py)]
        best = min(hits, key=lambda i: (t.priority[i], t.area_m2[i], t.ids[i]), default=None)
        expected.append((-1 if best is None else int(t.ids[best]), len(hits)))
    return expected


@settings(max_examples=40, deadline=None)
@given(
    squares=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 20), st.integers(0, 2)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_index_agrees_with_brute_force(squares: list[tuple[int, int, int, int]], seed: int) -> None:
    # Squares on a 0.25-degree lattice: borders and corners land exactly on cell edges too.
    geometries = [_square(x / 4, y / 4, s / 4) for x, y, s, _ in squares]
    index = _layer(geometries, priority=[p for *_, p in squares], root_deg=1.0, max_depth=3)
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-0.5, 16, 300) * 8) / 8  # many points exactly on borders
    y = np.round(rng.uniform(-0.5, 16, 300) * 8) / 8
    found = index.owners(x, y)
    assert list(zip(found.owner.tolist(), found.covering.tolist(), strict=True)) == _brute_force(
        index, x, y
    )
    assert set(found.rules()) <= set(RULES)
    # The scalar fast path gives the very same answers.
    one_by_one = [index.owner_of(px, py) for px, py in zip(x[:60], y[:60], strict=True)]
    assert one_by_one == list(
        zip(
            found.owner[:60].tolist(), found.rules()[:60], found.covering[:60].tolist(), strict=True
        )
    )


def test_scalar_fast_path_on_the_canonical_cases() -> None:
    index = _layer([canonical.LEFT_OF_BORDER, canonical.RIGHT_OF_BORDER, canonical.WITH_HOLE])
    assert index.owner_of(31.0, 0.5) == (1, "id", 2)
    assert index.owner_of(31.5, 0.5) == (2, "only", 1)
    assert index.owner_of(12, 12) == (-1, "none", 0)
    assert index.owner_of(0, 0) == (-1, "none", 0)
    with pytest.raises(SpatialError):
        index.owner_of(181, 0)


def test_fine_cells_are_exact_at_the_edges() -> None:
    frame = _Frame(x0=-180.0, y0=-90.0, root_deg=1.0, nx=360, ny=180, depth=3, max_depth=3)
    edges = np.array([-180.0, -179.875, 0.0, 1.0, 179.875])
    values = np.concatenate(
        [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), [-1e-300, 1e-300]]
    )
    got = frame.fine_cells(values, np.full(values.size, 0.0625))
    # The exact answer: the largest i with origin + i * step <= v, or the padding beyond.
    cols = [
        max(i for i in range(-1, 2881) if Fraction(-180) + Fraction(i, 8) <= Fraction(v))
        for v in values.tolist()
    ]
    row = 90 * 8  # lat 0.0625 is in the first fine row north of the equator
    expected = [(row + 1) * frame.width + col + 1 for col in cols]
    assert got.tolist() == expected
    assert [frame.fine_cell(v, 0.0625) for v in values.tolist()] == expected


def test_root_deg_must_be_a_power_of_two() -> None:
    with pytest.raises(SpatialError):
        _layer([canonical.SQUARE], root_deg=0.3)


# --- incremental changes -----------------------------------------------------------------------

# Shapes on a quarter-degree lattice inside 0..16 degrees: (x, y, side) in quarters, and a hole.
_SHAPE = st.tuples(st.integers(0, 56), st.integers(0, 56), st.integers(1, 16), st.booleans())
_EDIT = st.one_of(
    st.tuples(st.just("add"), _SHAPE, st.integers(0, 2)),
    st.tuples(st.just("reshape"), st.integers(0, 99), _SHAPE),
    st.tuples(st.just("delete"), st.integers(0, 99)),
    st.tuples(st.just("priority"), st.integers(0, 99), st.integers(0, 2)),
)
# Two tiny squares nobody edits pin the root grid to 0..16 degrees, so most changes stay in it.
_ANCHORS = {1: (_square(0, 0, 0.25), 0), 2: (_square(15.75, 15.75, 0.25), 0)}

State = dict[int, tuple[dict[str, Any], int]]  # id -> (GeoJSON geometry, priority)


def _shape(spec: tuple[int, int, int, bool]) -> dict[str, Any]:
    x, y, side, hole = spec
    outer = _square(x / 4, y / 4, side / 4)
    if hole and side >= 4:  # a hole a quarter of the side in from each edge
        inner = _square((x + side / 4) / 4, (y + side / 4) / 4, side / 8)
        outer["coordinates"].append(inner["coordinates"][0][::-1])
    return outer


def _territories(state: State, ids: list[int]) -> Territories:
    geoms = np.array([shape(state[i][0]) for i in ids], dtype=object)
    return Territories(
        ids=np.array(ids, dtype=np.int64),
        geoms=geoms,
        priority=np.array([state[i][1] for i in ids], dtype=np.int64),
        area_m2=np.array([abs(_GEOD.geometry_area_perimeter(g)[0]) for g in geoms]),
    )


def _edited(state: State, edit: tuple[Any, ...], next_id: int) -> State:
    """The state after one edit; edits name a territory by its rank among the editable ids."""
    state = dict(state)
    editable = sorted(i for i in state if i not in _ANCHORS)
    if edit[0] == "add" or not editable:
        spec = edit[1] if edit[0] == "add" else (8, 8, 8, False)
        state[next_id] = (_shape(spec), edit[2] if edit[0] == "add" else 0)
        return state
    target = editable[edit[1] % len(editable)]
    geometry, priority = state[target]
    if edit[0] == "reshape":
        state[target] = (_shape(edit[2]), priority)
    elif edit[0] == "priority":
        state[target] = (geometry, edit[2])
    else:
        del state[target]
    return state


def _points(state: State, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points, points on the 1/8-degree lattice (borders, corners) and every vertex."""
    rng = np.random.default_rng(seed)
    vertices = np.array(
        [xy for geometry, _ in state.values() for ring in geometry["coordinates"] for xy in ring]
    )
    x = np.r_[
        rng.uniform(-0.5, 16.5, 100), np.round(rng.uniform(-0.5, 16.5, 200) * 8) / 8, vertices[:, 0]
    ]
    y = np.r_[
        rng.uniform(-0.5, 16.5, 100), np.round(rng.uniform(-0.5, 16.5, 200) * 8) / 8, vertices[:, 1]
    ]
    return x, y


def _answers(index: TerritoryIndex, x: np.ndarray, y: np.ndarray) -> list[tuple[int, int, int]]:
    found = index.owners(x, y)
    return list(
        zip(found.owner.tolist(), found.rule.tolist(), found.covering.tolist(), strict=True)
    )


def _apply(index: TerritoryIndex, before: State, after: State) -> TerritoryIndex:
    """``index`` (built from ``before``) changed into ``after``: only what differs is sent."""
    upserts = sorted(i for i in after if before.get(i) != after[i])
    removed = sorted(set(before) - set(after))
    return index.with_changes(_territories(after, upserts), removed)


@settings(max_examples=30, deadline=None)
@given(
    start=st.lists(st.tuples(_SHAPE, st.integers(0, 2)), max_size=6),
    batches=st.lists(st.lists(_EDIT, min_size=1, max_size=3), min_size=1, max_size=4),
    max_depth=st.sampled_from([3, 5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_changes_applied_one_by_one_answer_like_a_fresh_build(
    start: list[tuple[tuple[int, int, int, bool], int]],
    batches: list[list[tuple[Any, ...]]],
    max_depth: int,
    seed: int,
) -> None:
    # max_depth 3: the fine grid holds every level; 5: blocks hold the last one.
    state: State = dict(_ANCHORS) | {3 + k: (_shape(s), p) for k, (s, p) in enumerate(start)}
    next_id = 3 + len(start)
    index = TerritoryIndex.build(_territories(state, sorted(state)), max_depth=max_depth)
    for batch in batches:
        after = state
        for edit in batch:
            after = _edited(after, edit, next_id)
            next_id += 1
        x, y = _points(state | after, seed)
        old_answers = _answers(index, x, y)
        changed = _apply(index, state, after)
        fresh = TerritoryIndex.build(_territories(after, sorted(after)), max_depth=max_depth)
        assert _answers(changed, x, y) == _answers(fresh, x, y)
        assert _answers(index, x, y) == old_answers  # the old version is untouched
        assert sorted(changed.territories.ids.tolist()) == sorted(after)
        some = list(zip(x[::7].tolist(), y[::7].tolist(), strict=True))
        assert [changed.owner_of(px, py) for px, py in some] == [
            fresh.owner_of(px, py) for px, py in some
        ]
        assert [changed.covering(px, py).tolist() for px, py in some] == [
            fresh.covering(px, py).tolist() for px, py in some
        ]
        index, state = changed, after


def test_a_change_rebuilds_only_the_root_cells_it_touches() -> None:
    state: State = {i: (_square(i, 0, 1), 0) for i in range(1, 31)}
    index = TerritoryIndex.build(_territories(state, sorted(state)))
    # Root cells x 1 .. 31, y 0 .. 1: the grid holds its far edges too.
    assert index.rebuilt_roots == 31 * 2
    after = dict(state)
    after[10] = (_square(10, 0, 0.5), 0)
    changed = _apply(index, state, after)
    # Territory 10 spans x 10..11, y 0..1: the closed cells meeting it are x 9..11, y 0..1.
    assert changed.rebuilt_roots == 3 * 2
    assert changed.owner_of(10.25, 0.25) == (10, "only", 1)
    assert changed.owner_of(10.75, 0.25) == (-1, "none", 0)  # no longer in 10's new shape
    assert changed.owner_of(11.0, 0.25) == (11, "only", 1)
    assert index.owner_of(10.75, 0.25) == (10, "only", 1)  # the old version, as it was


def test_no_change_is_the_same_index_and_a_bad_change_is_refused() -> None:
    index = _layer([canonical.SQUARE, canonical.WITH_HOLE])
    assert index.with_changes() is index
    with pytest.raises(SpatialError):
        index.with_changes(removed=[99])
    twice = Territories(
        np.array([1, 1]), np.array([shape(canonical.SQUARE)] * 2), np.zeros(2, int), np.ones(2)
    )
    with pytest.raises(SpatialError):
        index.with_changes(twice)


def test_a_territory_outside_the_root_grid_rebuilds_everything() -> None:
    state: State = {1: (canonical.SQUARE, 0)}
    index = TerritoryIndex.build(_territories(state, [1]))
    after = state | {2: (_square(50, 50, 1), 0)}
    changed = _apply(index, state, after)
    assert changed.rebuilt_roots == 52 * 52  # a new root grid: cells 0 .. 51 both ways
    assert changed.owner_of(50.5, 50.5) == (2, "only", 1)
    assert changed.owner_of(0.5, 0.5) == (1, "only", 1)


def test_many_changes_leave_no_pile_of_garbage() -> None:
    state: State = {i: (_square(i % 8, i // 8, 1), 0) for i in range(64)}
    index = TerritoryIndex.build(_territories(state, sorted(state)))
    rng = np.random.default_rng(7)
    for _ in range(40):
        after = dict(state)
        i = int(rng.integers(64))
        x, y = rng.integers(0, 28, 2) / 4
        after[i] = (_square(x, y, float(rng.integers(1, 8)) / 4), 0)
        index, state = _apply(index, state, after), after
    cells = index._cells
    assert 2 * cells.dead_leaves <= cells.leaf_count.size
    assert 2 * cells.dead_blocks <= cells.n_blocks
    fresh = TerritoryIndex.build(_territories(state, sorted(state)))
    x, y = _points(state, 3)
    assert _answers(index, x, y) == _answers(fresh, x, y)


def _circles(rng: np.random.Generator, n: int) -> Territories:
    """``n`` overlapping discs of 1° radius (256 vertices each) over a 10° square, fresh."""
    geoms = shapely.buffer(shapely.points(rng.random((n, 2)) * 10), 1.0, quad_segs=64)
    return Territories(
        ids=np.arange(1, n + 1, dtype=np.int64),
        geoms=np.asarray(geoms, dtype=object),
        priority=np.zeros(n, dtype=np.int64),
        area_m2=shapely.area(geoms) * 1e10,
    )


def _ask_together(
    asks: list[tuple[TerritoryIndex, bool]], x: np.ndarray, y: np.ndarray
) -> list[np.ndarray]:
    """Owners of the points from each (index, scalar?) in its own thread, all started at once."""
    start = threading.Barrier(len(asks))

    def ask(index: TerritoryIndex, scalar: bool) -> np.ndarray:
        start.wait()
        if scalar:
            return np.array([index.owner_of(a, b)[0] for a, b in zip(x, y, strict=True)])
        return index.owners(x, y).owner

    with ThreadPoolExecutor(len(asks)) as pool:
        jobs = [pool.submit(ask, index, scalar) for index, scalar in asks]
        return [job.result() for job in jobs]


def test_threads_look_up_one_index_at_once() -> None:
    """Look-ups from several threads at once, on a new index and on an updated one.

    GEOS prepared polygons build their indexes on first use; two threads doing it at once
    corrupted the heap (the process aborted), so this test fails by crashing without the lock.
    """
    rng = np.random.default_rng(5)
    for _ in range(15):
        index = TerritoryIndex.build(_circles(rng, 40), max_depth=1)  # big leaves: exact tests
        # An updated version shares the unchanged discs with the old one, still in use.
        newer = index.with_changes(_circles(rng, 3))
        x, y = rng.random(1_000) * 10, rng.random(1_000) * 10
        asks = [(index, False), (index, True), (newer, False), (newer, True)]
        answers = _ask_together(asks, x, y)
        assert np.array_equal(answers[0], index.owners(x, y).owner)
        assert np.array_equal(answers[1], answers[0])
        assert np.array_equal(answers[2], newer.owners(x, y).owner)
        assert np.array_equal(answers[3], answers[2])
