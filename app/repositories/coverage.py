"""SQL of coverage maps and balance: per-territory customer counts and values of a layer."""

from __future__ import annotations

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


def territory_stats(
    session: Session, *, layer_id: int, territory_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Customer count and value of each of ``territory_ids`` (0 where none is assigned)."""
    rows = session.execute(text(_STATS), {"l": layer_id}).all()
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
