"""SQL of the layer aggregate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import ConflictError, NotFoundError, unknown_layer
from app.models import Layer, Territory
from app.repositories import keys


def get_by_name(session: Session, *, name: str, for_change: bool = False) -> Layer:
    """The layer called ``name``; NotFoundError if there is none.

    ``for_change`` locks the layer's row until commit: every write to a layer's territories,
    pins or assignments takes it first, so writes to one layer queue up, never deadlock.
    """
    stmt = select(Layer).where(Layer.name == name)
    if for_change:
        stmt = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE: inserts may still refer
    layer = session.scalar(stmt)
    if layer is None:
        raise unknown_layer(name)
    return layer


def create(session: Session, *, name: str, title: str | None, description: str | None) -> Layer:
    """Create a layer; ConflictError if the name is taken."""
    # The insert's trigger makes the layer's partition of assignments: it locks assignments,
    # then its foreign keys want customers and territories. A bulk assignment holds those two
    # and then reads assignments (lock_for_bulk): take them first, in the writers' order, or
    # the two deadlock (PostgreSQL kills one after a second: a 503).
    session.execute(text("LOCK TABLE customers, territories IN SHARE ROW EXCLUSIVE MODE"))
    layer = Layer(name=name, title=title, description=description)
    session.add(layer)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"layer '{name}' already exists", field="name") from exc
    session.refresh(layer)  # a trigger gave it its partition of assignments (migration 0007)
    return layer


def ensure(session: Session, *, name: str, title: str | None, description: str | None) -> Layer:
    """The layer called ``name``, created if missing."""
    layer = session.scalar(select(Layer).where(Layer.name == name))
    return layer or create(session, name=name, title=title, description=description)


def summaries(session: Session, *, name: str | None = None) -> list[dict[str, Any]]:
    """Layers with their territory count and bbox (degrees), optionally only one."""
    extent = func.ST_Extent(Territory.geom)
    stmt = (
        select(
            Layer,
            func.count(Territory.id).label("territory_count"),
            func.ST_XMin(extent).label("xmin"),
            func.ST_YMin(extent).label("ymin"),
            func.ST_XMax(extent).label("xmax"),
            func.ST_YMax(extent).label("ymax"),
        )
        .outerjoin(Territory, Territory.layer_id == Layer.id)
        .group_by(Layer.id)
        .order_by(Layer.name)
    )
    if name is not None:
        stmt = stmt.where(Layer.name == name)
    rows = session.execute(stmt).all()
    if name is not None and not rows:
        get_by_name(session, name=name)  # raises the 404
    return [
        {
            "layer": row.Layer,
            "territory_count": row.territory_count,
            "bbox": None if row.xmin is None else [row.xmin, row.ymin, row.xmax, row.ymax],
        }
        for row in rows
    ]


def remove(session: Session, *, name: str) -> None:
    """Delete a layer with its territories and assignments."""
    layer = get_by_name(session, name=name)
    # A trigger drops its partition of assignments first (migration 0007).
    session.execute(delete(Layer).where(Layer.id == layer.id))
    keys.drop_layer(session, name=name)
    notify(session, name=name)


CHANGES_CHANNEL = "territory_changes"  # NOTIFY channel: payload = the changed layer's name


def touch(session: Session, *, layer: Layer) -> None:
    """Mark the layer changed: its updated_at moves, and every worker hears of it on commit.

    updated_at is the index version workers compare. It is the clock at this update, taken
    under the layer's row lock, not the transaction's start (``now()``): a change that began
    earlier but committed later would otherwise carry an older version and be skipped.
    """
    session.execute(
        update(Layer).where(Layer.id == layer.id).values(updated_at=func.clock_timestamp())
    )
    notify(session, name=layer.name)


def version_of(session: Session, *, layer_id: int) -> datetime:
    """The layer's ``updated_at`` as this session sees it now (after its own ``touch``)."""
    found = session.scalar(select(Layer.updated_at).where(Layer.id == layer_id))
    if found is None:
        raise NotFoundError(f"layer {layer_id} does not exist", field="layer")
    return found


def notify(session: Session, *, name: str) -> None:
    """Tell every listening worker that the layer changed (NOTIFY is sent only on commit)."""
    session.execute(select(func.pg_notify(CHANGES_CHANNEL, name)))


def all_layers(session: Session) -> list[Layer]:
    """Every layer, by name."""
    return list(session.scalars(select(Layer).order_by(Layer.name)))
