"""SQL of ownership: the layer's territories as engine input, and the rule in plain PostGIS."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

# The ownership rule in SQL, the same as the engine's: the territories whose polygon covers
# the point (border included), lowest priority number, then smallest area, then smallest id.
_OWNERS = """
WITH pts AS (
    SELECT u.i, ST_SetSRID(ST_MakePoint(u.x, u.y), 4326) AS geom
    FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS u(x, y, i)
)
SELECT p.i, o.id, coalesce(o.n, 0) AS n
FROM pts p
LEFT JOIN LATERAL (
    SELECT t.id, count(*) OVER () AS n
    FROM territories t
    WHERE t.layer_id = :layer_id AND ST_Covers(t.geom, p.geom)
    ORDER BY t.priority, t.area_m2, t.id
    LIMIT 1
) o ON true
ORDER BY p.i
"""


def engine_input(session: Session, *, layer_id: int) -> dict[str, Any]:
    """The layer's territories as arrays: ids, WKB polygons, priority, area (m²), names, owners."""
    rows = session.execute(
        text(
            "SELECT id, name, owner, priority, area_m2, ST_AsBinary(geom) AS wkb "
            "FROM territories WHERE layer_id = :layer_id ORDER BY id"
        ),
        {"layer_id": layer_id},
    ).all()
    return {
        "ids": np.array([r.id for r in rows], dtype=np.int64),
        "name": [r.name for r in rows],
        "owner": [r.owner for r in rows],
        "priority": np.array([r.priority for r in rows], dtype=np.int64),
        "area_m2": np.array([r.area_m2 for r in rows], dtype=np.float64),
        "wkb": [bytes(r.wkb) for r in rows],
    }


def owners_sql(
    session: Session, *, layer_id: int, lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Owner id (-1: none) and covering count of each point, decided by PostGIS alone."""
    rows = session.execute(
        text(_OWNERS), {"xs": lon.tolist(), "ys": lat.tolist(), "layer_id": layer_id}
    ).all()
    owner = np.array([-1 if r.id is None else r.id for r in rows], dtype=np.int64)
    covering = np.array([r.n for r in rows], dtype=np.int64)
    return owner, covering
