"""SQL of the reference boundaries and the ready-made "states" and "counties" layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.models import Boundary
from app.repositories import layers

INSERT_CHUNK = 200  # boundaries per statement: a county is ~1 kB of WKB

# Only boundaries the layer lacks: a territory keeps its id (and its owner, its assignments)
# across reloads, and one reshaped by a user (kind custom, code kept) is not added twice.
_ADD_MISSING = """
INSERT INTO territories (layer_id, name, kind, code, properties, geom)
SELECT :layer_id, b.name, b.level, b.fips,
       jsonb_build_object('fips', b.fips, 'state_fips', b.state_fips, 'state_code', b.state_code),
       b.geom
FROM boundaries b
WHERE b.level = :level
  AND NOT EXISTS (SELECT 1 FROM territories t WHERE t.layer_id = :layer_id AND t.code = b.fips)
ORDER BY b.fips
"""
# A forced reload resets the shape and name of the territories still as loaded (same kind).
_RESET_LOADED = """
UPDATE territories t SET geom = b.geom, name = b.name, updated_at = now()
FROM boundaries b
WHERE t.layer_id = :layer_id AND t.kind = :level AND t.code = b.fips
"""
_LOADED_CODES = """
SELECT count(DISTINCT t.code) FROM territories t
JOIN layers l ON l.id = t.layer_id
JOIN boundaries b ON b.fips = t.code AND b.level = :level
WHERE l.name = :name
"""


def upsert(
    session: Session,
    *,
    rows: Sequence[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Insert or replace boundaries; each row has fips, level, name, state_fips, state_code, wkb."""
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        values = [
            {k: r[k] for k in ("fips", "level", "name", "state_fips", "state_code")}
            | {"geom": func.ST_GeomFromWKB(r["wkb"], 4326)}
            for r in chunk
        ]
        stmt = insert(Boundary).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Boundary.fips],
            set_={
                c: stmt.excluded[c] for c in ("level", "name", "state_fips", "state_code", "geom")
            },
        )
        session.execute(stmt)
        if progress:
            progress(len(chunk))


def counts(session: Session) -> dict[str, int]:
    """How many boundaries of each level are stored."""
    rows = session.execute(select(Boundary.level, func.count()).group_by(Boundary.level)).all()
    return {level: int(n) for level, n in rows}


def build_layer(session: Session, *, name: str, level: str, title: str, reset: bool) -> int:
    """Give a layer one territory per boundary of ``level``; returns how many it added/reset.

    Territories already there keep their ids; ``reset`` puts back the reference shape and
    name of those still of kind ``level`` (a user's reshaped ones are left alone).
    """
    layer = layers.ensure(
        session, name=name, title=title, description=f"One territory per US {level}."
    )
    layers.get_by_name(session, name=name, for_change=True)  # writes to a layer queue up
    params = {"layer_id": layer.id, "level": level}
    changed = 0
    if reset:
        changed += session.execute(text(_RESET_LOADED), params).rowcount  # type: ignore[attr-defined]
    changed += session.execute(text(_ADD_MISSING), params).rowcount  # type: ignore[attr-defined]
    if changed:
        layers.touch(session, layer=layer)
    return int(changed)


def layer_count(session: Session, *, name: str, level: str) -> int:
    """How many ``level`` boundaries the layer ``name`` has a territory for (0: no layer)."""
    return int(session.scalar(text(_LOADED_CODES), {"name": name, "level": level}) or 0)
