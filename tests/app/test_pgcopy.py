"""Binary COPY through NumPy: what goes in comes back out, checked against PostgreSQL itself."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.orm import Session

from app import pgcopy

FIELDS = (("a", pgcopy.INT4), ("b", pgcopy.INT8), ("x", pgcopy.FLOAT8))


def _raw(session: Session):  # type: ignore[no-untyped-def]
    raw = session.connection().connection.driver_connection
    assert raw is not None
    return raw


def test_rows_written_by_encode_read_back_by_postgres_and_decode(session: Session) -> None:
    raw = _raw(session)
    b = np.array([0, -1, 2**40, -(2**62)], dtype=np.int64)
    x = np.array([0.5, -180.0, 1e-300, np.pi])
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE t (a int4, b int8, x float8, w text) ON COMMIT DROP")
        with cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(pgcopy.HEADER)
            fields = (*FIELDS, ("w", "S4"))
            copy.write(pgcopy.encode(fields, {"a": 7, "b": b, "x": x, "w": b"only"}))
            copy.write(pgcopy.TRAILER)
        cur.execute("SELECT a, b, x, w FROM t ORDER BY x")
        assert cur.fetchall() == sorted(
            [(7, int(v), float(f), "only") for v, f in zip(b, x, strict=True)],
            key=lambda r: r[2],
        )
        out = bytearray()
        with cur.copy("COPY (SELECT a, b, x FROM t) TO STDOUT (FORMAT BINARY)") as copy:
            for chunk in copy:
                out += chunk
    rows = pgcopy.decode(FIELDS, bytes(out))
    assert rows["a"].tolist() == [7] * 4
    assert rows["b"].tolist() == b.tolist()
    assert rows["x"].tolist() == x.tolist()
    session.rollback()


def test_a_null_or_a_stranger_is_refused(session: Session) -> None:
    raw = _raw(session)
    with raw.cursor() as cur:
        out = bytearray()
        with cur.copy(
            "COPY (SELECT 1::int4, NULL::int8, 0.5::float8) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            for chunk in copy:
                out += chunk
    session.rollback()
    with pytest.raises(ValueError, match="a NULL"):
        pgcopy.decode(FIELDS, bytes(out))
    with pytest.raises(ValueError, match="not a PostgreSQL binary COPY"):
        pgcopy.decode(FIELDS, b"1,2,3\n")
    with pytest.raises(ValueError, match="differ in length"):
        pgcopy.encode(FIELDS, {"a": [1, 2], "b": [1], "x": 0.0})
