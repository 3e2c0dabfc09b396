"""Overlap benchmark (issue 4): our overlap engine against a PostGIS self-join, one run.

Makes N seeded random custom territories (20-200 vertices; some with a hole, some of two
parts; radii 0.1-0.8 degrees over the contiguous US, so most overlap several others), stores
them as one layer in a scratch database (``territory_bench_overlaps`` on the embedded cluster,
or ``--database``; dropped and re-created at the start, dropped at the end) and finds every
overlapping pair:

1. ours, engine alone: ``spatial.overlap.find_overlaps`` on the geometries in memory (pairs,
   overlap geometries by Clipper2, geodesic areas, percentages), with its thread pool
   (``--threads``, ``os.cpu_count()`` by default, as the service runs it) and again with one
   thread, the garbage collector tuned as in a service worker (``app.factory.tune_gc``);
2. ours, from the database: the layer's territories read (``assignments.engine_input``),
   parsed from WKB, then the engine;
3. ours, served: ``GET /layers/{layer}/overlaps`` through a TestClient on the app (started
   before timing; no index held, so the route reads the layer), GeoJSON included, every page
   of the largest size (``limit=10000``; each page finds the layer's overlaps anew);
4. PostGIS: ``a.id < b.id AND ST_Intersects(a.geom, b.geom) AND
   ST_Area(ST_Intersection(a.geom, b.geom)::geography) > tol`` over the GiST index, as
   planned (a parallel plan on this machine), and again with no parallel workers (one
   process, as ours).

The pair sets must be the same (a pair whose area is within 1e-4 of the tolerance may fall on
either side and is only reported); ours' areas are checked against PostGIS's. Any other
difference makes the run fail (exit status 1) after the report.

    .venv/bin/python -m bench.bench_overlaps --territories 5000 --markdown /tmp/overlaps.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from fastapi.testclient import TestClient
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.db import make_engine, migrate
from app.factory import create_app, tune_gc
from app.repositories import assignments
from app.repositories import layers as layer_repo
from app.routes.params import MAX_LIMIT
from app.settings import DatabaseSettings, IndexSettings, Settings
from bench.auth import admin_headers
from bench.bench_assign import scratch_database
from spatial.overlap import DEFAULT_MIN_AREA_KM2, Overlaps, find_overlaps

BENCH_DB = "territory_bench_overlaps"
LAYER = "bench-overlaps"
T = TypeVar("T")
console = Console(stderr=True)

_OURS_SERIAL = "ours: find_overlaps, threads=1"
_POSTGIS = "PostGIS self-join"
_POSTGIS_SERIAL = "PostGIS self-join, max_parallel_workers_per_gather = 0"

# The contiguous US (degrees): where the random territories' centres fall.
_WEST, _EAST, _SOUTH, _NORTH = -124.0, -68.0, 26.0, 48.0


def _blob(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int) -> Any:
    """A smooth star-shaped ring of ``n`` vertices: a radius with a few low harmonics."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in range(2, 6):
        rad += rng.uniform(0, 0.5 / k) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    rad *= radius / rad.max()
    # Degrees of longitude shrink with latitude: divide so shapes are round on the ground.
    return np.c_[cx + rad * np.cos(t) / np.cos(np.radians(cy)), cy + rad * np.sin(t)]


def random_territories(count: int, seed: int) -> npt.NDArray[np.object_]:
    """``count`` valid random territories (lon/lat): 15% with a hole, 15% of two parts."""
    rng = np.random.default_rng(seed)
    out = np.empty(count, dtype=object)
    for k in range(count):
        cx, cy = rng.uniform(_WEST, _EAST), rng.uniform(_SOUTH, _NORTH)
        radius = rng.uniform(0.1, 0.8)  # degrees of latitude: 11-90 km
        n = int(rng.integers(20, 201))
        kind = rng.uniform()
        if kind < 0.15:
            hole = _blob(rng, cx, cy, 0.3 * radius, max(20, n // 3))
            out[k] = shapely.Polygon(_blob(rng, cx, cy, radius, n), [hole])
        elif kind < 0.30:
            # Two halves 2.4 radii apart, each at most half a radius wide: they never meet.
            out[k] = shapely.MultiPolygon(
                [
                    shapely.Polygon(_blob(rng, cx - 1.2 * radius, cy, 0.5 * radius, n)),
                    shapely.Polygon(_blob(rng, cx + 1.2 * radius, cy, 0.5 * radius, n)),
                ]
            )
        else:
            out[k] = shapely.Polygon(_blob(rng, cx, cy, radius, n))
    return out


@dataclass
class Row:
    """One contender's result."""

    contender: str
    seconds: float
    pairs: int
    note: str = ""


@dataclass
class Bench:
    """What the run measured."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _timed(run: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median wall time of ``repeat`` runs, and the last run's answer."""
    times = []
    result: T | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(times), result


def _step(label: str, run: Callable[[], T]) -> T:
    console.log(f"{label} ...")
    started = time.perf_counter()
    result = run()
    console.log(f"{label}: {time.perf_counter() - started:.1f} s")
    return result


def store(engine: Engine, geoms: npt.NDArray[np.object_]) -> int:
    """The territories as one layer (ids in input order), committed; returns the layer id."""
    with Session(engine) as session:
        layer = layer_repo.create(session, name=LAYER, title="overlap benchmark", description=None)
        session.execute(
            text(
                "INSERT INTO territories (layer_id, name, geom) "
                "SELECT :layer_id, 'random ' || u.i, ST_Multi(ST_GeomFromWKB(u.w, 4326)) "
                "FROM unnest(CAST(:wkb AS bytea[])) WITH ORDINALITY AS u(w, i) ORDER BY u.i"
            ),
            {"layer_id": layer.id, "wkb": [shapely.to_wkb(g) for g in geoms]},
        )
        session.commit()
        return layer.id


def _analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE territories"))


_SELF_JOIN = """
SELECT a.id AS a, b.id AS b, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS m2
FROM territories a
JOIN territories b ON b.layer_id = a.layer_id AND a.id < b.id AND ST_Intersects(a.geom, b.geom)
WHERE a.layer_id = :layer_id
  AND ST_Area(ST_Intersection(a.geom, b.geom)::geography) > :tol_m2
"""


def postgis_pairs(
    engine: Engine, layer_id: int, tol_km2: float, *, parallel: bool = True
) -> dict[tuple[int, int], float]:
    """The self-join's pairs and their areas (km²); ``parallel=False``: one process only."""
    with engine.connect() as conn:
        if not parallel:
            conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        rows = conn.execute(text(_SELF_JOIN), {"layer_id": layer_id, "tol_m2": tol_km2 * 1e6})
        return {(int(r.a), int(r.b)): float(r.m2) / 1e6 for r in rows}


def plan_shape(engine: Engine, layer_id: int, tol_km2: float) -> str:
    """The self-join's plan, one line (parallel or not, index used or not)."""
    with engine.connect() as conn:
        lines = conn.execute(
            text("EXPLAIN " + _SELF_JOIN), {"layer_id": layer_id, "tol_m2": tol_km2 * 1e6}
        ).scalars()
        return " / ".join(
            line.strip().split("  (")[0] for line in lines if "->" in line or "Gather" in line
        )


def from_database(engine: Engine, layer_id: int, tol_km2: float) -> Overlaps:
    """Ours as the service runs it without a held index: read, parse, find."""
    with Session(engine) as session:
        found = assignments.engine_input(session, layer_id=layer_id)
    return find_overlaps(
        found["ids"],
        shapely.from_wkb(found["wkb"]),
        min_area_km2=tol_km2,
        areas_km2=found["area_m2"] / 1e6,
    )


@contextmanager
def served(engine: Engine) -> Iterator[TestClient]:
    """A client on the app over the scratch database (no customers there: none contested)."""
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database=DatabaseSettings(url=url), index=IndexSettings(warm=False))
    with TestClient(create_app(settings), headers=admin_headers(url)) as client:
        yield client


def over_http(client: TestClient, tol_km2: float) -> int:
    """Ours as served: every page of the route's answer, parsed; the number of features."""
    url: str | None = f"/layers/{LAYER}/overlaps?min_area_km2={tol_km2}&limit={MAX_LIMIT}"
    features = 0
    while url:
        response = client.get(url)
        response.raise_for_status()
        page = orjson.loads(response.content)  # parsed as a fast client would
        features += len(page["features"])
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    return features


def compare(bench: Bench, ours: Overlaps, theirs: dict[tuple[int, int], float], tol: float) -> str:
    """Check ours against PostGIS: the same pairs, the same areas; returns a note."""
    mine = {(int(a), int(b)): float(m) for (a, b), m in zip(ours.ids, ours.area_km2, strict=True)}
    only_ours = set(mine) - set(theirs)
    only_theirs = set(theirs) - set(mine)
    # A pair within 1e-4 of the tolerance may land on either side of it (two area algorithms).
    at_edge = {p for p in only_ours if abs(mine[p] - tol) <= 1e-4 * tol} | {
        p for p in only_theirs if abs(theirs[p] - tol) <= 1e-4 * tol
    }
    if (only_ours | only_theirs) - at_edge:
        bench.failures.append(
            f"pairs differ: {len(only_ours)} only ours, {len(only_theirs)} only PostGIS "
            f"(e.g. {sorted((only_ours | only_theirs) - at_edge)[:5]})"
        )
    both = sorted(set(mine) & set(theirs))
    rel = np.array([abs(mine[p] / theirs[p] - 1) for p in both if theirs[p] > 0])
    worst = float(rel.max()) if rel.size else 0.0
    if worst > 1e-4:
        bench.failures.append(f"areas differ from PostGIS by up to {worst:.2e} (relative)")
    return (
        f"same {len(both):,} pairs as PostGIS ({len(at_edge)} at the tolerance's edge); "
        f"areas within {worst:.1e} relative of ST_Area(...::geography)"
    )


def run(bench: Bench, engine: Engine, args: argparse.Namespace) -> None:
    """Every contender, checked against PostGIS."""
    geoms = _step("generate", lambda: random_territories(args.territories, args.seed))
    vertices = int(shapely.get_num_coordinates(geoms).sum())
    layer_id = _step("store", lambda: store(engine, geoms))
    _analyze(engine)
    with Session(engine) as session:
        # Inserted in input order: the i-th id is the i-th territory's.
        ids = np.array(
            session.scalars(
                text("SELECT id FROM territories WHERE layer_id = :l ORDER BY id"),
                {"l": layer_id},
            ).all(),
            dtype=np.int64,
        )
    tol = args.min_area_km2
    threads = args.threads or os.cpu_count() or 1
    # The garbage collector as a service worker has it (its lifespan calls the same function).
    tune_gc(Settings())
    find_overlaps(ids[:200], geoms[:200], min_area_km2=tol)  # warm-up, untimed
    seconds, ours = _step(
        "1 ours: engine",
        lambda: _timed(
            lambda: find_overlaps(ids, geoms, min_area_km2=tol, threads=threads), args.repeat
        ),
    )
    bench.rows.append(
        Row(
            f"ours: find_overlaps (engine, geometries in memory, {threads} threads)",
            seconds,
            len(ours),
        )
    )
    seconds, alone = _step(
        "1b ours: engine, one thread",
        lambda: _timed(lambda: find_overlaps(ids, geoms, min_area_km2=tol, threads=1), args.repeat),
    )
    bench.rows.append(Row(_OURS_SERIAL, seconds, len(alone)))
    if not np.array_equal(alone.ids, ours.ids) or not np.array_equal(alone.area_km2, ours.area_km2):
        bench.failures.append("ours with one thread found other pairs or areas than threaded")
    seconds, read = _step(
        "2 ours: from the database",
        lambda: _timed(lambda: from_database(engine, layer_id, tol), args.repeat),
    )
    bench.rows.append(Row("ours: read the layer + parse WKB + find_overlaps", seconds, len(read)))
    with served(engine) as client:
        seconds, answered = _step(
            "3 ours: GET /layers/{layer}/overlaps",
            lambda: _timed(lambda: over_http(client, tol), args.repeat),
        )
    bench.rows.append(
        Row(
            f"ours: GET /layers/{{layer}}/overlaps, every page of {MAX_LIMIT:,} "
            "(TestClient, no index held, GeoJSON built)",
            seconds,
            answered,
        )
    )
    if answered != len(ours):
        bench.failures.append(f"the route answered {answered} features, the engine {len(ours)}")
    seconds, theirs = _step(
        "4 PostGIS self-join",
        lambda: _timed(lambda: postgis_pairs(engine, layer_id, tol), args.repeat),
    )
    plan = plan_shape(engine, layer_id, tol)
    bench.rows.append(Row(_POSTGIS, seconds, len(theirs), f"plan: {plan}"))
    seconds, serial = _step(
        "5 PostGIS self-join, no parallel workers",
        lambda: _timed(lambda: postgis_pairs(engine, layer_id, tol, parallel=False), args.repeat),
    )
    bench.rows.append(Row(_POSTGIS_SERIAL, seconds, len(serial)))
    if set(serial) != set(theirs):
        bench.failures.append("PostGIS found other pairs without parallel workers")
    bench.rows[0].note = compare(bench, ours, theirs, tol)
    if not np.array_equal(read.ids, ours.ids):
        bench.failures.append("ours from the database found other pairs than ours in memory")
    bench.notes.append(
        f"{geoms.size:,} territories, {vertices:,} vertices, seed {args.seed}; "
        f"{len(ours):,} overlapping pairs at min_area_km2 = {tol} "
        f"({int((shapely.get_type_id(ours.geoms) == 6).sum()):,} of them MultiPolygons)"
    )


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * 3 + ["---"])]
    lines[1] += "|"
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(bench: Bench, args: argparse.Namespace, context: dict[str, Any]) -> int:
    """The table (rich on stderr's console, Markdown on stdout and in --markdown)."""
    ours = bench.rows[0].seconds
    by_name = {r.contender: r.seconds for r in bench.rows}
    headers = ["Contender", "Seconds", "Pairs", "x ours", "Notes"]
    rows = [
        [r.contender, f"{r.seconds:.3f}", f"{r.pairs:,}", f"{r.seconds / ours:.2f}", r.note]
        for r in bench.rows
    ]
    postgis = by_name[_POSTGIS]
    serial = by_name[_POSTGIS_SERIAL] / by_name[_OURS_SERIAL]
    target = "met" if postgis >= 5 * ours else "NOT met"
    notes = [
        *bench.notes,
        f"target: ours >= 5x faster than PostGIS: {postgis / ours:.2f}x, {target}",
        f"one process each (ours threads=1, PostGIS without parallel workers): {serial:.2f}x",
        f"x ours = seconds / ours engine seconds (> 1: slower than ours); median of "
        f"{args.repeat} run(s) each; ours runs its intersections (Clipper2, spatial.clip) in a "
        "thread pool (the library runs without the GIL), PostGIS its plan's parallel workers",
        f"load average at start {context['load_start']}, at end {_loadavg()} "
        f"({os.cpu_count()} cores, shared with other people's processes)",
        f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), "
        f"numpy {np.__version__}; {context['postgis']}",
        f"started {context['started']:%Y-%m-%d %H:%M} UTC; command: `{context['command']}`",
    ]
    table = Table(title=f"Overlaps (issue 4): N = {args.territories:,} territories")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if 1 <= i <= 3 else "left", overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    out = Console(width=200)
    out.print(table)
    for line in notes:
        out.print("- " + escape(line))
    for failure in bench.failures:
        out.print(f"[bold red]FAIL: {escape(failure)}[/bold red]")
    markdown = "\n".join(
        [
            _markdown(headers, rows),
            "",
            *(f"- {line}" for line in notes),
            *(f"- **FAIL: {f}**" for f in bench.failures),
        ]
    )
    print("\n<!-- markdown -->\n" + markdown)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n", encoding="utf-8")
    return 1 if bench.failures else 0


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _postgis_version(engine: Engine) -> str:
    with engine.connect() as conn:
        full = str(conn.execute(text("SELECT postgis_full_version()")).scalar())
    return " ".join(part for part in full.split() if part.startswith(("POSTGIS=", "GEOS=")))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if ours and PostGIS disagree."""
    args = parse_args(argv)
    context: dict[str, Any] = {
        "started": datetime.now(UTC),
        "load_start": _loadavg(),
        "command": shlex.join(
            [".venv/bin/python", "-m", "bench.bench_overlaps", *(argv or sys.argv[1:])]
        ),
    }
    bench = Bench()
    with scratch_database(args.keep, args.database) as url:
        engine = make_engine(url, Settings(database=DatabaseSettings(url=url)))
        try:
            migrate(engine)
            run(bench, engine, args)
            context["postgis"] = _postgis_version(engine)
        finally:
            engine.dispose()
    return report(bench, args, context)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_overlaps",
        description="Overlap benchmark (issue 4): spatial.overlap against a PostGIS self-join "
        f"on N random territories, in a scratch database ({BENCH_DB}) on the embedded cluster.",
    )
    parser.add_argument("--territories", type=int, default=5_000, help="N (default 5000)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument(
        "--min-area-km2", type=float, default=DEFAULT_MIN_AREA_KM2, help="tolerance, km²"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of the others (median)")
    parser.add_argument(
        "--database", default=BENCH_DB, help=f"scratch database's name (default {BENCH_DB})"
    )
    parser.add_argument("--threads", type=int, help="ours' thread pool (default: os.cpu_count())")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
