"""SQL of files in and out: a layer's territories and assignments read whole, a layer emptied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_TERRITORIES = """
SELECT id, name, kind, code, owner, priority, exclusive, properties, area_m2,
       ST_AsBinary(geom) AS wkb
FROM territories WHERE layer_id = :l ORDER BY id
"""
# %s: psycopg binds it client-side (COPY takes no server-side parameters).
_ASSIGNMENTS = """
SELECT a.customer_id, c.external_id, c.name AS customer_name, a.territory_id,
       t.name AS territory_name, t.owner, a.rule, a.pinned, a.value,
       ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
FROM assignments a
JOIN customers c ON c.id = a.customer_id
JOIN territories t ON t.id = a.territory_id
WHERE a.layer_id = %s
ORDER BY a.customer_id
"""
ASSIGNMENT_TYPES = {
    "customer_id": "int64",
    "external_id": "string",
    "customer_name": "string",
    "territory_id": "int64",
    "territory_name": "string",
    "owner": "string",
    "rule": "string",
    "pinned": "bool",
    "value": "float64",
    "lon": "float64",
    "lat": "float64",
}


def territory_rows(session: Session, *, layer_id: int) -> list[Any]:
    """The layer's territories by id: fields, properties, area (m²) and WKB geometry."""
    return list(session.execute(text(_TERRITORIES), {"l": layer_id}).all())


def count(session: Session, *, layer_id: int, what: str) -> int:
    """How many territories (``what="territories"``) or assignments the layer has."""
    table = "assignments" if what == "assignments" else "territories"
    query = text(f"SELECT count(*) FROM {table} WHERE layer_id = :l")  # table: one of two names
    return int(session.scalar(query, {"l": layer_id}) or 0)


def assignment_table(
    session: Session, *, layer_id: int, progress: Callable[[int], None] | None = None
) -> Any:
    """The layer's assignments with their customers and territories, as a pandas DataFrame.

    Read as CSV through COPY and parsed by pyarrow: a million rows as SQLAlchemy rows would
    take many seconds. ``progress`` hears of the rows as they arrive.
    """
    import pyarrow as pa  # noqa: PLC0415  (heavy: only exports need it)
    from pyarrow import csv  # noqa: PLC0415

    raw = session.connection().connection.driver_connection
    assert raw is not None
    buffer = bytearray()
    header = 1  # the first line names the columns
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY ({_ASSIGNMENTS}) TO STDOUT (FORMAT csv, HEADER true)", (layer_id,)) as copy,
    ):
        for chunk in copy:
            buffer += chunk
            if progress is not None:
                progress(bytes(chunk).count(b"\n") - header)
                header = 0
    arrow_types = {
        "int64": pa.int64(),
        "string": pa.string(),
        "bool": pa.bool_(),
        "float64": pa.float64(),
    }
    options = csv.ConvertOptions(
        column_types={name: arrow_types[kind] for name, kind in ASSIGNMENT_TYPES.items()},
        true_values=["t"],
        false_values=["f"],
        strings_can_be_null=True,  # NULL is an empty unquoted cell; "" is a quoted empty one
        quoted_strings_can_be_null=False,
    )
    table = csv.read_csv(pa.py_buffer(bytes(buffer)), convert_options=options)
    return table.to_pandas()


def clear_territories(session: Session, *, layer_id: int) -> int:
    """Delete every territory of the layer (their assignments and pins go with them)."""
    result = session.execute(text("DELETE FROM territories WHERE layer_id = :l"), {"l": layer_id})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
