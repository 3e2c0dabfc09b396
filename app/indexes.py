"""Feeding the engine from PostGIS: a layer's TerritoryIndex built from its stored territories."""

from __future__ import annotations

import numpy as np
import shapely
from sqlalchemy.orm import Session

from app.repositories import assignments
from spatial.index import Territories, TerritoryIndex


def build_index(session: Session, *, layer_id: int) -> TerritoryIndex:
    """A new index over the layer's territories as stored now."""
    found = assignments.engine_input(session, layer_id=layer_id)
    geoms = np.asarray(shapely.from_wkb(found["wkb"]), dtype=object)
    territories = Territories(
        ids=found["ids"], geoms=geoms, priority=found["priority"], area_m2=found["area_m2"]
    )
    return TerritoryIndex.build(territories)
