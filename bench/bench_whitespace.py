"""White space benchmark (issue 4): our engine and route against PostGIS, one run.

Builds a scratch database (``territory_bench_whitespace`` on the embedded cluster, dropped and
re-created at the start and dropped at the end), loads the reference boundaries, N demo
customers and a layer of 500 seeded custom territories (overlapping discs and boxes), and
measures the white space of the nation market (the union of every state), for the counties
layer and for that custom layer, side by side:

1. PostGIS: ``ST_Difference(market, ST_Union(geom))`` and its geodesic area, the market sent
   as WKB (its union is not timed on either side);
2. ours, cold, as the service takes a layer's first ask (``WhiteSpaceService.uncovered``):
   territories that overlap much (the custom layer) at once, the market less all of them in
   strips (``uncovered_by``, Clipper2, no union); the others (the counties) by their union
   and the difference (``covered_union`` + ``uncovered_parts``), the union then kept; and,
   for the overlapping layer, that union path too (GEOS), side by side;
3. ours, layer union kept: the difference alone (what another market of the same layer
   version costs on the union path), and after one territory is reshaped (the kept union
   updated, not made anew; checked against the union made anew);
4. ours, end to end over HTTP: ``GET /layers/{layer}/whitespace`` the first time (union,
   customers read, index owners, county and H3 breakdowns, JSON), with every customer read
   (a layer never assigned) and with only those the layer may leave uncovered (the layer
   assigned first, untimed: its assignments are then kept current by every edit), and
   repeated on the unchanged layer.

The layer's lookup index is held by every worker anyway (look-ups need it); it is built
before the HTTP rows and not counted, and so is the reference data (the nation market's
shape and the counties), which a worker reads once for every layer. Ours runs GEOS in up
to ``os.cpu_count()`` threads (shapely releases the GIL); PostGIS runs the statement in one
backend. The machine is shared: the load average is printed before and after.

Every area of ours is checked against PostGIS (0.5%): a difference makes the run fail (exit
status 1) after the report.

    .venv/bin/python -m bench.bench_whitespace --customers 50000 --markdown /tmp/ws.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import boundaries, demo, embedded
from app.db import make_engine, migrate
from app.factory import create_app
from app.repositories import customers as customers_repo
from app.repositories import layers as layer_repo
from app.settings import DatabaseSettings, EmbeddedSettings, IndexSettings, Settings
from app.whitespace import WhiteSpaceService
from bench.auth import admin_headers
from bench.bench_assign import markdown_table
from bench.bench_store import info_line
from spatial.measure import geodesic_area_km2
from spatial.whitespace import (
    covered_union,
    overlapping,
    uncovered_by,
    uncovered_parts,
    updated_union,
)

BENCH_DB = "territory_bench_whitespace"  # never territory, territory_test nor territory_bench
CUSTOM = "custom500"
TOLERANCE = 0.005  # areas of ours against PostGIS: 0.5%
SPEEDUP_GOAL = 5.0
REPEAT_GOAL_MS = 50.0

_POSTGIS = """
WITH u AS (SELECT ST_Union(t.geom) AS g FROM territories t JOIN layers l ON l.id = t.layer_id
           WHERE l.name = :layer)
SELECT ST_Area(ST_Difference(ST_GeomFromWKB(:market, 4326), u.g)::geography) / 1e6 FROM u
"""


@dataclass
class Row:
    """One line of the table."""

    layer: str
    what: str
    seconds: list[float]
    km2: float | None = None
    note: str = ""
    ok: bool = True  # a check of its own (beyond the area against PostGIS) passed

    @property
    def median(self) -> float:
        """Median seconds."""
        return statistics.median(self.seconds)


def _custom_territories(count: int, seed: int) -> list[bytes]:
    """WKB of ``count`` seeded shapes over the lower 48: discs and boxes, overlapping."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-123.0, -70.0, count)
    y = rng.uniform(27.0, 48.0, count)
    r = rng.uniform(0.2, 1.6, count)  # degrees
    discs = shapely.buffer(shapely.points(x, y), r, quad_segs=32)
    boxes = shapely.box(x - r, y - r / 2, x + r, y + r / 2)
    shapes = np.where(rng.random(count) < 0.5, discs, boxes)
    return [bytes(w) for w in shapely.to_wkb(shapes)]


def _setup(engine: Engine, customers: int, seed: int) -> None:
    with Session(engine) as session:
        boundaries.load(session, data_dir=Settings().data_dir)
        customers_repo.upsert(session, batch=demo.generate(customers, seed=seed))
        layer = layer_repo.create(session, name=CUSTOM, title="500 seeded shapes", description=None)
        session.execute(
            text(
                "INSERT INTO territories (layer_id, name, kind, geom) "
                "SELECT :l, 'T' || i, 'custom', ST_Multi(ST_GeomFromWKB(w, 4326)) "
                "FROM unnest(CAST(:w AS bytea[])) WITH ORDINALITY AS u(w, i)"
            ),
            {"l": layer.id, "w": _custom_territories(500, seed)},
        )
        layer_repo.touch(session, layer=layer)
        session.commit()
        session.execute(text("ANALYZE"))


def _timed(run: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def _cold(market: Any, geoms: np.ndarray, threads: int | None = None) -> float:
    """The uncovered area (km²) as ``WhiteSpaceService.uncovered`` works it out with no union
    kept (every part measured): at once when the territories overlap much, else by their
    union."""
    if overlapping(geoms):
        return float(uncovered_by(market, geoms, threads=threads).km2.sum())
    parts = uncovered_parts(market, covered_union(geoms, threads=threads), threads=threads)
    return float(geodesic_area_km2(parts).sum())


def _layer_geoms(engine: Engine, layer: str) -> np.ndarray:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ST_AsBinary(t.geom) FROM territories t JOIN layers l "
                "ON l.id = t.layer_id WHERE l.name = :n ORDER BY t.id"
            ),
            {"n": layer},
        ).scalars()
        return np.asarray(shapely.from_wkb([bytes(w) for w in rows]), dtype=object)


def bench_layer(
    engine: Engine, client: TestClient, layer: str, market: Any, repeat: int
) -> list[Row]:
    """The four contenders on one layer; areas checked against PostGIS."""
    wkb = shapely.to_wkb(market)
    with engine.connect() as conn:
        sql_s, sql_km2 = _timed(
            lambda: float(conn.execute(text(_POSTGIS), {"layer": layer, "market": wkb}).scalar()),
            repeat,
        )
    geoms = _layer_geoms(engine, layer)

    cold_s, cold_km2 = _timed(lambda: _cold(market, geoms), repeat)
    single_s, single_km2 = _timed(lambda: _cold(market, geoms, threads=1), repeat)
    at_once = overlapping(geoms)
    how = "at once, in strips (Clipper2), no union" if at_once else "union + difference"

    def union_path() -> float:
        union = covered_union(geoms)
        return float(geodesic_area_km2(uncovered_parts(market, union)).sum())

    geos_s, geos_km2 = _timed(union_path, repeat) if at_once else ([], None)
    union = covered_union(geoms)
    kept_s, kept_km2 = _timed(
        lambda: float(geodesic_area_km2(uncovered_parts(market, union)).sum()), repeat
    )
    # One territory reshaped (shrunk by 0.01 degree): the kept union brought up to date.
    edited = geoms.copy()
    edited[0] = shapely.buffer(geoms[0], -0.01)

    def after_edit() -> float:
        moved = updated_union(union, gone=geoms[:1], added=edited[:1], current=edited)
        return float(geodesic_area_km2(uncovered_parts(market, moved)).sum())

    edit_s, edit_km2 = _timed(after_edit, repeat)
    fresh_km2 = float(geodesic_area_km2(uncovered_parts(market, covered_union(edited))).sum())
    url = f"/layers/{layer}/whitespace"
    state = cast(FastAPI, client.app).state

    def fresh_service() -> None:
        state.whitespace = WhiteSpaceService()
        assert client.get("/layers/states/whitespace").status_code == 200

    # The layer's index (owners of the customers) is built on first use: not white space.
    built_s, _ = _timed(lambda: state.indexes.get(layer), 1)
    # First asks start with nothing of the layer kept (a new service: the union made anew).
    # The reference data (nation market, counties) is read once per worker, for every layer:
    # an untimed ask on the states layer reads it first.
    fresh_service()
    every_s, every = _timed(lambda: client.get(url, params={"h3_res": 5}), 1)
    assigned_s, assigned = _timed(lambda: client.post(f"/layers/{layer}/assign"), 1)
    assert assigned.status_code == 200, assigned.text
    fresh_service()
    first_s, first = _timed(lambda: client.get(url, params={"h3_res": 5}), 1)
    http_km2 = float(first.json()["summary"]["uncovered_km2"])
    again_s, again = _timed(lambda: client.get(url, params={"h3_res": 5}), 20)
    assert again.headers["x-cache"] == "hit"
    summary = first.json()["summary"]
    # Reading fewer customers must not change what is found.
    same = every.json()["summary"]["customers"] == summary["customers"]
    note = (
        f"{summary['parts']} parts, {summary['customers']['count']} customers uncovered, "
        f"{first.json()['counties']['numberMatched']} counties, "
        f"{first.json()['hexagons']['numberMatched']} H3 cells; index built before "
        f"(not counted): {built_s[0]:.2f} s; layer assigned before (not counted): "
        f"{assigned_s[0]:.2f} s; nation market and counties read before (not counted)"
    )
    return [
        Row(layer, "PostGIS ST_Difference(market, ST_Union(geom))", sql_s, sql_km2),
        Row(layer, "ours, cold", cold_s, cold_km2, f"{how}; {os.cpu_count()} threads"),
        Row(layer, "ours, cold, one thread", single_s, single_km2),
        *(
            [Row(layer, "ours, union path: union + difference (GEOS)", geos_s, geos_km2)]
            if at_once
            else []
        ),
        Row(layer, "ours, layer union kept: difference", kept_s, kept_km2),
        Row(
            layer,
            "ours, one territory reshaped: union updated + difference",
            edit_s,
            None,
            f"{edit_km2:,.3f} km² (union made anew: {fresh_km2:,.3f})",
            ok=abs(edit_km2 - fresh_km2) <= max(TOLERANCE * fresh_km2, 1e-6),
        ),
        Row(
            layer,
            "ours, HTTP GET, first, every customer read (layer not assigned)",
            every_s,
            float(every.json()["summary"]["uncovered_km2"]),
        ),
        Row(
            layer,
            "ours, HTTP GET, first, uncovered candidates read (layer kept assigned)",
            first_s,
            http_km2,
            note + ("" if same else "; CUSTOMERS DIFFER from every customer read"),
            ok=same,
        ),
        Row(layer, "ours, HTTP GET, repeat (unchanged layer)", again_s, None),
    ]


def _agrees(row: Row, truth: float) -> bool:
    if row.km2 is None:
        return True
    return abs(row.km2 - truth) <= max(TOLERANCE * truth, 1e-6)


def report(rows: list[Row], args: argparse.Namespace, info: str) -> int:
    """Print the table (and write the Markdown); 1 when an area disagrees with PostGIS."""
    command = ".venv/bin/python -m bench.bench_whitespace " + shlex.join(sys.argv[1:])
    headers = ("Layer", "Contender", "Median s", "vs PostGIS", "White space km²", "Notes")
    cells: list[list[str]] = []
    failed = False
    postgis = {r.layer: r for r in rows if r.what.startswith("PostGIS")}
    for r in rows:
        base = postgis[r.layer]
        ok = _agrees(r, base.km2 or 0.0) and r.ok
        failed |= not ok
        speed = base.median / r.median if r is not base else 1.0
        km2 = ("" if r.km2 is None else f"{r.km2:,.3f}") + ("" if ok else " MISMATCH")
        median = f"{r.median * 1000:.1f} ms" if r.median < 0.1 else f"{r.median:.3f}"
        cells.append([r.layer, r.what, median, f"{speed:.1f}x", km2, r.note])
    table = Table(title="White space of the nation market", caption=command)
    for h in headers:
        table.add_column(h)
    for c in cells:
        table.add_row(*c)
    Console().print(table)
    print(info)
    targets = _targets(rows)
    for line in targets:
        print(line)
    markdown = "\n".join(
        [
            f"`{command}` ({args.customers:,} customers, {args.repeat} runs each, "
            "HTTP repeat 20 runs)",
            "",
            markdown_table(headers, cells, 3),
            "",
            info,
            f"Load average (1, 5, 15 min): before {args.load_before}, after {_load()}.",
            "",
            *targets,
        ]
    )
    print("\n<!-- markdown -->\n" + markdown)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n", encoding="utf-8")
    return 1 if failed else 0


def _load() -> str:
    """The load average (1, 5, 15 minutes), rounded."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _targets(rows: list[Row]) -> list[str]:
    """The issue's targets, met or NOT met, from the rows of this run."""
    lines = []
    for layer in dict.fromkeys(r.layer for r in rows):
        mine = {r.what: r for r in rows if r.layer == layer}
        base = mine["PostGIS ST_Difference(market, ST_Union(geom))"].median
        cold = base / mine["ours, cold"].median
        repeat_ms = mine["ours, HTTP GET, repeat (unchanged layer)"].median * 1000
        lines += [
            f"- {layer}: cold >= {SPEEDUP_GOAL:.0f}x PostGIS: {cold:.1f}x, "
            + ("met" if cold >= SPEEDUP_GOAL else "NOT met"),
            f"- {layer}: repeat <= {REPEAT_GOAL_MS:.0f} ms: {repeat_ms:.1f} ms, "
            + ("met" if repeat_ms <= REPEAT_GOAL_MS else "NOT met"),
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if an area disagrees with PostGIS."""
    args = parse_args(argv)
    args.load_before = _load()
    cluster = EmbeddedSettings()
    embedded.ensure_running(cluster)
    embedded.wait_ready(cluster)
    embedded.drop_database(cluster, BENCH_DB)
    url = embedded.ensure_database(cluster, BENCH_DB)
    settings = Settings(database=DatabaseSettings(url=url), index=IndexSettings(warm=False))
    engine = make_engine(url, settings)
    try:
        migrate(engine)
        _setup(engine, args.customers, args.seed)
        with engine.connect() as conn:
            states = conn.execute(
                text("SELECT ST_AsBinary(geom) FROM boundaries WHERE level = 'state'")
            ).scalars()
            market = shapely.union_all(shapely.from_wkb([bytes(w) for w in states]))
        rows: list[Row] = []
        assert settings.database.url
        headers = admin_headers(settings.database.url)
        with TestClient(create_app(settings), headers=headers) as client:
            for layer in ("counties", CUSTOM):
                rows += bench_layer(engine, client, layer, market, args.repeat)
        return report(rows, args, info_line(engine))
    finally:
        engine.dispose()
        embedded.drop_database(cluster, BENCH_DB)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000, help="demo customers")
    parser.add_argument("--seed", type=int, default=4, help="customers and custom territories")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
