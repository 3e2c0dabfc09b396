"""Balance of a layer: how evenly customers, value and area spread over its territories.

For each metric: the mean, the coefficient of variation (population standard deviation over
the mean), the Gini index (0 = all equal, towards 1 = one territory holds everything) and the
max/min ratio (None when the smallest is 0: infinitely unbalanced), and the territories
farthest above and below the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spatial.errors import SpatialError


@dataclass(frozen=True)
class Spread:
    """How one metric spreads over the territories."""

    mean: float
    cv: float
    gini: float
    max_min_ratio: float | None
    above: list[tuple[int, float]]  # (territory id, value), farthest above the mean first
    below: list[tuple[int, float]]  # farthest below first


def gini(values: npt.ArrayLike) -> float:
    """Gini index of non-negative values (0 when all are equal or all are 0)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    if (x < 0).any():
        raise SpatialError("the Gini index needs non-negative values", field="values")
    n = x.size
    rank = np.arange(1, n + 1)
    return float(2 * (rank * x).sum() / (n * x.sum()) - (n + 1) / n)


def spread(ids: npt.ArrayLike, values: npt.ArrayLike, *, top: int = 3) -> Spread:
    """The spread of ``values`` (one per territory id), with ``top`` extremes each side."""
    tid = np.asarray(ids, dtype=np.int64)
    x = np.asarray(values, dtype=np.float64)
    if tid.size != x.size:
        raise SpatialError("ids and values must have the same length", field="values")
    if not x.size:
        return Spread(0.0, 0.0, 0.0, None, [], [])
    mean = float(x.mean())
    cv = float(x.std() / mean) if mean else 0.0
    low = float(x.min())
    ratio = float(x.max() / low) if low > 0 else None
    order = np.argsort(-(x - mean), kind="stable")  # farthest above first
    above = [(int(tid[i]), float(x[i])) for i in order[:top] if x[i] > mean]
    below = [(int(tid[i]), float(x[i])) for i in order[::-1][:top] if x[i] < mean]
    return Spread(mean, cv, gini(x), ratio, above, below)
