"""SQL of white space: market shapes from the reference boundaries, counties, customers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import pgcopy
from app.repositories.territories import resolve_parts

_STATES = "SELECT ST_AsBinary(geom) FROM boundaries WHERE level = 'state' ORDER BY fips"
_BOUNDARIES = (
    "SELECT ST_AsBinary(geom) FROM boundaries "
    "WHERE level = :level AND fips = ANY(:fips) ORDER BY fips"
)
_COUNTIES = (
    "SELECT fips, name, state_code, ST_AsBinary(geom) AS wkb "
    "FROM boundaries WHERE level = 'county' ORDER BY fips"
)
_CUSTOMER_FIELDS = (("x", pgcopy.FLOAT8), ("y", pgcopy.FLOAT8), ("value", pgcopy.FLOAT8))


def nation_wkb(session: Session) -> list[bytes]:
    """WKB of every state (and territory) in the reference boundaries."""
    return [bytes(w) for w in session.scalars(text(_STATES))]


def market_wkb(session: Session, *, states: list[str], counties: list[str]) -> list[bytes]:
    """WKB of the named states and counties; InputError naming every unknown code."""
    parts = resolve_parts(session, counties=counties, states=states)
    out: list[bytes] = []
    for level, fips in (("state", parts["states"]), ("county", parts["counties"])):
        if fips:
            rows = session.scalars(text(_BOUNDARIES), {"level": level, "fips": fips})
            out.extend(bytes(w) for w in rows)
    return out


def counties(session: Session) -> dict[str, Any]:
    """Every reference county: fips, name, state_code, WKB (lists in fips order)."""
    rows = session.execute(text(_COUNTIES)).all()
    return {
        "fips": [r.fips for r in rows],
        "name": [r.name for r in rows],
        "state_code": [r.state_code for r in rows],
        "wkb": [bytes(r.wkb) for r in rows],
    }


def customers_top_id(session: Session) -> int:
    """The largest customer id (0: none): one probe of the primary key, a new customer shows."""
    return int(session.scalar(text("SELECT coalesce(max(id), 0) FROM customers")) or 0)


def customers_version(session: Session) -> tuple[int, int, datetime | None]:
    """How many customers, the largest id and the latest write (reads the whole table)."""
    row = session.execute(
        text("SELECT count(*) AS n, max(id) AS top, max(updated_at) AS at FROM customers")
    ).one()
    return int(row.n), int(row.top or 0), row.at


def reference_version(session: Session) -> tuple[int, int]:
    """A version of the reference boundaries: their count and the sum of their rows' xmin.

    A reload (``territory boundaries load`` upserts every row) gives every row a new
    transaction id, a removal changes the count: either moves this. Reads no geometry (TOAST).
    """
    row = session.execute(
        text("SELECT count(*) AS n, coalesce(sum(xmin::text::bigint), 0) AS xs FROM boundaries")
    ).one()
    return int(row.n), int(row.xs)


# Customers a layer kept assigned may leave uncovered: those with no assignment in it (no
# territory covered them when they were assigned) and the pinned ones (a pin may lie outside
# every territory). The rest are covered by the territory they are assigned to.
_CANDIDATES = """
SELECT ST_X(c.geom), ST_Y(c.geom), c.value::float8 FROM customers c
WHERE NOT EXISTS (SELECT 1 FROM assignments a
                  WHERE a.layer_id = %s AND a.customer_id = c.id AND NOT a.pinned)
"""


def customer_values(
    session: Session, *, uncovered_in: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lon, lat (degrees) and value of every customer, as float64 arrays.

    ``uncovered_in``: a layer kept assigned (``layers.assigned_at`` set); only the customers
    that may be uncovered in it are read (no assignment there, or pinned).
    """
    raw = session.connection().connection.driver_connection
    assert raw is not None
    query = "SELECT ST_X(geom), ST_Y(geom), value::float8 FROM customers"
    params: tuple[int, ...] = ()
    if uncovered_in is not None:
        # COPY takes no server-side parameters: psycopg binds this one on the client, quoted.
        query, params = _CANDIDATES, (uncovered_in,)
        # The anti-join hashes the layer's assignment ids (40 MB for a million). A partition
        # just swapped in by a bulk run has no statistics yet: planned for a few thousand
        # rows, the hash spilled to disk in 8 batches (1.0 s for a million, 0.5 s in memory).
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    buffer = bytearray()
    # Binary COPY into one record array, as assignments.customer_points does (fast for 1M).
    with raw.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:
        for chunk in copy:
            buffer += chunk
    rows = pgcopy.decode(_CUSTOMER_FIELDS, buffer)
    return (
        rows["x"].astype(np.float64),
        rows["y"].astype(np.float64),
        rows["value"].astype(np.float64),
    )
