"""Coverage map benchmark (issue 4): the counties layer with N assigned demo customers.

Builds a scratch database (``territory_bench_coverage`` on the embedded cluster, dropped at
the end), loads the boundaries and N demo customers, bulk-assigns the counties layer, then
starts the app (indexes warmed at start-up, as a worker) and measures, in one run:

1. ``GET /layers/counties/coverage`` cold (the first request after start-up: assignment stats
   over N rows, colours, GeoJSON), warm (the same request again: the cached answer), and a
   conditional request answered 304;
2. the same at ``zoom=4`` (cold: the coverage simplification too), with the response's size;
3. plain PostGIS: one SQL statement building the same FeatureCollection (stats joined,
   ``ST_AsGeoJSON``; at zoom 4 each polygon simplified on its own with
   ``ST_SimplifyPreserveTopology``, which does not keep shared borders shared).

    .venv/bin/python -m bench.bench_coverage --customers 1000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.assign import assign_layer
from app.db import make_engine, migrate
from app.factory import create_app
from app.indexes import IndexRegistry
from app.settings import DatabaseSettings, Settings
from bench.auth import admin_headers
from bench.bench_assign import load_data, loadavg, scratch_database
from bench.bench_store import BenchmarkError, info_line
from spatial.coverage import EARTH_M_PER_DEGREE, tolerance_for_zoom

BENCH_DB = "territory_bench_coverage"
LAYER = "counties"
console = Console(stderr=True)

_SQL = """
WITH s AS (
    SELECT a.territory_id, count(*) AS n, sum(c.value) AS v
    FROM assignments a JOIN customers c ON c.id = a.customer_id
    WHERE a.layer_id = :l GROUP BY a.territory_id
)
SELECT json_build_object('type', 'FeatureCollection', 'features', json_agg(json_build_object(
    'type', 'Feature', 'id', t.id,
    'geometry', ST_AsGeoJSON({geom})::json,
    'properties', json_build_object(
        'name', t.name, 'owner', t.owner, 'customer_count', coalesce(s.n, 0),
        'customer_value', coalesce(s.v, 0), 'area_km2', t.area_m2 / 1e6))))::text
FROM territories t LEFT JOIN s ON s.territory_id = t.id
WHERE t.layer_id = :l
"""


@dataclass
class Row:
    """One line of the table."""

    what: str
    contender: str
    seconds: float
    size: int
    note: str = ""


def _timed(run: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def _median(run: Callable[[], object], repeat: int) -> float:
    return statistics.median(_timed(run)[0] for _ in range(repeat))


def _get(client: TestClient, params: dict[str, object], **headers: str) -> bytes:
    response = client.get(f"/layers/{LAYER}/coverage", params=params, headers=headers)
    if response.status_code not in {200, 304}:
        raise BenchmarkError(f"coverage {params}: {response.status_code} {response.text[:300]}")
    return response.content


def measure_ours(client: TestClient, repeat: int) -> list[Row]:
    """Cold, warm and 304 at full resolution and at zoom 4."""
    rows = []
    for label, params in (("full resolution", {}), ("zoom=4", {"zoom": 4})):
        cold, body = _timed(lambda p=params: _get(client, p))  # type: ignore[misc]
        assert isinstance(body, bytes)
        tag = client.get(f"/layers/{LAYER}/coverage", params=params).headers["etag"]
        warm = _median(lambda p=params: _get(client, p), repeat)  # type: ignore[misc]
        not_modified = _median(
            lambda p=params, t=tag: _get(client, p, **{"if-none-match": t}),  # type: ignore[misc]
            repeat,
        )
        rows += [
            Row(label, "ours: cold (first request after start-up)", cold, len(body),
                "assignment stats over N rows, colours, shapes, GeoJSON; index warmed at start"),
            Row(label, f"ours: warm (median of {repeat})", warm, len(body), "cached answer"),
            Row(label, f"ours: If-None-Match -> 304 (median of {repeat})", not_modified, 0),
        ]  # fmt: skip
    return rows


def measure_postgis(engine_url: str, layer_id: int, repeat: int) -> list[Row]:
    """The same FeatureCollection from one SQL statement (no colours, no shares)."""
    engine = make_engine(engine_url, Settings())
    tol = tolerance_for_zoom(4) / EARTH_M_PER_DEGREE
    rows = []
    for label, geom in (
        ("full resolution", "t.geom"),
        ("zoom=4", f"ST_SimplifyPreserveTopology(t.geom, {tol!r})"),
    ):
        query = text(_SQL.format(geom=geom))

        def run(q: object = query) -> str:
            with Session(engine) as session:
                return str(session.scalar(q, {"l": layer_id}))  # type: ignore[call-overload]

        first, body = _timed(run)
        assert isinstance(body, str)
        rows += [
            Row(label, "PostGIS: one SQL statement, first", first, len(body.encode()),
                "json_agg + ST_AsGeoJSON; at zoom 4 each polygon simplified alone"),
            Row(label, f"PostGIS: one SQL statement (median of {repeat})", _median(run, repeat),
                len(body.encode())),
        ]  # fmt: skip
    engine.dispose()
    return rows


def report(rows: list[Row], notes: list[str], markdown: str | None) -> int:
    """Print the table and the targets; write them as Markdown too."""
    by = {(r.what, r.contender.split(" (")[0].split(",")[0]): r for r in rows}
    cold = by[("full resolution", "ours: cold")].seconds
    warm = by[("full resolution", "ours: warm")].seconds
    size = by[("zoom=4", "ours: cold")].size
    lines = [
        "| Benchmark | Contender | Seconds | ms | Bytes | x ours warm | Notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ours_warm = by[(r.what, "ours: warm")].seconds
        lines.append(
            f"| coverage, {r.what} | {r.contender} | {r.seconds:.3f} | {r.seconds * 1e3:.1f} | "
            f"{r.size:,} | {r.seconds / ours_warm:.1f} | {r.note} |"
        )
    ok = {"cold": cold <= 1.0, "warm": warm <= 0.1, "size": size <= 1.5e6}
    lines += [
        "",
        "| Target (issue 4) | Required | Measured | Verdict |",
        "|---|---|---|---|",
        f"| coverage of counties, cold | <= 1 s | {cold:.3f} s | {_v(ok['cold'])} |",
        f"| coverage of counties, warm | <= 100 ms | {warm * 1e3:.1f} ms | {_v(ok['warm'])} |",
        f"| zoom=4 response | <= 1.5 MB | {size / 1e6:.2f} MB | {_v(ok['size'])} |",
        "",
        *[f"- {n}" for n in notes],
    ]
    text_out = "\n".join(lines)
    print(text_out)
    if markdown:
        with open(markdown, "w") as f:
            f.write(text_out + "\n")
    return 0 if all(ok.values()) else 1


def _v(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    args = parse_args(argv)
    started = datetime.now(UTC)
    notes = [f"load average at start {loadavg()}"]
    with scratch_database(args.keep, BENCH_DB) as url:
        engine = make_engine(url, Settings())
        migrate(engine)
        notes += load_data(engine, args.customers, args.seed)
        with Session(engine) as session:
            seconds, result = _timed(
                lambda: assign_layer(
                    session, layer=LAYER, registry=IndexRegistry(sessionmaker(engine))
                )
            )
            session.commit()
            layer_id = int(
                session.scalar(text("SELECT id FROM layers WHERE name = :n"), {"n": LAYER}) or 0
            )
        notes.append(f"assign_layer({LAYER}) {seconds:.1f} s: {result}")
        engine.dispose()
        settings = Settings(database=DatabaseSettings(url=url))
        headers = admin_headers(url)
        with TestClient(create_app(settings), headers=headers) as client:  # indexes warmed
            rows = measure_ours(client, args.repeat)
        rows += measure_postgis(url, layer_id, args.repeat)
        info_engine = make_engine(url, Settings())
        notes.append(info_line(info_engine))
        info_engine.dispose()
    notes += [
        f"N = {args.customers:,} demo customers (seed {args.seed}), all assigned to counties; "
        "requests through fastapi.testclient.TestClient (no network), app built by create_app",
        f"load average at end {loadavg()}",
        f"started {started:%Y-%m-%d %H:%M} UTC; command: `.venv/bin/python -m "
        f"bench.bench_coverage {' '.join(sys.argv[1:] if argv is None else argv)}`",
    ]
    return report(rows, notes, args.markdown)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--seed", type=int, default=42, help="demo.generate seed (default 42)")
    parser.add_argument("--repeat", type=int, default=20, help="warm requests timed (20)")
    parser.add_argument("--keep", action="store_true", help=f"keep {BENCH_DB} at the end")
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
