"""Bulk assignment: every customer to the territory that owns it, written in one transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.indexes import LayerIndex
from app.repositories import assignments
from spatial.index import RULES


@dataclass(frozen=True)
class AssignResult:
    """What a bulk assignment did."""

    layer: str
    assigned: int  # customers with an owner (pins included)
    unassigned: int  # covered by no territory
    contested: int  # covered by more than one territory
    pinned: int  # kept on their pinned territory
    seconds: float


def assign_layer(session: Session, *, entry: LayerIndex) -> AssignResult:
    """Assign every customer of the store to the layer (pins stay); the caller commits."""
    started = time.perf_counter()
    ids, lon, lat = assignments.customer_points(session)
    pins = assignments.pinned(session, layer_id=entry.layer_id)
    free = ~np.isin(ids, pins)
    found = entry.index.owners(lon[free], lat[free])
    owned = found.owner >= 0
    rules = found.rule[owned]
    assignments.replace(
        session,
        layer_id=entry.layer_id,
        customer_ids=ids[free][owned],
        territory_ids=found.owner[owned],
        rules=[RULES[r] for r in rules.tolist()],
    )
    return AssignResult(
        layer=entry.layer,
        assigned=int(owned.sum()) + pins.size,
        unassigned=int((~owned).sum()),
        contested=int((found.covering > 1).sum()),
        pinned=int(pins.size),
        seconds=round(time.perf_counter() - started, 3),
    )
