"""TerritoryIndex.with_ranking: a new priority or area keeps the cells and agrees with a build."""

from __future__ import annotations

import numpy as np
import shapely

from spatial.index import Territories, TerritoryIndex


def _overlapping(n: int, seed: int) -> Territories:
    """``n`` random boxes and discs over a 20 x 20 degree area, overlapping a lot."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 16, n), rng.uniform(0, 16, n)
    size = rng.uniform(1, 6, n)
    boxes = shapely.box(x, y, x + size, y + size)
    discs = shapely.buffer(shapely.points(x + 2, y + 2), size / 2)
    geoms = np.where(rng.random(n) < 0.5, boxes, discs)
    return Territories(
        ids=np.arange(n, dtype=np.int64) * 7 + 3,
        geoms=np.asarray(geoms, dtype=object),
        priority=rng.integers(0, 3, n).astype(np.int64),
        area_m2=np.round(shapely.area(geoms) * 1e4),  # equal areas happen: the id decides
    )


def test_new_ranks_answer_as_a_fresh_build() -> None:
    rng = np.random.default_rng(3)
    old = _overlapping(60, seed=1)
    index = first = TerritoryIndex.build(old)
    x, y = rng.uniform(-1, 23, 20_000), rng.uniform(-1, 23, 20_000)
    before = index.owners(x, y)
    for step in range(4):
        priority = old.priority.copy()
        area = old.area_m2.copy()
        changed = rng.choice(len(old), size=5, replace=False)
        priority[changed] = rng.integers(-1, 4, changed.size)
        if step % 2:
            area[changed[:2]] = area[changed[2:4]]  # ties on area: the id decides
        ranked = index.with_ranking(priority, area)
        built = TerritoryIndex.build(Territories(old.ids, old.geoms, priority, area))
        got, want = ranked.owners(x, y), built.owners(x, y)
        assert ranked.rebuilt_roots == 0
        np.testing.assert_array_equal(got.owner, want.owner)
        np.testing.assert_array_equal(got.rule, want.rule)
        np.testing.assert_array_equal(got.covering, want.covering)
        for i in range(0, x.size, 997):  # the scalar paths too, and the covering order
            assert ranked.owner_of(x[i], y[i]) == built.owner_of(x[i], y[i])
            np.testing.assert_array_equal(ranked.covering(x[i], y[i]), built.covering(x[i], y[i]))
        index, old = ranked, ranked.territories
    # Every version stays as it was: the first index still answers the first ranking.
    again = first.owners(x, y)
    np.testing.assert_array_equal(before.owner, again.owner)
    np.testing.assert_array_equal(before.rule, again.rule)


def test_ranks_then_shapes_then_ranks() -> None:
    """with_ranking and with_changes compose: a version made of both agrees with a build."""
    rng = np.random.default_rng(8)
    first = _overlapping(40, seed=2)
    index = TerritoryIndex.build(first).with_ranking(first.priority[::-1].copy(), first.area_m2)
    moved = Territories(
        ids=first.ids[:3],
        geoms=np.asarray(
            [shapely.box(1, 1, 9, 9), shapely.box(5, 5, 7, 12), shapely.box(0, 0, 1, 1)]
        ),
        priority=np.array([0, 1, 2]),
        area_m2=np.array([5.0, 5.0, 5.0]),
    )
    index = index.with_changes(moved, removed=first.ids[10:12])
    t = index.territories
    index = index.with_ranking(t.priority + rng.integers(-1, 2, len(t)), t.area_m2)
    t = index.territories
    built = TerritoryIndex.build(Territories(t.ids, t.geoms, t.priority, t.area_m2))
    x, y = rng.uniform(-1, 23, 20_000), rng.uniform(-1, 23, 20_000)
    got, want = index.owners(x, y), built.owners(x, y)
    np.testing.assert_array_equal(got.owner, want.owner)
    np.testing.assert_array_equal(got.rule, want.rule)
