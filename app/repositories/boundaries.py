"""SQL of the reference boundaries and the ready-made "states" and "counties" layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.models import Boundary, Territory
from app.repositories import layers

INSERT_CHUNK = 200  # boundaries per statement: a county is ~1 kB of WKB

_LAYER_FROM_BOUNDARIES = """
INSERT INTO territories (layer_id, name, kind, code, properties, geom)
SELECT :layer_id, b.name, b.level, b.fips,
       jsonb_build_object('fips', b.fips, 'state_fips', b.state_fips, 'state_code', b.state_code),
       b.geom
FROM boundaries b
WHERE b.level = :level
ORDER BY b.fips
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


def build_layer(session: Session, *, name: str, level: str, title: str) -> int:
    """(Re)build a layer with one territory per boundary of ``level``; returns how many."""
    layer = layers.ensure(
        session, name=name, title=title, description=f"One territory per US {level}."
    )
    session.execute(
        delete(Territory).where(Territory.layer_id == layer.id, Territory.kind == level)
    )
    result = session.execute(text(_LAYER_FROM_BOUNDARIES), {"layer_id": layer.id, "level": level})
    layers.touch(session, layer_id=layer.id)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def layer_count(session: Session, *, name: str, level: str) -> int:
    """How many ``level`` territories the layer called ``name`` holds (0 if it does not exist)."""
    stmt = text(
        "SELECT count(*) FROM territories t JOIN layers l ON l.id = t.layer_id "
        "WHERE l.name = :name AND t.kind = :level"
    )
    return int(session.scalar(stmt, {"name": name, "level": level}) or 0)
