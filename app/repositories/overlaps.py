"""SQL of overlaps: a territory's neighbourhood as engine input, and the contested customers."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

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

# Customers both territories of a pair cover (border included, as the ownership rule): the
# customers the two compete for. The bbox tests let the GiST index on customers pick them.
_CONTESTED = """
WITH p AS (
    SELECT * FROM unnest(CAST(:a AS bigint[]), CAST(:b AS bigint[])) WITH ORDINALITY AS p(a, b, i)
)
SELECT p.i, count(c.id) AS n, coalesce(sum(c.value), 0) AS value,
       coalesce(array_agg(c.id ORDER BY c.id) FILTER (WHERE c.id IS NOT NULL), '{}') AS ids
FROM p
JOIN territories ta ON ta.id = p.a
JOIN territories tb ON tb.id = p.b
LEFT JOIN customers c
    ON c.geom && ta.geom AND c.geom && tb.geom
    AND ST_Covers(ta.geom, c.geom) AND ST_Covers(tb.geom, c.geom)
GROUP BY p.i
ORDER BY p.i
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


def contested(
    session: Session, *, first: list[int], second: list[int]
) -> list[tuple[int, float, list[int]]]:
    """Per pair of territory ids: count, total value and ids of the customers both cover."""
    if not first:
        return []
    rows = session.execute(text(_CONTESTED), {"a": first, "b": second}).all()
    found = {int(r.i): (int(r.n), float(r.value), list(r.ids)) for r in rows}
    # A pair whose territory is gone (deleted since the index was read) contests nobody.
    return [found.get(i, (0, 0.0, [])) for i in range(1, len(first) + 1)]
