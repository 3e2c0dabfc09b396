"""Store benchmark: our customer paths against the usual alternatives, side by side, one run.

Runs against a scratch database (``territory_bench`` on the embedded cluster, dropped and
re-created at the start and dropped at the end; or ``--database-url``) and measures:

1. demo generation (``app.demo.generate``);
2. loading N customers into an empty table: ours (``customers.upsert``: COPY + merge),
   ``GeoDataFrame.to_postgis`` (as geopandas does it, and with the GiST index built afterwards)
   and a plain SQLAlchemy/psycopg ``executemany`` INSERT;
3. re-importing the same N customers (ours: the ON CONFLICT DO UPDATE branch);
4. parsing a CSV of N customers: ``batch_from_file`` against GDAL (geopandas / pyogrio);
5. reading ``GET /customers?limit=1000&bbox=...`` through the app against the same SQL.

Every contender gets the same customers; warm-up runs are not counted; every load is checked
(row count, sum of values, GiST index) and a failed check stops the run. See bench/README.md.

    .venv/bin/python -m bench.bench_store --customers 1000000
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import geopandas
import numpy as np
import orjson
import pyogrio
import sqlalchemy
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, Numeric, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app import demo, embedded
from app.customer_files import CustomerBatch, batch_from_file
from app.db import make_engine, migrate, resolve_database_url
from app.factory import create_app
from app.repositories import customers as customers_repo
from app.settings import DatabaseSettings, EmbeddedSettings, Settings
from bench.auth import admin_headers

T = TypeVar("T")

BENCH_DB = "territory_bench"  # never territory (dev server) nor territory_test (tests)
WARMUP_ROWS = 10_000
CHUNK = 50_000  # rows per to_postgis chunk and per executemany call
GPD_TABLE = "bench_geopandas"
GPD_AFTER_TABLE = "bench_geopandas_index_after"
MANY_TABLE = "bench_executemany"
SCRATCH_TABLES = (GPD_TABLE, GPD_AFTER_TABLE, MANY_TABLE)
DEFAULT_BBOX = "-118.70,33.60,-117.60,34.40"  # the Los Angeles basin: dense at 1M customers
READ_LIMIT = 1000
READ_WARMUP = 5
CSV_COLUMNS = ("external_id", "name", "lon", "lat", "value", "zip", "city", "state", "segment")

LOAD = "2. Load N into empty table"
REIMPORT = "3. Re-import N (all updates)"
PARSE = "4. Parse CSV of N"
READ = "5. GET /customers?limit=1000&bbox"

_MANY_DDL = (
    f"CREATE TABLE {MANY_TABLE} (external_id text NOT NULL, name text, "
    "value numeric(18, 2) NOT NULL, attributes jsonb NOT NULL, "
    "geom geometry(Point, 4326) NOT NULL)",
    f"CREATE INDEX idx_{MANY_TABLE}_geom ON {MANY_TABLE} USING gist (geom)",
)
_MANY_INSERT = text(
    f"INSERT INTO {MANY_TABLE} (external_id, name, value, attributes, geom) "
    "VALUES (:external_id, :name, :value, CAST(:attributes AS jsonb), "
    "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
)
# The two statements GET /customers issues (repositories.customers.list_features), by hand.
_PAGE_SQL = (
    "SELECT id, external_id, name, value, attributes, created_at, updated_at, "
    "ST_AsGeoJSON(geom, 7) AS geometry FROM customers "
    "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326)) "
    "ORDER BY id LIMIT %s OFFSET 0"
)
_COUNT_SQL = (
    "SELECT count(*) FROM customers "
    "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
)

console = Console(stderr=True)


class BenchmarkError(RuntimeError):
    """A contender did not do what it was asked (wrong row count, data or index): stop."""


@dataclass
class Row:
    """One line of the results table."""

    section: str
    contender: str
    rows: int
    seconds: float
    ratio: float | None = None  # contender seconds / ours (same section); ours = 1.00
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""


@dataclass
class Bench:
    """What every benchmark needs."""

    engine: Engine
    settings: Settings
    batch: CustomerBatch
    repeat: int
    rows: list[Row] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.batch)


# --- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Seconds of the timed runs of one contender."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def note(self) -> str:
        if len(self.samples) == 1:
            return ""
        low, high = min(self.samples), max(self.samples)
        return f"median of {len(self.samples)} runs ({low:.2f}-{high:.2f} s); "


def measure(
    run: Callable[[], T],
    *,
    prepare: Callable[[], None],
    verify: Callable[[T], None],
    repeat: int,
) -> tuple[Timing, T]:
    """Seconds of ``repeat`` runs of ``run``; prepare and verify are not timed."""
    seconds: list[float] = []
    results: list[T] = []
    for _ in range(repeat):
        prepare()
        gc.collect()
        started = time.perf_counter()
        results.append(run())
        seconds.append(time.perf_counter() - started)
        verify(results[-1])
    return Timing(seconds), results[-1]


def head(batch: CustomerBatch, count: int) -> CustomerBatch:
    """The first ``count`` customers of ``batch``."""
    return CustomerBatch(
        external_id=batch.external_id[:count],
        name=batch.name[:count],
        lon=batch.lon[:count].copy(),
        lat=batch.lat[:count].copy(),
        value=batch.value[:count].copy(),
        attributes=batch.attributes[:count],
    )


def execute(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def scalar(engine: Engine, statement: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(statement)).scalar_one()


def settle(engine: Engine, table: str | None = None) -> None:
    """Untimed, before each timed write: VACUUM ANALYZE the target, flush WAL (CHECKPOINT).

    Without it a contender pays for the previous one's checkpoint or dead rows.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET statement_timeout = 0"))  # maintenance, not a contender
        if table:
            conn.execute(text(f"VACUUM ANALYZE {table}"))
        conn.execute(text("CHECKPOINT"))


def expect_stored(engine: Engine, table: str, rows: int, value_sum: Decimal, who: str) -> None:
    """Fail loudly unless ``table`` holds ``rows`` rows, the same values and a GiST index."""
    with engine.connect() as conn:
        stored, total = conn.execute(text(f"SELECT count(*), sum(value) FROM {table}")).one()
        gist = conn.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = :t AND indexdef ILIKE '%gist%'"
            ),
            {"t": table},
        ).scalar_one()
    if stored != rows:
        raise BenchmarkError(f"{who}: {table} holds {stored} rows, expected {rows}")
    if Decimal(total or 0) != value_sum:
        raise BenchmarkError(f"{who}: {table} sum(value) = {total}, expected {value_sum}")
    if gist != 1:
        raise BenchmarkError(f"{who}: {table} has {gist} GiST indexes, expected 1")


def value_sum(batch: CustomerBatch) -> Decimal:
    """sum(value) a correct load stores (numeric(18, 2))."""
    return sum((Decimal(f"{v:.2f}") for v in batch.value.tolist()), Decimal(0))


# --- 1. demo generation --------------------------------------------------------------------


def bench_generate(count: int, seed: int, repeat: int) -> tuple[CustomerBatch, Row]:
    demo.generate(min(WARMUP_ROWS, count), seed=seed)  # warm-up: imports, ZIP table

    def check(batch: CustomerBatch) -> None:
        if len(batch) != count:
            raise BenchmarkError(f"demo.generate made {len(batch)} customers, expected {count}")

    timing, batch = measure(
        lambda: demo.generate(count, seed=seed), prepare=lambda: None, verify=check, repeat=repeat
    )
    seconds = timing.median
    note = timing.note + "in memory, no database"
    return batch, Row("1. Demo generation", "demo.generate(N)", count, seconds, note=note)


# --- 2a / 3. ours ---------------------------------------------------------------------------


def _upsert(engine: Engine, batch: CustomerBatch) -> tuple[int, int]:
    with Session(engine) as session:
        done = customers_repo.upsert(session, batch=batch)
        session.commit()
    return done.inserted, done.updated


def _warm_upsert(engine: Engine, batch: CustomerBatch) -> None:
    with Session(engine) as session:
        customers_repo.upsert(session, batch=head(batch, min(WARMUP_ROWS, len(batch))))
        session.rollback()


def _truncate_customers(engine: Engine) -> None:
    execute(engine, "TRUNCATE customers RESTART IDENTITY CASCADE")
    settle(engine, "customers")


def _check_upsert(bench: Bench, expected: tuple[int, int], who: str) -> Callable[[Any], None]:
    total = value_sum(bench.batch)

    def check(counts: tuple[int, int]) -> None:
        if counts != expected:
            raise BenchmarkError(f"{who}: upsert returned {counts}, expected {expected}")
        expect_stored(bench.engine, "customers", bench.n, total, who)

    return check


def bench_ours_load(bench: Bench) -> float:
    _truncate_customers(bench.engine)
    _warm_upsert(bench.engine, bench.batch)  # rolled back
    timing, _ = measure(
        lambda: _upsert(bench.engine, bench.batch),
        prepare=lambda: _truncate_customers(bench.engine),
        verify=_check_upsert(bench, (bench.n, 0), "ours (insert)"),
        repeat=bench.repeat,
    )
    seconds = timing.median
    note = (
        timing.note + "one transaction: COPY to temp stage, INSERT ... ON CONFLICT;"
        " maintains GiST + PK(id) + UNIQUE(external_id) during the insert"
    )
    bench.rows.append(Row(LOAD, "ours: customers.upsert", bench.n, seconds, 1.0, note=note))
    return seconds


def bench_ours_reimport(bench: Bench, load_seconds: float) -> None:
    _warm_upsert(bench.engine, bench.batch)  # the update branch, rolled back
    updated_since = scalar(bench.engine, "SELECT max(updated_at) FROM customers")
    timing, _ = measure(
        lambda: _upsert(bench.engine, bench.batch),
        prepare=lambda: settle(bench.engine, "customers"),
        verify=_check_upsert(bench, (0, bench.n), "ours (re-import)"),
        repeat=bench.repeat,
    )
    seconds = timing.median
    stale = scalar(
        bench.engine,
        f"SELECT count(*) FROM customers WHERE updated_at <= '{updated_since.isoformat()}'",
    )
    if stale:
        raise BenchmarkError(f"ours (re-import): {stale} customers were not updated")
    note = (
        timing.note + "ON CONFLICT DO UPDATE for every row; "
        "x ours = this / ours first load; table VACUUM ANALYZEd before (untimed)"
    )
    ratio = seconds / load_seconds
    bench.rows.append(Row(REIMPORT, "ours: customers.upsert", bench.n, seconds, ratio, note=note))


# --- 2b. geopandas to_postgis ---------------------------------------------------------------


def _frame(batch: CustomerBatch) -> geopandas.GeoDataFrame:
    frame = geopandas.GeoDataFrame(
        {
            "external_id": batch.external_id,
            "name": batch.name,
            "value": np.asarray(batch.value),
            "attributes": [orjson.dumps(a).decode() for a in batch.attributes],
        },
        geometry=geopandas.points_from_xy(batch.lon, batch.lat, crs="EPSG:4326"),
    )
    return frame.rename_geometry("geom")


def _dtype() -> dict[str, Any]:
    # A fresh dict each call: to_postgis adds the geometry column's type to it.
    return {"external_id": Text(), "name": Text(), "value": Numeric(18, 2), "attributes": JSONB()}


def _to_postgis(engine: Engine, batch: CustomerBatch, table: str, index_after: bool) -> str:
    """Load ``batch`` with to_postgis; returns where the time went."""
    started = time.perf_counter()
    frame = _frame(batch)
    built = time.perf_counter()
    with engine.begin() as conn:
        if index_after:
            # geoalchemy2 creates the GiST index with the table: create it empty, drop the index.
            frame.head(1).to_postgis(table, conn, if_exists="replace", index=False, dtype=_dtype())
            conn.execute(text(f"TRUNCATE {table}"))
            conn.execute(text(f"DROP INDEX idx_{table}_geom"))
        mode = "append" if index_after else "replace"
        frame.to_postgis(table, conn, if_exists=mode, index=False, chunksize=CHUNK, dtype=_dtype())
        copied = time.perf_counter()
        if index_after:
            conn.execute(text(f"CREATE INDEX idx_{table}_geom ON {table} USING gist (geom)"))
    done = time.perf_counter()
    phases = f"GeoDataFrame build {built - started:.1f} s + to_postgis {copied - built:.1f} s"
    return phases + (f" + GiST build {done - copied:.1f} s" if index_after else "")


def _drop_scratch(engine: Engine, table: str) -> None:
    execute(engine, f"DROP TABLE IF EXISTS {table}")
    settle(engine)


def bench_geopandas(bench: Bench, ours: float, *, index_after: bool) -> None:
    table = GPD_AFTER_TABLE if index_after else GPD_TABLE
    who = f"geopandas to_postgis ({'index after' if index_after else 'default'})"
    _to_postgis(bench.engine, head(bench.batch, WARMUP_ROWS), table, index_after)  # warm-up
    total = value_sum(bench.batch)
    timing, phases = measure(
        lambda: _to_postgis(bench.engine, bench.batch, table, index_after),
        prepare=lambda: _drop_scratch(bench.engine, table),
        verify=lambda _: expect_stored(bench.engine, table, bench.n, total, who),
        repeat=bench.repeat,
    )
    seconds = timing.median
    if index_after:
        contender = "geopandas to_postgis, then CREATE INDEX gist"
        how = "table created empty, its index dropped, COPY, then GiST built (counted)"
    else:
        contender = "geopandas to_postgis (as shipped)"
        how = "geoalchemy2 creates the GiST index with the table: maintained during COPY"
    note = (
        f"{timing.note}{how}; chunksize {CHUNK}; time includes {phases}; "
        "no PK, no UNIQUE(external_id)"
    )
    bench.rows.append(Row(LOAD, contender, bench.n, seconds, seconds / ours, note=note))


# --- 2c. executemany ------------------------------------------------------------------------


def _params(batch: CustomerBatch, start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {
            "external_id": batch.external_id[i],
            "name": batch.name[i],
            "value": round(float(batch.value[i]), 2),
            "attributes": orjson.dumps(batch.attributes[i]).decode(),
            "lon": float(batch.lon[i]),
            "lat": float(batch.lat[i]),
        }
        for i in range(start, stop)
    ]


def _executemany(engine: Engine, batch: CustomerBatch) -> None:
    with engine.begin() as conn:
        for start in range(0, len(batch), CHUNK):
            # text() + a list of parameter sets = DBAPI cursor.executemany (psycopg pipelines it)
            conn.execute(_MANY_INSERT, _params(batch, start, min(start + CHUNK, len(batch))))


def _fresh_many_table(engine: Engine) -> None:
    execute(engine, f"DROP TABLE IF EXISTS {MANY_TABLE}", *_MANY_DDL)
    settle(engine)


def bench_executemany(bench: Bench, ours: float, budget_s: float) -> None:
    warm = head(bench.batch, min(WARMUP_ROWS, bench.n))
    _fresh_many_table(bench.engine)
    started = time.perf_counter()
    _executemany(bench.engine, warm)  # warm-up, and the probe that decides N or N/10
    projected = (time.perf_counter() - started) * bench.n / len(warm)
    sample = bench.batch if projected <= budget_s else head(bench.batch, bench.n // 10)
    total = value_sum(sample)
    timing, _ = measure(
        lambda: _executemany(bench.engine, sample),
        prepare=lambda: _fresh_many_table(bench.engine),
        verify=lambda _: expect_stored(bench.engine, MANY_TABLE, len(sample), total, "executemany"),
        repeat=bench.repeat,
    )
    seconds = timing.median
    note = (
        f"{timing.note}INSERT ... ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) via "
        f"psycopg executemany, {CHUNK} rows a call, one transaction, GiST index present; "
        "no PK, no UNIQUE(external_id)"
    )
    contender = "SQLAlchemy executemany INSERT"
    if len(sample) != bench.n:
        factor = bench.n / len(sample)
        contender += f" (EXTRAPOLATED x{factor:g} from N/10)"
        note = (
            f"MEASURED {seconds:.2f} s for {len(sample)} rows (N/10), scaled x{factor:g} to N "
            f"(warm-up projected {projected:.0f} s > --executemany-budget {budget_s:.0f} s); "
            "GiST inserts get slower as the index grows, so the real N time is likely higher; "
        ) + note
        seconds *= factor
    bench.rows.append(Row(LOAD, contender, bench.n, seconds, seconds / ours, note=note))


# --- 4. parsing a CSV ------------------------------------------------------------------------


def write_csv(batch: CustomerBatch, path: Path) -> None:
    """The batch as a CSV file (untimed); lon/lat/value written exactly (repr)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for i in range(len(batch)):
            attrs = batch.attributes[i]
            writer.writerow(
                (
                    batch.external_id[i],
                    batch.name[i],
                    repr(float(batch.lon[i])),
                    repr(float(batch.lat[i])),
                    f"{batch.value[i]:.2f}",
                    attrs["zip"],
                    attrs["city"],
                    attrs["state"],
                    attrs["segment"],
                )
            )


def _parse_ours(path: Path) -> CustomerBatch:
    return batch_from_file(path.name, path.read_bytes(), "text/csv")


def _parse_gdal(path: Path, use_arrow: bool) -> geopandas.GeoDataFrame:
    options = {"X_POSSIBLE_NAMES": "lon", "Y_POSSIBLE_NAMES": "lat", "KEEP_GEOM_COLUMNS": "NO"}
    if use_arrow:
        frame = pyogrio.read_dataframe(path, use_arrow=True, **options)
    else:
        frame = geopandas.read_file(path, **options)
    return frame.set_crs("EPSG:4326")


def _check_parsed(batch: CustomerBatch, who: str) -> Callable[[Any], None]:
    def check(parsed: Any) -> None:
        if isinstance(parsed, CustomerBatch):
            lon = np.asarray(parsed.lon)
        else:
            lon = parsed.geometry.x.to_numpy()
        if len(parsed) != len(batch) or not np.array_equal(lon, batch.lon):
            raise BenchmarkError(f"{who}: parsed {len(parsed)} rows, or longitudes differ")

    return check


def bench_parse(bench: Bench, workdir: Path) -> None:
    path, warm_path = workdir / "customers.csv", workdir / "warmup.csv"
    write_csv(bench.batch, path)
    write_csv(head(bench.batch, min(WARMUP_ROWS, bench.n)), warm_path)
    size_mb = path.stat().st_size / 2**20
    contenders: list[tuple[str, Callable[[Path], Any], str]] = [
        ("ours: batch_from_file", _parse_ours, "validated columns + string attributes"),
        (
            "geopandas.read_file (pyogrio)",
            lambda p: _parse_gdal(p, use_arrow=False),
            "GDAL CSV driver, X/Y -> points; every field a string, nothing validated",
        ),
        (
            "pyogrio.read_dataframe(use_arrow=True)",
            lambda p: _parse_gdal(p, use_arrow=True),
            "as above, through Arrow",
        ),
    ]
    ours = 0.0
    for name, parse, what in contenders:
        parse(warm_path)  # warm-up
        timing, parsed = measure(
            lambda parse=parse: parse(path),  # type: ignore[misc]
            prepare=lambda: None,
            verify=_check_parsed(bench.batch, name),
            repeat=bench.repeat,
        )
        seconds = timing.median
        del parsed
        ours = ours or seconds
        note = f"{timing.note}{size_mb:.0f} MiB file, file read included; {what}"
        bench.rows.append(Row(PARSE, name, bench.n, seconds, seconds / ours, note=note))


# --- 5. reading --------------------------------------------------------------------------------


def _percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples) * 1000.0, [50, 99])
    return float(p50), float(p99)


def _read_app(settings: Settings, bbox: str, requests: int) -> tuple[list[float], int, int]:
    url = f"/customers?limit={READ_LIMIT}&bbox={bbox}"
    with warnings.catch_warnings():
        # starlette suggests httpx2 for its TestClient; httpx still works (as in pyproject.toml)
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient  # noqa: PLC0415
    samples: list[float] = []
    assert settings.database.url
    headers = admin_headers(settings.database.url)
    with TestClient(create_app(settings), headers=headers) as client:
        for _ in range(READ_WARMUP):
            client.get(url)
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise BenchmarkError(f"GET {url}: {response.status_code} {response.text[:300]}")
        body = response.json()
    return samples, int(body["numberReturned"]), int(body["numberMatched"])


def _read_sql(engine: Engine, box: tuple[float, ...], requests: int, *, count: bool) -> Any:
    samples: list[float] = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for i in range(READ_WARMUP + requests):
            started = time.perf_counter()
            with raw.cursor() as cur:
                features = cur.execute(_PAGE_SQL, (*box, READ_LIMIT)).fetchall()
                matched = cur.execute(_COUNT_SQL, box).fetchone()[0] if count else None
            raw.rollback()  # as the app's session does after each request
            if i >= READ_WARMUP:
                samples.append(time.perf_counter() - started)
    return samples, len(features), matched


def bench_read(bench: Bench, bbox: str, requests: int) -> None:
    settle(bench.engine, "customers")  # after the re-import, as autovacuum would (untimed)
    box = tuple(float(part) for part in bbox.split(","))
    app_samples, returned, matched = _read_app(bench.settings, bbox, requests)
    sql_samples, sql_returned, sql_matched = _read_sql(bench.engine, box, requests, count=True)
    page_samples, _, _ = _read_sql(bench.engine, box, requests, count=False)
    if (returned, matched) != (sql_returned, sql_matched) or returned != min(READ_LIMIT, matched):
        raise BenchmarkError(
            f"GET returned {returned} of {matched}; SQL returned {sql_returned} of {sql_matched}"
        )
    app_p50 = _percentiles(app_samples)[0]
    base = (
        f"Seconds = all {requests} requests (after {READ_WARMUP} warm-up), Rows/s at p50; "
        f"bbox {bbox} matches {matched}; "
    )
    for name, samples, what in (
        ("ours: GET via TestClient(create_app)", app_samples, "routing, session, JSON included"),
        ("SQL: the same page + count queries", sql_samples, "psycopg, rows fetched, no JSON"),
        ("SQL: the page query only (no count)", page_samples, "psycopg, rows fetched, no JSON"),
    ):
        p50, p99 = _percentiles(samples)
        note = base + what + ("" if samples is app_samples else f"; app p50 = {app_p50 / p50:.1f}x")
        bench.rows.append(
            Row(READ, name, returned, sum(samples), p50 / app_p50, p50, p99, note=note)
        )


# --- the report ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _cells(row: Row) -> list[str]:
    return [
        row.section,
        row.contender,
        f"{row.rows:,}",
        _fmt(row.seconds),
        f"{row.rows / (row.seconds if row.p50_ms is None else row.p50_ms / 1000):,.0f}",
        _fmt(row.p50_ms, 1),
        _fmt(row.p99_ms, 1),
        _fmt(row.ratio),
        row.note,
    ]


HEADERS = ("Benchmark", "Contender", "Rows", "Seconds", "Rows/s", "p50 ms", "p99 ms", "x ours")


def rich_table(rows: list[Row], title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for header in (*HEADERS, "Notes"):
        justify = "right" if header in HEADERS[2:] else "left"
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*_cells(row))
    return table


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join((*HEADERS, "Notes")) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADERS) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x {os.cpu_count()}"


def info_line(engine: Engine) -> str:
    with engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar_one()
        postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
    return (
        f"PostgreSQL {server.split()[0]}, PostGIS {postgis}; Python {platform.python_version()}; "
        f"geopandas {geopandas.__version__}, pyogrio {pyogrio.__version__} "
        f"(GDAL {pyogrio.__gdal_version_string__}), SQLAlchemy {sqlalchemy.__version__}; "
        f"CPU {_cpu()}"
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- the run ----------------------------------------------------------------------------------


@contextmanager
def scratch_database(args: argparse.Namespace) -> Iterator[str]:
    """The URL of an empty, migrated scratch database; dropped (or emptied) at the end."""
    if args.database_url:
        url = resolve_database_url(Settings(database=DatabaseSettings(url=args.database_url)))
        yield url
        return
    cluster = EmbeddedSettings()
    embedded.ensure_running(cluster)
    embedded.wait_ready(cluster)
    embedded.drop_database(cluster, BENCH_DB)
    try:
        yield embedded.ensure_database(cluster, BENCH_DB)
    finally:
        if not args.keep:
            embedded.drop_database(cluster, BENCH_DB)
            console.log(f"dropped database {BENCH_DB}")


def _step(label: str, run: Callable[[], T]) -> T:
    console.log(f"[bold]{label}[/bold] ...")
    started = time.perf_counter()
    result = run()
    console.log(f"{label}: done in {time.perf_counter() - started:.1f} s")
    return result


def run_benchmarks(args: argparse.Namespace, bench: Bench, workdir: Path) -> None:
    ours = _step("2a ours: load", lambda: bench_ours_load(bench))
    _step("2b geopandas", lambda: bench_geopandas(bench, ours, index_after=False))
    _step("2b geopandas, index after", lambda: bench_geopandas(bench, ours, index_after=True))
    _step("2c executemany", lambda: bench_executemany(bench, ours, args.executemany_budget))
    for table in SCRATCH_TABLES:
        _drop_scratch(bench.engine, table)
    _step("3 ours: re-import", lambda: bench_ours_reimport(bench, ours))
    _step("4 parse CSV", lambda: bench_parse(bench, workdir))
    _step("5 read", lambda: bench_read(bench, args.bbox, args.requests))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    batch, generated = _step(
        "1 demo.generate", lambda: bench_generate(args.customers, args.seed, args.repeat)
    )
    with scratch_database(args) as url:
        settings = Settings(
            database=DatabaseSettings(url=url, statement_timeout_ms=args.statement_timeout_ms)
        )
        engine = make_engine(url, settings)
        try:
            migrate(engine)
            if scalar(engine, "SELECT count(*) FROM customers"):
                raise BenchmarkError(f"{url}: customers is not empty; use a scratch database")
            bench = Bench(engine, settings, batch, args.repeat, [generated])
            with tempfile.TemporaryDirectory(prefix="territory-bench-") as workdir:
                run_benchmarks(args, bench, Path(workdir))
            info = info_line(engine)
            _cleanup(engine, args)
        finally:
            engine.dispose()
    report(bench.rows, args, started, info)
    return 0


def _cleanup(engine: Engine, args: argparse.Namespace) -> None:
    if args.database_url and not args.keep:
        execute(engine, *(f"DROP TABLE IF EXISTS {t}" for t in SCRATCH_TABLES))
        execute(engine, "TRUNCATE customers RESTART IDENTITY CASCADE")


def report(rows: list[Row], args: argparse.Namespace, started: datetime, info: str) -> None:
    out = Console(width=220)
    title = f"Store benchmark: N = {args.customers:,} customers, seed {args.seed}"
    out.print(rich_table(rows, title))
    rss = f"Peak RSS of the benchmark process: {peak_rss_mib():,.0f} MiB"
    out.print(rss)
    out.print(info)
    command = shlex.join([".venv/bin/python", "-m", "bench.bench_store", *args.argv])
    markdown = "\n".join(
        (
            markdown_table(rows),
            "",
            f"- {rss} (ru_maxrss; the PostgreSQL server is not included)",
            f"- {info}",
            f"- started {started:%Y-%m-%d %H:%M} UTC; command: `{command}`",
            "- x ours = contender seconds / ours in the same benchmark (> 1: slower than ours); "
            "for reads it is p50 / the app's p50.",
        )
    )
    print("\n<!-- markdown -->\n" + markdown)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_store",
        description="Store benchmark: our customer load/re-import/parse/read paths against "
        "geopandas, executemany and plain SQL, on a scratch PostGIS database.",
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--seed", type=int, default=42, help="demo.generate seed (default 42)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs per contender; the median is reported"
    )
    parser.add_argument(
        "--database-url",
        help=f"an existing scratch PostGIS database instead of {BENCH_DB} on the embedded "
        "cluster; its customers table must be empty (it is emptied again at the end)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch data at the end")
    parser.add_argument("--bbox", default=DEFAULT_BBOX, help=f"read bbox (default {DEFAULT_BBOX})")
    parser.add_argument("--requests", type=int, default=50, help="timed reads (default 50)")
    parser.add_argument(
        "--executemany-budget",
        type=float,
        default=600.0,
        help="if the executemany warm-up projects more seconds than this for N, run it on N/10 "
        "and extrapolate (said in the table); default 600",
    )
    parser.add_argument(
        "--statement-timeout-ms",
        type=int,
        default=DatabaseSettings.model_fields["statement_timeout_ms"].default,
        help="the engine's statement_timeout (default: the app's own)",
    )
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.customers < 1000 or args.repeat < 1 or args.requests < 1:
        parser.error("--customers must be >= 1000, --repeat and --requests >= 1")
    return args


if __name__ == "__main__":
    raise SystemExit(main())
