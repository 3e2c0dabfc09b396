"""SQL of overlaps: a territory's neighbourhood as engine input, customers near overlaps."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import pgcopy
from app.errors import NotFoundError

# The territory first, then every territory of the layer whose bbox meets its bbox: the only
# ones it can overlap. Read in the session's transaction, so a dry run sees its own change.
_NEIGHBOURHOOD = """
SELECT t.id, t.area_m2, ST_AsBinary(t.geom) AS wkb
FROM territories me
JOIN territories t ON t.layer_id = me.layer_id AND t.geom && me.geom
WHERE me.id = :territory_id AND me.layer_id = :layer_id
ORDER BY t.id <> me.id, t.id
"""


def neighbourhood(session: Session, *, layer_id: int, territory_id: int) -> dict[str, Any]:
    """The territory (first) and the layer's territories near it: ids, WKB, area (m²)."""
    rows = session.execute(
        text(_NEIGHBOURHOOD), {"layer_id": layer_id, "territory_id": territory_id}
    ).all()
    if not rows:
        raise NotFoundError(f"territory {territory_id} is not in this layer", field="id")
    return {
        "ids": np.array([r.id for r in rows], dtype=np.int64),
        "area_m2": np.array([r.area_m2 for r in rows], dtype=np.float64),
        "wkb": [bytes(r.wkb) for r in rows],
    }


def refs(session: Session, *, layer_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Id, name, owner and exclusive flag of the layer's territories among ``ids``."""
    rows = session.execute(
        text(
            "SELECT id, name, owner, exclusive FROM territories "
            "WHERE layer_id = :layer_id AND id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"layer_id": layer_id, "ids": ids},
    ).all()
    return {int(r.id): dict(r._mapping) for r in rows}


_CUSTOMER_FIELDS = (
    ("id", pgcopy.INT8),
    ("x", pgcopy.FLOAT8),
    ("y", pgcopy.FLOAT8),
    ("value", pgcopy.FLOAT8),
)


def customers_in(
    session: Session, *, bbox: tuple[float, float, float, float]
) -> dict[str, np.ndarray]:
    """Id, lon/lat (degrees) and value of the customers in ``bbox``, by id (binary COPY)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    query = (
        "SELECT id, ST_X(geom), ST_Y(geom), value::float8 FROM customers "
        "WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
    )
    buffer = bytearray()
    with raw.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", bbox) as copy:
        for chunk in copy:
            buffer += chunk
    rows = pgcopy.decode(_CUSTOMER_FIELDS, buffer)
    rows = rows[np.argsort(rows["id"], kind="stable")]
    return {
        "ids": rows["id"].astype(np.int64),
        "x": rows["x"].astype(np.float64),
        "y": rows["y"].astype(np.float64),
        "value": rows["value"].astype(np.float64),
    }
