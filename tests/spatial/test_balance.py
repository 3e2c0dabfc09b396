"""Balance measures, with answers worked out by hand."""

from __future__ import annotations

import pytest

from spatial.balance import gini, spread
from spatial.errors import SpatialError


def test_gini_by_hand() -> None:
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n - 1) / n for one holder of all
    assert gini([1, 2, 3]) == pytest.approx(2 / 9)  # mean abs difference 8/9 over 2 * mean 2
    assert gini([]) == 0.0 and gini([0, 0]) == 0.0
    with pytest.raises(SpatialError):
        gini([-1, 2])


def test_spread_by_hand() -> None:
    s = spread([10, 20, 30, 40], [2, 4, 6, 8], top=1)
    assert s.mean == 5
    assert s.cv == pytest.approx((5**0.5) / 5)  # population std of 2,4,6,8 is sqrt(5)
    assert s.max_min_ratio == 4
    assert s.above == [(40, 8.0)] and s.below == [(10, 2.0)]
    assert spread([1, 2], [0, 3]).max_min_ratio is None  # an empty territory
    assert spread([], []).mean == 0.0
    with pytest.raises(SpatialError):
        spread([1], [1, 2])
