"""SQL of ownership: the layer's territories as engine input, and the rule in plain PostGIS."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import pgcopy
from app.models import assignment_partition
from spatial.index import RULES

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


_POINT_FIELDS = (
    ("id", pgcopy.INT8),
    ("x", pgcopy.FLOAT8),
    ("y", pgcopy.FLOAT8),
    ("v", pgcopy.FLOAT8),
)


def customer_points(
    session: Session, *, ids: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Id and lon/lat (degrees) of every customer, or of those ``ids``, ordered by id."""
    found, lon, lat, _ = customer_table(session, ids=ids)
    return found, lon, lat


def customer_table(
    session: Session, *, ids: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Id, lon/lat (degrees) and value of every customer, or of those ``ids``, ordered by id."""
    query = "SELECT id, ST_X(geom), ST_Y(geom), value::float8 FROM customers"
    params: tuple[list[int], ...] = ()
    if ids is not None:
        query += " WHERE id = ANY(%s)"
        params = (ids,)
    return _point_table(session, query, params)


def _point_table(
    session: Session, query: str, params: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Id, lon, lat and value of the customers ``query`` selects (those four), ordered by id."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    # Binary COPY into one NumPy record array: a million rows as SQLAlchemy Row objects took
    # 19 s, as the driver's tuples ~1.5 s, as one buffer a fraction (bench/RESULTS.md).
    buffer = bytearray()
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy,
    ):
        for chunk in copy:
            buffer += chunk
    rows = pgcopy.decode(_POINT_FIELDS, buffer)
    # By id: callers line the points up with other id-ordered results (an ORDER BY in the
    # query costs the server a sort; storage order is nearly id order, so this one is cheap).
    rows = rows[np.argsort(rows["id"], kind="stable")]
    return (
        rows["id"].astype(np.int64),
        rows["x"].astype(np.float64),
        rows["y"].astype(np.float64),
        rows["v"].astype(np.float64),
    )


def pinned(session: Session, *, layer_id: int) -> np.ndarray:
    """Ids of the customers pinned to a territory of the layer (a pin wins over geography)."""
    ids = session.scalars(
        text("SELECT customer_id FROM assignments WHERE layer_id = :l AND pinned ORDER BY 1"),
        {"l": layer_id},
    ).all()
    return np.array(ids, dtype=np.int64)


def lock_for_bulk(session: Session, *, layer_id: int) -> None:
    """Hold off, until commit, every write a bulk assignment of the layer must not race.

    The layer's row: territory edits and pins of the layer take it first, so none lands in the
    partition being replaced. The customers table (SHARE ROW EXCLUSIVE: reads go on): no
    customer is added or moved between reading them all and the swap. Writers take the locks
    in the same order (layer row, customers, territories, assignments), so none deadlocks.
    """
    session.execute(text("SELECT 1 FROM layers WHERE id = :l FOR NO KEY UPDATE"), {"l": layer_id})
    session.execute(text("LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE"))


SWAP_LOCK_TIMEOUT_MS = 5_000  # longest wait for the locks of a partition swap


def replace(
    session: Session,
    *,
    layer_id: int,
    customer_ids: np.ndarray,
    territory_ids: np.ndarray,
    rules: np.ndarray,
    values: np.ndarray,
) -> None:
    """Replace the layer's geographic assignments (pins stay) in the session's transaction.

    ``rules`` holds indexes into ``spatial.index.RULES``, ``values`` the customers' values.
    The rows go into a fresh, bare table
    (binary COPY, no index, no key checked row by row), which then replaces the layer's
    partition: each key is checked with one join (the territories' before the swap, the
    customers' by the attach), and attaching builds its indexes.
    Call ``lock_for_bulk`` first.
    """
    _bump(session, layer_id)
    part = assignment_partition(layer_id)
    fresh = f"{part}_next"
    session.execute(
        text(
            f"CREATE TABLE {fresh} (LIKE assignments INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
            f"CONSTRAINT {part}_layer CHECK (layer_id = {int(layer_id)}))"
        )
    )
    session.execute(text(f"INSERT INTO {fresh} SELECT * FROM {part} WHERE pinned"))
    _copy_assignments(
        session, table=fresh, layer_id=layer_id, customer_ids=customer_ids,
        territory_ids=territory_ids, rules=rules, values=values,
    )  # fmt: skip
    # The swap: readers of assignments wait from here to the commit (indexes + key checks).
    # A transaction left open on assignments would hold it up, and every reader queued behind
    # it: give up after a few seconds instead (a 503 the client can retry).
    session.execute(text(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT_MS}ms'"))
    session.execute(text("LOCK TABLE territories IN SHARE ROW EXCLUSIVE MODE"))
    # Every row's territory in its layer (migration 0011: attaching fires no trigger).
    session.execute(text(f"SELECT assignments_check_territories('{fresh}'::regclass)"))
    session.execute(text(f"DROP TABLE {part}"))
    session.execute(text(f"ALTER TABLE {fresh} RENAME TO {part}"))
    session.execute(
        text(f"ALTER TABLE assignments ATTACH PARTITION {part} FOR VALUES IN ({int(layer_id)})")
    )


def rewrite(
    session: Session,
    *,
    layer_id: int,
    cleared: np.ndarray,
    customer_ids: np.ndarray,
    territory_ids: np.ndarray,
    rules: np.ndarray,
    values: np.ndarray,
) -> None:
    """Drop the layer's geographic rows of ``cleared`` customers and write the new ones.

    For a batch of customers, not a whole layer: the rows go in place (binary COPY), their
    keys checked row by row. ``rules`` holds indexes into ``spatial.index.RULES``.
    """
    _bump(session, layer_id)
    session.execute(text(_CLEAR), {"layer_id": layer_id, "ids": cleared.astype(np.int64).tolist()})
    _copy_assignments(
        session, table="assignments", layer_id=layer_id, customer_ids=customer_ids,
        territory_ids=territory_ids, rules=rules, values=values,
    )  # fmt: skip


_ASSIGNMENT_FIELDS = (("layer_id", pgcopy.INT4), ("customer_id", pgcopy.INT8),
                      ("territory_id", pgcopy.INT8), ("value", pgcopy.FLOAT8))  # fmt: skip


def _copy_assignments(
    session: Session,
    *,
    table: str,
    layer_id: int,
    customer_ids: np.ndarray,
    territory_ids: np.ndarray,
    rules: np.ndarray,
    values: np.ndarray,
) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cur,
        cur.copy(
            f"COPY {table} (layer_id, customer_id, territory_id, value, rule) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(pgcopy.HEADER)
        # The rule is text, so rows differ in width by rule: one fixed-width batch per rule.
        for code in np.unique(rules).tolist():
            word = RULES[code].encode()
            chosen = rules == code
            fields = (*_ASSIGNMENT_FIELDS, ("rule", f"S{len(word)}"))
            columns = {
                "layer_id": layer_id,
                "customer_id": customer_ids[chosen],
                "territory_id": territory_ids[chosen],
                "value": values[chosen],
                "rule": word,
            }
            copy.write(pgcopy.encode(fields, columns))
        copy.write(pgcopy.TRAILER)


def counts(session: Session, *, layer_id: int) -> dict[str, int]:
    """How many of the layer's assignments each rule decided."""
    rows = session.execute(
        text("SELECT rule, count(*) FROM assignments WHERE layer_id = :l GROUP BY rule"),
        {"l": layer_id},
    ).all()
    return {rule: int(n) for rule, n in rows}


_PIN = """
INSERT INTO assignments (layer_id, customer_id, territory_id, rule, pinned, value)
SELECT :layer_id, c.id, :territory_id, 'pinned', true, c.value FROM customers c
WHERE c.id = :customer_id
ON CONFLICT (layer_id, customer_id) DO UPDATE
SET territory_id = EXCLUDED.territory_id, rule = 'pinned', pinned = true,
    assigned_at = now(), value = EXCLUDED.value
"""


def pin(session: Session, *, layer_id: int, customer_id: int, territory_id: int) -> None:
    """Pin a customer to a territory of the layer: the pin wins over geography."""
    _bump(session, layer_id)
    session.execute(
        text(_PIN),
        {"layer_id": layer_id, "customer_id": customer_id, "territory_id": territory_id},
    )


def unpin(session: Session, *, layer_id: int, customer_id: int) -> bool:
    """Remove a pin; False if the customer was not pinned in the layer."""
    _bump(session, layer_id)
    result = session.execute(
        text(
            "DELETE FROM assignments WHERE layer_id = :l AND customer_id = :c AND pinned "
            "RETURNING 1"
        ),
        {"l": layer_id, "c": customer_id},
    )
    return result.first() is not None


def pins_of(session: Session, *, customer_id: int) -> dict[int, int]:
    """The customer's pins: layer id -> territory id."""
    rows = session.execute(
        text("SELECT layer_id, territory_id FROM assignments WHERE customer_id = :c AND pinned"),
        {"c": customer_id},
    ).all()
    return {int(r.layer_id): int(r.territory_id) for r in rows}


# Re-assignment of a few customers, in SQL where the data is: the same rule as the engine
# (checked against it by the oracle tests), the deciding rule read off the two best. Only the
# rows that change are written: an edit of a region re-examines ~15,000 customers, and deleting
# and inserting them all (foreign keys checked row by row) took 0.6 s of its 0.8 s, while a new
# priority moves a few hundred. The territory is the outer side of the join: each polygon is
# then tested against the customers in its box one after another (PostGIS keeps it prepared),
# 1.5x as fast as asking every territory about each customer in turn.
_CLEAR = """
DELETE FROM assignments
WHERE layer_id = :layer_id AND NOT pinned AND customer_id = ANY(CAST(:ids AS bigint[]))
"""
_REASSIGN = """
WITH covering AS (
    SELECT c.id AS customer_id, min(c.value)::float8 AS value,
           array_agg(t.id ORDER BY t.priority, t.area_m2, t.id) AS ids,
           array_agg(t.priority ORDER BY t.priority, t.area_m2, t.id) AS prio,
           array_agg(t.area_m2 ORDER BY t.priority, t.area_m2, t.id) AS area,
           count(*) AS n
    FROM territories t
    JOIN customers c ON ST_Covers(t.geom, c.geom)
    WHERE t.layer_id = :layer_id AND c.id = ANY(CAST(:ids AS bigint[]))
    GROUP BY c.id
),
fresh AS (
    SELECT customer_id, ids[1] AS territory_id, value,
           CASE WHEN n = 1 THEN 'only'
                WHEN prio[1] <> prio[2] THEN 'priority'
                WHEN area[1] <> area[2] THEN 'area'
                ELSE 'id' END AS rule
    FROM covering
),
dropped AS (
    DELETE FROM assignments a
    WHERE a.layer_id = :layer_id AND NOT a.pinned
      AND a.customer_id = ANY(CAST(:ids AS bigint[]))
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.customer_id = a.customer_id)
    RETURNING 1
),
changed AS (
    UPDATE assignments a
    SET territory_id = f.territory_id, rule = f.rule, value = f.value, assigned_at = now()
    FROM fresh f
    WHERE a.layer_id = :layer_id AND a.customer_id = f.customer_id AND NOT a.pinned
      AND (a.territory_id, a.rule, a.value) IS DISTINCT FROM (f.territory_id, f.rule, f.value)
    RETURNING 1
),
added AS (
    INSERT INTO assignments (layer_id, customer_id, territory_id, rule, value)
    SELECT :layer_id, f.customer_id, f.territory_id, f.rule, f.value FROM fresh f
    WHERE NOT EXISTS (
        SELECT 1 FROM assignments a WHERE a.layer_id = :layer_id AND a.customer_id = f.customer_id
    )
    ON CONFLICT (layer_id, customer_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM fresh) AS owned,
       (SELECT count(*) FROM dropped) + (SELECT count(*) FROM changed)
       + (SELECT count(*) FROM added) AS written
"""


# A pin keeps its territory whatever the customer's location; its copy of the value follows
# the customer's (the maps and balance sum these copies).
_REVALUE_PINNED = """
WITH changed AS (
    UPDATE assignments a SET value = c.value
    FROM customers c
    WHERE a.layer_id = :layer_id AND a.pinned AND c.id = a.customer_id
      AND a.customer_id = ANY(CAST(:ids AS bigint[])) AND a.value IS DISTINCT FROM c.value
    RETURNING 1
)
SELECT count(*) FROM changed
"""


def revalue_pinned(session: Session, *, layer_id: int, customer_ids: list[int]) -> int:
    """Copy these customers' values to their pins in the layer; returns how many changed."""
    if not customer_ids:
        return 0
    params = {"layer_id": layer_id, "ids": customer_ids}
    changed = session.execute(text(_REVALUE_PINNED), params).scalar_one()
    if changed:
        _bump(session, layer_id)
    return int(changed)


def reassign(session: Session, *, layer_id: int, customer_ids: list[int]) -> int:
    """Re-assign these customers in the layer (pins stay); returns how many got an owner."""
    if not customer_ids:
        return 0
    params = {"layer_id": layer_id, "ids": customer_ids}
    found = session.execute(text(_REASSIGN), params).one()
    if found.written:
        _bump(session, layer_id)  # nothing written, nothing to revalidate: the ETags stay
    return int(found.owned)


# The engine's owners of some customers applied in one statement, server side: only the rows
# that change are written (a region's new priority moves a few thousand of its ~15,000
# customers). Fetching their ~15,000 current rows to compare them in Python took 60-180 ms.
_WRITE_OWNERS = """
WITH given AS (
    SELECT u.customer_id, u.territory_id, (CAST(:words AS text[]))[u.code + 1] AS rule
    FROM unnest(CAST(:ids AS bigint[]), CAST(:territories AS bigint[]), CAST(:codes AS int2[]))
         AS u(customer_id, territory_id, code)
),
gone AS (
    DELETE FROM assignments a USING given g
    WHERE a.layer_id = :layer_id AND a.customer_id = g.customer_id AND g.territory_id < 0
      AND NOT a.pinned
    RETURNING 1
),
changed AS (
    UPDATE assignments a SET territory_id = g.territory_id, rule = g.rule, assigned_at = now()
    FROM given g
    WHERE a.layer_id = :layer_id AND a.customer_id = g.customer_id AND g.territory_id >= 0
      AND NOT a.pinned AND (a.territory_id, a.rule) IS DISTINCT FROM (g.territory_id, g.rule)
    RETURNING 1
),
added AS (
    INSERT INTO assignments (layer_id, customer_id, territory_id, rule, value)
    SELECT :layer_id, g.customer_id, g.territory_id, g.rule, c.value
    FROM given g JOIN customers c ON c.id = g.customer_id
    WHERE g.territory_id >= 0 AND NOT EXISTS (
        SELECT 1 FROM assignments a WHERE a.layer_id = :layer_id AND a.customer_id = g.customer_id
    )
    ON CONFLICT (layer_id, customer_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM changed)
       + (SELECT count(*) FROM added)
"""


def write_owners(
    session: Session,
    *,
    layer_id: int,
    customer_ids: np.ndarray,
    territory_ids: np.ndarray,
    rules: np.ndarray,
) -> int:
    """Store these customers' owners in the layer (-1: none; pins stay), writing only the rows
    that change; ``rules`` index ``spatial.index.RULES``. Returns how many rows were written."""
    if not customer_ids.size:
        return 0
    params = {
        "layer_id": layer_id,
        "ids": _literal(customer_ids),
        "territories": _literal(territory_ids),
        "codes": _literal(rules),
        "words": "{" + ",".join(RULES) + "}",
    }
    written = int(session.execute(text(_WRITE_OWNERS), params).scalar_one())
    if written:
        _bump(session, layer_id)  # nothing written: the assignments' version (ETags) stays
    return written


def _literal(values: np.ndarray) -> str:
    """A PostgreSQL array literal of integers: one string, not a list of 15,000 to adapt."""
    return "{" + ",".join(map(str, values.astype(np.int64).tolist())) + "}"


_POINTS_NEAR = """
WITH shapes AS (
    SELECT ST_GeomFromWKB(w, 4326) AS geom FROM unnest(%s::bytea[]) AS w
    UNION ALL
    SELECT geom FROM territories WHERE id = ANY(%s::bigint[])
)
SELECT DISTINCT c.id, ST_X(c.geom), ST_Y(c.geom), c.value::float8
FROM shapes s JOIN customers c ON ST_Intersects(c.geom, s.geom)
"""


def points_near(
    session: Session, *, old_shapes: list[bytes], territory_ids: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Id and lon/lat (by id) of the customers inside any of some old shapes (WKB) or any of
    some territories as stored now: those changes to them affect. GiST-filtered, shape by
    shape (a customer in several appears once)."""
    ids, lon, lat, _ = _point_table(session, _POINTS_NEAR, (old_shapes, territory_ids))
    return ids, lon, lat


def ranked_shape(
    session: Session, *, territory_id: int
) -> tuple[bytes | None, int | None, float | None]:
    """A territory's shape (WKB), priority and area (m²): what its ownership depends on."""
    row = session.execute(
        text("SELECT ST_AsBinary(geom) AS wkb, priority, area_m2 FROM territories WHERE id = :id"),
        {"id": territory_id},
    ).first()
    if row is None:
        return None, None, None
    return bytes(row.wkb), int(row.priority), float(row.area_m2)


def assigned_layers(session: Session, *, lock: bool = False) -> list[tuple[int, str]]:
    """(id, name) of the layers kept assigned (bulk-assigned at least once), by id.

    ``lock`` holds their rows shared until commit: edits and bulk runs of them wait.
    """
    query = "SELECT id, name FROM layers WHERE assigned_at IS NOT NULL ORDER BY id"
    rows = session.execute(text(query + (" FOR SHARE" if lock else ""))).all()
    return [(int(r.id), str(r.name)) for r in rows]


_BUMP = """
INSERT INTO assignment_versions AS v (layer_id, version) VALUES (:l, 1)
ON CONFLICT (layer_id) DO UPDATE SET version = v.version + 1
"""


def _bump(session: Session, layer_id: int) -> None:
    """Move the layer's assignment version: every write of its assignments calls this."""
    session.execute(text(_BUMP), {"l": layer_id})


def version(session: Session, *, layer_id: int) -> int:
    """The layer's assignment version (0: never written); it moves with every write."""
    found = session.scalar(
        text("SELECT version FROM assignment_versions WHERE layer_id = :l"), {"l": layer_id}
    )
    return int(found or 0)


def mark_assigned(session: Session, *, layer_id: int) -> None:
    """Record that the layer is assigned: edits keep it current from now on."""
    session.execute(text("UPDATE layers SET assigned_at = now() WHERE id = :l"), {"l": layer_id})
