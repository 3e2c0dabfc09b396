"""Bulk assignment: every customer to the territory that owns it, written in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app import metrics
from app.indexes import IndexRegistry
from app.models import Layer
from app.repositories import assignments, layers
from spatial.index import Owners, TerritoryIndex


@dataclass(frozen=True)
class AssignResult:
    """What a bulk assignment did."""

    layer: str
    assigned: int  # customers with an owner (pins included)
    unassigned: int  # covered by no territory
    contested: int  # covered by more than one territory
    pinned: int  # kept on their pinned territory
    seconds: float


# Progress of a bulk assignment: (stage, done, total), stage one of STAGES, in that order.
Progress = Callable[[str, int, int], None]
STAGES = ("customers read", "customers assigned", "assignments written")
_CHUNK = 200_000  # customers per engine call when progress is reported (~15 ms each)


def assign_layer(
    session: Session, *, layer: str, registry: IndexRegistry, progress: Progress | None = None
) -> AssignResult:
    """Assign every customer of the store to the layer (pins stay); the caller commits."""
    started = time.perf_counter()
    target = layers.get_by_name(session, name=layer)
    assignments.lock_for_bulk(session, layer_id=target.id)
    # The index as stored now (edits of the layer wait for the lock), not as last seen here.
    entry = registry.refresh(layer)
    counts = assign_all(session, layer_id=entry.layer_id, index=entry.index, progress=progress)
    return AssignResult(
        layer=entry.layer, **counts, seconds=round(time.perf_counter() - started, 3)
    )


@metrics.ASSIGNMENT_SECONDS.time()
def assign_all(
    session: Session, *, layer_id: int, index: TerritoryIndex, progress: Progress | None = None
) -> dict[str, int]:
    """Every customer assigned to the layer by ``index`` (pins stay), written in one swap;
    the counts AssignResult reports. The caller holds the bulk lock and commits."""
    report = progress or _silent
    ids, lon, lat, value = assignments.customer_table(session)
    report(STAGES[0], ids.size, ids.size)
    pins = assignments.pinned(session, layer_id=layer_id)
    free = ~np.isin(ids, pins)
    found = _owners(index, lon[free], lat[free], report if progress else None)
    owned = found.owner >= 0
    assignments.mark_assigned(session, layer_id=layer_id)
    assignments.replace(
        session,
        layer_id=layer_id,
        customer_ids=ids[free][owned],
        territory_ids=found.owner[owned],
        rules=found.rule[owned],
        values=value[free][owned],
    )
    report(STAGES[2], int(owned.sum()), int(owned.sum()))
    return {
        "assigned": int(owned.sum()) + pins.size,
        "unassigned": int((~owned).sum()),
        "contested": int((found.covering > 1).sum()),
        "pinned": int(pins.size),
    }


def _owners(
    index: TerritoryIndex, lon: np.ndarray, lat: np.ndarray, report: Progress | None
) -> Owners:
    """The engine's answer for every point: in one call, or in chunks when progress is shown."""
    if report is None or lon.size <= _CHUNK:
        found = index.owners(lon, lat)
        if report is not None:
            report(STAGES[1], lon.size, lon.size)
        return found
    parts = []
    for start in range(0, lon.size, _CHUNK):
        parts.append(index.owners(lon[start : start + _CHUNK], lat[start : start + _CHUNK]))
        report(STAGES[1], min(start + _CHUNK, lon.size), lon.size)
    return Owners(
        owner=np.concatenate([p.owner for p in parts]),
        rule=np.concatenate([p.rule for p in parts]),
        covering=np.concatenate([p.covering for p in parts]),
    )


def _silent(stage: str, done: int, total: int) -> None:
    """No progress shown."""


@dataclass(frozen=True)
class Before:
    """What of a territory decides ownership, before an edit: its shape, priority and area."""

    wkb: bytes | None  # None: no such territory (yet)
    priority: int | None
    area_m2: float | None


def before_change(session: Session, *, layer: Layer, territory_id: int) -> Before | None:
    """The territory before an edit, if the layer's assignments are kept current."""
    if layer.assigned_at is None:
        return None
    return Before(*assignments.ranked_shape(session, territory_id=territory_id))


def after_changes(
    session: Session,
    *,
    layer: Layer,
    changes: Sequence[tuple[int | None, Before | None]],
    index: TerritoryIndex,
) -> int:
    """Re-assign only the customers some territory changes can affect: inside an old or a new
    shape of a changed territory, all of them at once.

    ``changes``: (territory id, ``before_change``'s answer) per edit, the id None for a
    territory deleted; a territory edited twice appears twice (each before, one after).
    ``index``: the layer's with the changes (``IndexRegistry.stage``). Nothing to do for a layer
    never bulk-assigned, nor for a territory whose shape, priority and area are as they were (a
    new name or owner: no customer changes hands). The owners come from the engine and only the
    rows that change are written: PostGIS took ~70 µs a customer to decide them (a second for
    the ~15,000 in a region), and rewriting every row as much again. Returns how many
    customers were re-examined.
    """
    if layer.assigned_at is None:
        return 0
    old_shapes: list[bytes] = []
    current: set[int] = set()
    for territory_id, before in changes:
        after = Before(None, None, None)
        if territory_id is not None:
            after = Before(*assignments.ranked_shape(session, territory_id=territory_id))
            if after == before:
                continue
            current.add(territory_id)
        if before is not None and before.wkb is not None and before.wkb != after.wkb:
            old_shapes.append(before.wkb)  # a new rank alone: the customers inside, once
    if not old_shapes and not current:
        return 0
    ids, lon, lat = assignments.points_near(
        session, old_shapes=old_shapes, territory_ids=sorted(current)
    )
    found = index.owners(lon, lat)
    assignments.write_owners(
        session, layer_id=layer.id, customer_ids=ids, territory_ids=found.owner, rules=found.rule
    )
    return int(ids.size)


# Below this many customers SQL re-assigns them where they are; above it the engine does, as
# in a bulk run (SQL costs ~40 µs a customer, the engine a fixed few ms plus ~1 µs each).
ENGINE_MIN_CUSTOMERS = 2_000


def before_customers(session: Session) -> list[tuple[int, str]]:
    """Hold the layers kept assigned (shared) before customers are written; returns them.

    A territory edit or a bulk run of one of them waits for the write, and the write for
    them, so none re-assigns from a state the other is changing.
    """
    return assignments.assigned_layers(session, lock=True)


def after_customers(
    session: Session,
    *,
    held: list[tuple[int, str]],
    customer_ids: list[int],
    registry: IndexRegistry,
) -> None:
    """Assign added or moved customers in every layer kept assigned (``before_customers``)."""
    for layer_id, name in held:
        # Pins stay where they are on both paths below, but carry the customer's new value.
        assignments.revalue_pinned(session, layer_id=layer_id, customer_ids=customer_ids)
        if len(customer_ids) < ENGINE_MIN_CUSTOMERS:
            assignments.reassign(session, layer_id=layer_id, customer_ids=customer_ids)
            continue
        ids, lon, lat, value = assignments.customer_table(session, ids=customer_ids)
        free = ~np.isin(ids, assignments.pinned(session, layer_id=layer_id))
        found = registry.refresh(name).index.owners(lon[free], lat[free])
        owned = found.owner >= 0
        assignments.rewrite(
            session,
            layer_id=layer_id,
            cleared=ids[free],
            customer_ids=ids[free][owned],
            territory_ids=found.owner[owned],
            rules=found.rule[owned],
            values=value[free][owned],
        )
