"""SQL of layer health checks: the layer's territories as stored, valid or not."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session


def territory_shapes(session: Session, *, layer_id: int) -> dict[str, Any]:
    """Ids, names, owners and shapes (lon/lat degrees) of the layer's territories, by id.

    Read from PostGIS, not from the look-up index: a territory written by SQL may be invalid or
    empty, and the checks must see it as stored.
    """
    rows = session.execute(
        text(
            "SELECT id, name, owner, ST_AsBinary(geom) AS wkb "
            "FROM territories WHERE layer_id = :layer_id ORDER BY id"
        ),
        {"layer_id": layer_id},
    ).all()
    return {
        "ids": np.array([r.id for r in rows], dtype=np.int64),
        "names": [r.name for r in rows],
        "owners": [r.owner for r in rows],
        "geoms": np.asarray(shapely.from_wkb([bytes(r.wkb) for r in rows]), dtype=object),
    }
