"""SQL of coverage maps and balance: per-territory customer counts and values of a layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

# Counted from the layer's assignments (pins included): what the layer's owners are told.
# One scan of the layer's partition: each assignment carries its customer's value.
_STATS = """
SELECT territory_id AS id, count(*) AS n, sum(value) AS value
FROM assignments WHERE layer_id = :l
GROUP BY territory_id
"""
_CUSTOMERS = """
SELECT c.id, a.territory_id, c.value, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
FROM assignments a JOIN customers c ON c.id = a.customer_id
WHERE a.layer_id = :l
  AND (CAST(:bbox AS float8[]) IS NULL OR c.geom && ST_MakeEnvelope(
       (CAST(:bbox AS float8[]))[1], (CAST(:bbox AS float8[]))[2],
       (CAST(:bbox AS float8[]))[3], (CAST(:bbox AS float8[]))[4], 4326))
ORDER BY c.id
LIMIT :limit
"""


# The same, with the assignments' version they are as of: one statement, one snapshot (a
# version read by a statement of its own may already be older than the counts).
_VERSIONED_STATS = f"""
WITH v AS (SELECT coalesce(max(version), 0) AS version FROM assignment_versions
           WHERE layer_id = :l),
s AS ({_STATS})
SELECT v.version, s.id, s.n, s.value FROM v LEFT JOIN s ON true
"""


def versioned_stats(
    session: Session, *, layer_id: int, territory_ids: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """The layer's assignment version, and ``territory_stats`` as of that version."""
    rows = session.execute(text(_VERSIONED_STATS), {"l": layer_id}).all()
    count, value = _by_territory([r for r in rows if r.id is not None], territory_ids)
    return int(rows[0].version), count, value


def territory_stats(
    session: Session, *, layer_id: int, territory_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Customer count and value of each of ``territory_ids`` (0 where none is assigned)."""
    return _by_territory(session.execute(text(_STATS), {"l": layer_id}).all(), territory_ids)


def _by_territory(rows: Sequence[Any], territory_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count and value of each of ``territory_ids`` from rows of (id, n, value)."""
    count = np.zeros(territory_ids.size, dtype=np.int64)
    value = np.zeros(territory_ids.size, dtype=np.float64)
    if rows:
        ids = np.array([r.id for r in rows], dtype=np.int64)
        order = np.argsort(territory_ids)
        at = order[np.searchsorted(territory_ids, ids, sorter=order).clip(0, order.size - 1)]
        known = territory_ids[at] == ids  # a territory deleted since: not on the map
        count[at[known]] = np.array([r.n for r in rows], dtype=np.int64)[known]
        value[at[known]] = np.array([float(r.value) for r in rows])[known]
    return count, value


def assigned_customers(
    session: Session,
    *,
    layer_id: int,
    bbox: tuple[float, float, float, float] | None,
    limit: int,
) -> list[Any]:
    """The layer's assigned customers (id, territory, value, lon, lat), in bbox, up to limit."""
    params = {"l": layer_id, "bbox": list(bbox) if bbox else None, "limit": limit}
    return list(session.execute(text(_CUSTOMERS), params).all())
