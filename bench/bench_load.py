"""Load test (issue 6, item 6): a mixed open-loop load on ``uvicorn --workers 2``, then a check
that every worker's index agrees with PostGIS.

Builds a scratch database (``territory_bench_load`` on the embedded cluster, dropped and
re-created at the start and dropped at the end) with the reference boundaries and N demo
customers, starts ``uvicorn app.main:app --workers 2`` on it (as bench/bench_http.py does), adds
over HTTP a custom layer ``partners`` of a few dozen overlapping territories (composed from
states and from counties, and drawn), and assigns the customers to the counties and to the
partners. Then, open loop at a fixed total rate (``bench/loadgen.py`` in mixed mode, its own
process; latency measured from each request's due time):

- 70 % ``GET /lookup?lon&lat&layer`` at demo customers' positions, counties and partners (the
  counties' owners are checked against PostGIS: that layer is never edited);
- 25 % map reads: ``GET /layers/{layer}/coverage`` (zoom 4-8, whole layer or a viewport's bbox)
  and ``GET /tiles/{layer}/{z}/{x}/{y}.mvt`` (z4-z10 around customers), revalidated with
  If-None-Match whenever the client has an ETag for that URL, as a browser does;
- 5 % edits of the partners layer: PATCH owner/priority, PUT a moved and reshaped polygon, POST a
  new territory and later DELETE it. Every edit must succeed.

Errors (any status not expected, connection errors, timeouts) must be 0. After the load and a
quiet pause, for every layer, each worker is asked ``GET /lookup`` of every sample point (5,000
random ones plus the vertices and centroids of every edited territory, as stored now and of every
shape sent) on connections pinned to it (``X-Worker-Pid`` of ``GET /health``), and each answer
(owner, its name and owner, rule, covering territories) is compared with PostGIS (``ST_Covers``,
then priority, area, id). The partners' stored assignments are compared with PostGIS too. Exit
status 1 on any error or difference. See bench/README.md.

    .venv/bin/python -m bench.bench_load
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import psycopg
import shapely
from rich.console import Console
from rich.markup import escape

from app import demo
from app.db import make_engine, migrate
from app.notify import conninfo
from app.settings import DatabaseSettings, Settings
from bench.auth import admin_headers
from bench.bench_assign import load_data, loadavg, markdown_table, rich_table, scratch_database
from bench.bench_http import (
    HOST,
    ROOT,
    _busy_ticks,
    _processes,
    cpu_busy,
    free_port,
    server,
    uvicorn_command,
)
from bench.bench_store import BenchmarkError, info_line
from bench.loadgen import Connection, _exchange_full

BENCH_DB = "territory_bench_load"  # never territory, territory_test*, nor another bench's
PARTNERS = "partners"
LOOKUP_LAYERS = ("counties", PARTNERS)  # the layers read under load
CONUS = (-125.0, 24.0, -66.0, 50.0)  # random check points: where the borders are
CHECK_TIMEOUT_S = 60.0  # a check request unanswered this long: the worker is stuck, say so
console = Console(stderr=True)
T = TypeVar("T")

# The mix: shares of all requests, then of the edits. Reads split evenly between the layers.
MIX = {"lookup": 0.70, "coverage": 0.125, "tile": 0.125, "edit": 0.05}
EDITS = {"patch": 0.55, "put": 0.30, "post": 0.075, "delete": 0.075}
ROUTES = {  # kind -> route template, as reported
    "lookup": "GET /lookup?lon&lat&layer",
    "coverage": "GET /layers/{layer}/coverage",
    "tile": "GET /tiles/{layer}/{z}/{x}/{y}.mvt",
    "patch": "PATCH /layers/{layer}/territories/{id}",
    "put": "PUT /layers/{layer}/territories/{id}",
    "post": "POST /layers/{layer}/territories",
    "delete": "DELETE /layers/{layer}/territories/{id}",
}
EXPECT = {  # kind -> the statuses that are no error
    "lookup": [200],
    "coverage": [200, 304],
    "tile": [200, 204, 304],
    "patch": [200],
    "put": [200],
    "post": [201],
    "delete": [204],
}

# --- the partners layer: regions from states, metros from counties, drawn areas -------------

# Regions composed from states, overlapping where a state is in two of them.
REGIONS = {
    "Pacific": ["CA", "OR", "WA"],
    "Mountain": ["NV", "UT", "AZ", "CO", "NM", "ID"],
    "Plains": ["ND", "SD", "NE", "KS", "OK"],
    "Texas and neighbours": ["TX", "OK", "NM", "LA"],
    "Great Lakes": ["MI", "WI", "MN", "OH"],
    "Midwest": ["IL", "IN", "OH", "IA", "MO"],
    "Southeast": ["FL", "GA", "AL", "SC", "NC"],
    "South Central": ["LA", "AR", "MS", "TN", "KY"],
    "Northeast": ["NY", "NJ", "PA", "CT", "MA", "RI"],
    "New England": ["MA", "VT", "NH", "ME", "CT", "RI"],
}
# Metro areas composed from counties (FIPS), on top of the regions.
METROS = {
    "Los Angeles": ["06037", "06059", "06065", "06071"],
    "Bay Area": ["06001", "06013", "06075", "06081", "06085"],
    "Seattle": ["53033", "53061", "53053"],
    "Chicago": ["17031", "17043", "17097", "17197"],
    "New York": ["36005", "36047", "36061", "36081", "36085"],
    "Houston": ["48201", "48157", "48339"],
    "Dallas": ["48113", "48439", "48085", "48121"],
    "Atlanta": ["13121", "13089", "13067", "13135"],
    "Miami": ["12086", "12011", "12099"],
    "Denver": ["08031", "08005", "08059", "08001"],
    "Phoenix": ["04013"],
    "Boston": ["25025", "25017", "25021"],
    "Detroit": ["26163", "26125", "26099"],
    "Minneapolis": ["27053", "27123"],
    "Philadelphia": ["42101", "42091", "42045", "42017"],
}
# Drawn areas: (lon, lat, radius in degrees) of a blob the PUTs move and reshape around there.
DRAWN = {
    "Portland": (-122.68, 45.52, 0.5),
    "Sacramento": (-121.49, 38.58, 0.6),
    "San Diego": (-117.16, 32.72, 0.5),
    "Las Vegas": (-115.14, 36.17, 0.7),
    "Salt Lake": (-111.89, 40.76, 0.6),
    "Austin": (-97.74, 30.27, 0.6),
    "Kansas City": (-94.58, 39.10, 0.6),
    "St. Louis": (-90.20, 38.63, 0.6),
    "Nashville": (-86.78, 36.16, 0.6),
    "Charlotte": (-80.84, 35.23, 0.6),
    "Washington": (-77.04, 38.91, 0.5),
    "Pittsburgh": (-80.00, 40.44, 0.5),
}


@dataclass
class Partners:
    """The partners layer as created: territory ids by name, the drawn ones' home spots."""

    ids: dict[str, int]
    home: dict[int, tuple[float, float, float]]  # drawn territory id -> lon, lat, radius


@dataclass
class Plan:
    """A schedule of requests for the load generator, and what its edits touch."""

    items: list[dict[str, Any]] = field(default_factory=list)
    edited: set[int] = field(default_factory=set)  # partners territory ids patched or put
    shapes: list[dict[str, Any]] = field(default_factory=list)  # every geometry sent
    pending: list[str] = field(default_factory=list)  # POSTs made, not yet deleted
    posts: int = 0


@dataclass
class Bench:
    """The run's settings, where it stands and what it found."""

    args: argparse.Namespace
    lon: np.ndarray  # the demo customers' positions
    lat: np.ndarray
    workdir: Path
    url: str = ""
    port: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # an admin API key, on every request
    pgid: int = 0  # the server's process group
    partners: Partners = field(default_factory=lambda: Partners({}, {}))
    results: dict[str, Any] = field(default_factory=dict)  # loadgen's summary of the run
    agreement: list[list[str]] = field(default_factory=list)  # rows of the agreement table
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --- HTTP set-up ---------------------------------------------------------------------------


def call(bench: Bench, method: str, path: str, body: Any = None, timeout: float = 600) -> Any:
    """One request on a fresh connection; its JSON answer. A status >= 300 is a BenchmarkError."""
    conn = http.client.HTTPConnection(HOST, bench.port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json", **bench.headers}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    if response.status >= 300:
        raise BenchmarkError(f"{method} {path}: HTTP {response.status}: {raw[:500]!r}")
    return json.loads(raw) if raw else None


def blob(rng: np.random.Generator, lon: float, lat: float, radius: float) -> dict[str, Any]:
    """A random star-shaped polygon around (lon, lat): vertices in angle order, so always simple
    (and counter-clockwise, as RFC 7946 wants an exterior ring)."""
    k = int(rng.integers(6, 25))
    step = 2 * math.pi / k
    angles = np.arange(k) * step + rng.uniform(0, 0.8 * step, k)  # distinct, in order
    r = radius * rng.uniform(0.5, 1.3, k)
    xs = lon + r * np.cos(angles) / math.cos(math.radians(lat))  # roughly round on the ground
    ys = lat + r * np.sin(angles)
    ring = [[round(x, 5), round(y, 5)] for x, y in zip(xs.tolist(), ys.tolist(), strict=True)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def feature(geometry: dict[str, Any], name: str, owner: str, priority: int) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"name": name, "owner": owner, "priority": priority},
    }


def create_partners(bench: Bench, rng: np.random.Generator) -> Partners:
    """The partners layer over HTTP: regions (priority 3, some exclusive), metros (priority 1),
    drawn areas (priority 0-2). Regions overlap each other, metros and drawn areas lie on them."""
    call(bench, "POST", "/layers", {"name": PARTNERS, "title": "Partner plan (load test)"})
    path = f"/layers/{PARTNERS}/territories"
    ids: dict[str, int] = {}
    for i, (name, states) in enumerate(REGIONS.items()):
        body = {"name": name, "states": states, "owner": f"Region partner {i % 4}",
                "priority": 3, "exclusive": i % 3 == 0}  # fmt: skip
        ids[name] = call(bench, "POST", path, body)["id"]
    for i, (name, counties) in enumerate(METROS.items()):
        body = {"name": name, "counties": counties, "owner": f"Metro partner {i % 5}",
                "priority": 1}  # fmt: skip
        ids[name] = call(bench, "POST", path, body)["id"]
    home = {}
    for name, (lon, lat, radius) in DRAWN.items():
        body = feature(blob(rng, lon, lat, radius), name, "Field team", int(rng.integers(0, 3)))
        ids[name] = call(bench, "POST", path, body)["id"]
        home[ids[name]] = (lon, lat, radius)
    return Partners(ids, home)


# --- the schedule --------------------------------------------------------------------------


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The web-mercator tile x, y holding (lon, lat) at zoom z."""
    n = 2**z
    lat = max(min(lat, 85.0511), -85.0511)
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


class Scheduler:
    """Draws the requests of a run: which kind, which layer, which point, which edit."""

    def __init__(self, bench: Bench, seed: int, name: str) -> None:
        self.rng = np.random.default_rng(seed)
        self.name = name  # of the run: part of the names of the territories it creates
        self.lon, self.lat = bench.lon, bench.lat
        self.partners = bench.partners
        self.plan = Plan()

    def customer(self) -> tuple[float, float]:
        i = int(self.rng.integers(self.lon.size))
        return float(self.lon[i]), float(self.lat[i])  # Python floats: repr round-trips

    def layer(self) -> str:
        return LOOKUP_LAYERS[int(self.rng.integers(len(LOOKUP_LAYERS)))]

    def pick(self, shares: dict[str, float]) -> str:
        return str(self.rng.choice(list(shares), p=list(shares.values())))

    def item(self, kind: str, method: str, path: str, layer: str, **extra: Any) -> dict[str, Any]:
        return {"label": f"{kind}:{layer}", "method": method, "path": path,
                "expect": EXPECT[kind], **extra}  # fmt: skip

    def lookup(self) -> dict[str, Any]:
        lon, lat = self.customer()
        layer = self.layer()
        return self.item("lookup", "GET", f"/lookup?lon={lon!r}&lat={lat!r}&layer={layer}", layer)

    def coverage(self) -> dict[str, Any]:
        """Whole layer or a viewport (about 4 x 2 tiles at that zoom, snapped to half of it, as
        a map panned in steps asks again for the same boxes) at zoom 4-8."""
        layer, zoom = self.layer(), int(self.rng.integers(4, 9))
        path = f"/layers/{layer}/coverage?zoom={zoom}"
        if self.rng.random() < 0.5:
            lon, lat = self.customer()
            width = 4 * 360 / 2**zoom
            x0 = math.floor(lon / (width / 2)) * width / 2 - width / 2
            # Kept within -180..180 (the service refuses a bbox beyond it, rightly): at zoom 4
            # a viewport is 90 degrees wide, and one around Hawaii began at -202.5.
            x0 = min(max(x0, -180.0), 180.0 - width)
            y0 = max(math.floor(lat / (width / 4)) * width / 4 - width / 4, -85.0)
            path += f"&bbox={x0:g},{y0:g},{x0 + width:g},{min(y0 + width / 2, 85.0):g}"
        return self.item("coverage", "GET", path, layer, revalidate=True)

    def tile(self) -> dict[str, Any]:
        layer, z = self.layer(), int(self.rng.integers(4, 11))
        x, y = tile_of(*self.customer(), z)
        return self.item("tile", "GET", f"/tiles/{layer}/{z}/{x}/{y}.mvt", layer, revalidate=True)

    def edit(self) -> dict[str, Any]:
        """One edit of the partners layer; a DELETE only of what an earlier POST made."""
        kind = self.pick(EDITS)
        if kind == "delete" and not self.plan.pending:
            kind = "post"
        path = f"/layers/{PARTNERS}/territories"
        if kind == "patch":
            tid = int(self.rng.choice(list(self.partners.ids.values())))
            self.plan.edited.add(tid)
            changes: list[dict[str, Any]] = [{"owner": f"Partner {self.rng.integers(20)}"},
                       {"priority": int(self.rng.integers(0, 4))}]  # fmt: skip
            body = [changes[0], changes[1], changes[0] | changes[1]][self.rng.integers(3)]
            return self.item("patch", "PATCH", f"{path}/{tid}", PARTNERS, body=body)
        if kind == "put":
            tid = int(self.rng.choice(list(self.partners.home)))
            self.plan.edited.add(tid)
            lon, lat, radius = self.partners.home[tid]
            name = next(n for n, i in self.partners.ids.items() if i == tid)
            shape = self.shape(lon, lat, radius)
            body = feature(shape, name, f"Field team {self.rng.integers(5)}", self.priority())
            return self.item("put", "PUT", f"{path}/{tid}", PARTNERS, body=body)
        if kind == "post":
            self.plan.posts += 1
            token = f"{self.name} pop-up {self.plan.posts}"
            self.plan.pending.append(token)
            shape = self.shape(*self.customer(), 0.3)
            body = feature(shape, token, "Pop-up partner", self.priority())
            return self.item("post", "POST", path, PARTNERS, body=body, creates=token)
        token = self.plan.pending.pop(0)
        return self.item("delete", "DELETE", f"{path}/{{id}}", PARTNERS, needs=token)

    def shape(self, lon: float, lat: float, radius: float) -> dict[str, Any]:
        """A blob near (lon, lat), moved by up to half its radius; remembered for the check."""
        shift = self.rng.uniform(-0.5, 0.5, 2) * radius
        geometry = blob(self.rng, lon + shift[0], lat + shift[1], radius)
        self.plan.shapes.append(geometry)
        return geometry

    def priority(self) -> int:
        return int(self.rng.integers(0, 3))

    def make(self, count: int) -> Plan:
        """``count`` requests in the mix."""
        draw = {"lookup": self.lookup, "coverage": self.coverage, "tile": self.tile,
                "edit": self.edit}  # fmt: skip
        self.plan.items = [draw[self.pick(MIX)]() for _ in range(count)]
        return self.plan


def expect_county_owners(bench: Bench, items: list[dict[str, Any]]) -> None:
    """Give each counties look-up the owner PostGIS finds (the counties are never edited)."""
    chosen = [it for it in items if it["label"] == "lookup:counties"]
    points = [_point_of(it["path"]) for it in chosen]
    if not points:
        return
    lon, lat = (np.array(v, dtype=np.float64) for v in zip(*points, strict=True))
    found = oracle(bench.url, "counties", lon, lat)
    for item, covering in zip(chosen, found["covering"], strict=True):
        item["owner"] = covering[0] if covering else None


def _point_of(path: str) -> tuple[float, float]:
    query = dict(kv.split("=") for kv in path.split("?", 1)[1].split("&"))
    return float(query["lon"]), float(query["lat"])


# --- running the load ----------------------------------------------------------------------


def run_loadgen(bench: Bench, plan: Plan, seconds: float, name: str) -> dict[str, Any]:
    """bench.loadgen (mixed mode) in its own process; its JSON summary."""
    args = bench.args
    spec = {"mode": "mixed", "host": HOST, "port": bench.port, "rate": args.rate,
            "seconds": seconds, "connections": args.connections, "timeout": args.timeout,
            "items": plan.items, "headers": bench.headers}  # fmt: skip
    path = bench.workdir / f"{name}.json"
    path.write_bytes(orjson.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 10 * args.timeout + 120,
    )
    if proc.returncode != 0:
        raise BenchmarkError(f"loadgen failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def cpu_during(bench: Bench, label: str) -> Iterator[None]:
    """Note how busy the machine was during a phase, and how much of it was other people's
    (processes outside this process group and the server's, other than PostgreSQL backends of
    the bench database; short-lived ones that came and went in between are not seen)."""
    before, ticks0, started = _processes(), _busy_ticks(), time.perf_counter()
    yield
    after, ticks1 = _processes(), _busy_ticks()
    hz, seconds = os.sysconf("SC_CLK_TCK"), time.perf_counter() - started
    used = sorted(
        ((ticks - before[pid][1]) / hz / seconds, command)
        for pid, (group, ticks, command) in after.items()
        if pid in before
        and group not in (os.getpgrp(), bench.pgid)
        and bench.args.database not in command
    )[::-1]
    busy = (ticks1[1] - ticks0[1]) / max(ticks1[0] - ticks0[0], 1)
    top = "; ".join(f"{cores:.2f} `{command[:60].strip()}`" for cores, command in used[:2])
    bench.notes.append(
        f"CPU during {label} ({seconds:.0f} s): the machine {busy * 100:.0f} % busy (all "
        f"{os.cpu_count()} cores); not the bench: {sum(c for c, _ in used):.2f} cores "
        f"(top: {top}); load average after: {loadavg()}"
    )


def count_errors(bench: Bench, found: dict[str, Any], phase: str) -> None:
    """Every error and wrong owner of a phase is a failure, warm-up included."""
    total = found["all"]
    if total["error_count"] or total["wrong"] or total["answered"] != total["requests"]:
        shown = [e for lab in found["labels"].values() for e in lab["errors"]][:5]
        bench.failures.append(
            f"{phase}: {total['error_count']} errors, {total['wrong']} wrong counties owners, "
            f"{total['answered']:,} of {total['requests']:,} answered; e.g. {shown}"
        )


# --- the agreement check -------------------------------------------------------------------

# Every point's covering territories in the order of the ownership rule (ST_Covers, then the
# lowest priority, the smallest area, the smallest id: app/repositories/assignments.py _OWNERS
# and tests/app/test_ownership_oracle.py), with the priorities and areas the rule looked at.
_ORACLE = """
SELECT coalesce(o.ids, '{}'), coalesce(o.pr, '{}'), coalesce(o.ar, '{}')
FROM unnest(%(xs)s::float8[], %(ys)s::float8[]) WITH ORDINALITY AS p(x, y, i)
LEFT JOIN LATERAL (
    SELECT array_agg(t.id ORDER BY t.priority, t.area_m2, t.id) AS ids,
           array_agg(t.priority ORDER BY t.priority, t.area_m2, t.id) AS pr,
           array_agg(t.area_m2 ORDER BY t.priority, t.area_m2, t.id) AS ar
    FROM territories t
    WHERE t.layer_id = (SELECT id FROM layers WHERE name = %(layer)s)
      AND ST_Covers(t.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
) o ON true
ORDER BY p.i
"""
_REFS = """
SELECT t.id, t.name, t.owner FROM territories t JOIN layers l ON l.id = t.layer_id
WHERE l.name = %s
"""
# Stored assignments of a layer against the rule, customer by customer (no pins here).
_ASSIGNED_DIFFER = """
SELECT count(*) FROM customers c
LEFT JOIN assignments a ON a.customer_id = c.id AND a.layer_id = %(layer_id)s
LEFT JOIN LATERAL (
    SELECT t.id FROM territories t
    WHERE t.layer_id = %(layer_id)s AND ST_Covers(t.geom, c.geom)
    ORDER BY t.priority, t.area_m2, t.id LIMIT 1
) o ON true
WHERE a.territory_id IS DISTINCT FROM o.id
"""


def _rule(priority: list[int], area: list[float]) -> str | None:
    """The deciding rule, as the engine names it, from the covering territories in rule order."""
    if not priority:
        return None
    if len(priority) == 1:
        return "only"
    if priority[0] != priority[1]:
        return "priority"
    return "area" if area[0] != area[1] else "id"


def oracle(url: str, layer: str, lon: np.ndarray, lat: np.ndarray) -> dict[str, Any]:
    """PostGIS's answer for every point: covering ids in rule order, the rule, names/owners."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        params = {"xs": lon.tolist(), "ys": lat.tolist(), "layer": layer}
        rows = conn.execute(_ORACLE, params).fetchall()
        names = conn.execute(_REFS, (layer,)).fetchall()
    refs = {r[0]: {"id": r[0], "name": r[1], "owner": r[2]} for r in names}
    return {
        "covering": [list(r[0]) for r in rows],
        "rule": [_rule(list(r[1]), list(r[2])) for r in rows],
        "refs": refs,
    }


def check_points(bench: Bench, plan: Plan) -> np.ndarray:
    """(lon, lat) rows: --sample random points (half uniform over the continental US, half at
    customers), and the vertices (up to --vertices each), centroids and points on surface of
    every edited partners territory as stored now and of every shape sent."""
    args = bench.args
    rng = np.random.default_rng(args.seed + 7)
    half = args.sample // 2
    uniform = np.column_stack([rng.uniform(CONUS[0], CONUS[2], half),
                               rng.uniform(CONUS[1], CONUS[3], half)])  # fmt: skip
    at = rng.integers(bench.lon.size, size=args.sample - half)
    shapes = [shapely.geometry.shape(g) for g in plan.shapes] + stored_shapes(bench, plan)
    parts = [uniform, np.column_stack([bench.lon[at], bench.lat[at]])]
    for geom in shapes:
        vertices = shapely.get_coordinates(geom)
        if len(vertices) > args.vertices:
            vertices = vertices[rng.choice(len(vertices), args.vertices, replace=False)]
        inner = [geom.centroid, geom.point_on_surface()]
        parts += [vertices, shapely.get_coordinates(inner)]
    return np.unique(np.vstack(parts), axis=0)


def stored_shapes(bench: Bench, plan: Plan) -> list[Any]:
    """The edited partners territories and those the load created, as stored now."""
    created = set(bench.results.get("created", {}).values())
    with psycopg.connect(conninfo(bench.url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT ST_AsBinary(geom) FROM territories WHERE id = ANY(%s)",
            (sorted(plan.edited | created),),
        ).fetchall()
    return [shapely.from_wkb(bytes(r[0])) for r in rows]


async def _timed(call: Coroutine[Any, Any, T], what: str) -> T:
    """``call``'s result, or a BenchmarkError if it takes over CHECK_TIMEOUT_S (a stuck worker
    must end the run with a report, not hang it)."""
    try:
        return await asyncio.wait_for(call, CHECK_TIMEOUT_S)
    except TimeoutError:
        raise BenchmarkError(f"check: no answer in {CHECK_TIMEOUT_S:g} s to {what}") from None


async def _worker_of(conn: Connection, port: int) -> int:
    """The pid of the worker that accepted ``conn`` (GET /health names it: X-Worker-Pid)."""
    health = f"GET /health HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    _, headers, _ = await _exchange_full(conn, health)
    return int(headers["x-worker-pid"])


async def pinned_connections(
    port: int, workers: int, per_worker: int, only: int | None = None
) -> dict[int, list[Connection]]:
    """Fresh connections until each of ``workers`` worker pids (or just ``only``) holds
    ``per_worker`` of them: a connection stays with the worker process that accepted it."""
    found: dict[int, list[Connection]] = {}
    wanted = 1 if only is not None else workers
    for _ in range(100 * workers * per_worker):
        if len(found) == wanted and all(len(c) == per_worker for c in found.values()):
            return found
        conn = await asyncio.open_connection(HOST, port)
        pid = await _timed(_worker_of(conn, port), "GET /health")
        mine = found.setdefault(pid, []) if only in (None, pid) else []
        if len(mine) < per_worker:
            mine.append(conn)
        else:
            conn[1].close()
    raise BenchmarkError(f"fresh connections reached only workers {sorted(found)}")


async def ask_pinned(
    port: int, auth: str, pid: int, conn: Connection, paths: list[str]
) -> list[Any]:
    """Every path's JSON answer from worker ``pid``, in order, on ``conn``; should the server
    close it (keep-alive timeout), on a new connection pinned to the same worker."""
    answers = []
    for path in paths:
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}\r\n".encode()
        try:
            status, _, body = await _timed(_exchange_full(conn, request), f"{path} on {pid}")
        except (ConnectionError, asyncio.IncompleteReadError):
            conn[1].close()
            conn = (await pinned_connections(port, 1, 1, only=pid))[pid][0]
            status, _, body = await _timed(_exchange_full(conn, request), f"{path} on {pid}")
        if status != 200:
            raise BenchmarkError(f"GET {path} on worker {pid}: HTTP {status}: {body[:300]!r}")
        answers.append(orjson.loads(body))
    conn[1].close()
    return answers


async def ask_workers(
    bench: Bench, workers: int, paths: list[str], per_worker: int = 2
) -> dict[int, list[Any]]:
    """Every path's JSON answer from every worker, in order: pid -> answers. All workers are
    asked at once, each on ``per_worker`` connections taking every per_worker-th path."""
    port = bench.port
    auth = "".join(f"{name}: {value}\r\n" for name, value in bench.headers.items())
    pinned = await pinned_connections(port, workers, per_worker)
    jobs = [(pid, k, conn) for pid, conns in pinned.items() for k, conn in enumerate(conns)]
    parts = await asyncio.gather(
        *(ask_pinned(port, auth, pid, conn, paths[k::per_worker]) for pid, k, conn in jobs)
    )
    found: dict[int, list[Any]] = {pid: [None] * len(paths) for pid in pinned}
    for (pid, k, _), part in zip(jobs, parts, strict=True):
        found[pid][k::per_worker] = part
    return found


def differences(answers: list[dict[str, Any]], truth: dict[str, Any]) -> list[int]:
    """Indexes of the answers that differ from PostGIS: owner (id, name, owner), rule or the
    covering territories (as a set)."""
    refs, wrong = truth["refs"], []
    for i, (got, covering, rule) in enumerate(zip(answers, truth["covering"], truth["rule"],
                                                  strict=True)):  # fmt: skip
        want_owner = refs[covering[0]] if covering else None
        got_covering = sorted(c["id"] for c in got["covering"])
        if got["owner"] != want_owner or got["rule"] != rule or got_covering != sorted(covering):
            wrong.append(i)
    return wrong


def check_agreement(bench: Bench, plan: Plan) -> None:
    """Every layer, every worker, every check point against PostGIS; then the partners'
    stored assignments. Points that differ are asked again after 10 s more, to tell a worker
    that lags from one that is wrong."""
    points = check_points(bench, plan)
    layers = ["states", *LOOKUP_LAYERS]
    for layer in layers:
        lon, lat = points[:, 0], points[:, 1]
        truth = oracle(bench.url, layer, lon, lat)
        paths = [f"/lookup?lon={x!r}&lat={y!r}&layer={layer}" for x, y in points.tolist()]
        started = time.perf_counter()
        by_worker = asyncio.run(ask_workers(bench, bench.args.workers, paths))
        seconds = time.perf_counter() - started
        for pid, answers in sorted(by_worker.items()):
            wrong = differences(answers, truth)
            later = recheck(bench, [paths[i] for i in wrong], truth, wrong) if wrong else 0
            bench.agreement.append([layer, f"{len(points):,}", str(pid), str(len(wrong)),
                                    str(later), f"{seconds:.1f}"])  # fmt: skip
            if wrong:
                shown = [(points[i].tolist(), answers[i]["owner"], truth["covering"][i][:3])
                         for i in wrong[:3]]  # fmt: skip
                bench.failures.append(
                    f"worker {pid}, layer {layer}: {len(wrong)} of {len(points):,} answers "
                    f"differ from PostGIS ({later} still after 10 s more); e.g. {shown}"
                )
    assignments_agree(bench)


def recheck(bench: Bench, paths: list[str], truth: dict[str, Any], at: list[int]) -> int:
    """How many of the points ``at`` (``paths``) still differ on some worker after 10 s more."""
    time.sleep(10)
    again = asyncio.run(ask_workers(bench, bench.args.workers, paths, per_worker=1))
    subset = {key: [truth[key][i] for i in at] for key in ("covering", "rule")}
    subset["refs"] = truth["refs"]
    return max(len(differences(answers, subset)) for answers in again.values())


def assignments_agree(bench: Bench) -> None:
    """The partners layer's stored assignments, kept current by every edit, against PostGIS."""
    with psycopg.connect(conninfo(bench.url), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        layer_id = conn.execute("SELECT id FROM layers WHERE name = %s", (PARTNERS,)).fetchone()
        assert layer_id is not None
        differ = conn.execute(_ASSIGNED_DIFFER, {"layer_id": layer_id[0]}).fetchone()
    count = int(differ[0]) if differ else -1
    bench.notes.append(
        f"{PARTNERS}: stored assignments of all {bench.lon.size:,} customers vs PostGIS after "
        f"the edits: {count} differ"
    )
    if count:
        bench.failures.append(f"{PARTNERS}: {count} stored assignments differ from PostGIS")


# --- the report ----------------------------------------------------------------------------

HEADERS = ("Route", "Layer", "Requests", "Share", "p50 ms", "p99 ms", "Max ms", "Errors", "Notes")
AGREE_HEADERS = ("Layer", "Points", "Worker pid", "Differences", "Still after 10 s", "Check s")


def _label_cells(label: str, found: dict[str, Any], total: int) -> list[str]:
    kind, _, layer = label.partition(":")
    statuses = ", ".join(f"{k}: {v:,}" for k, v in found["statuses"].items())
    note = f"statuses {statuses or 'none (no answer)'}"
    if found["revalidated"]:
        note += f"; {found['revalidated']:,} sent with If-None-Match"
    if found["wrong"]:
        note += f"; **{found['wrong']} wrong owners**"
    if kind == "lookup" and layer == "counties":
        note += f"; owners checked against PostGIS: {found['wrong']} wrong"
    if found["answered"]:
        note += (f"; from the send: p50 {found['service_p50_ms']:.2f}, "
                 f"p99 {found['service_p99_ms']:.2f}")  # fmt: skip

    def ms(value: float, digits: int = 2) -> str:
        return "-" if math.isnan(value) else f"{value:,.{digits}f}"

    return [ROUTES.get(kind, kind), layer or "all", f"{found['requests']:,}",
            f"{found['requests'] / max(total, 1) * 100:.1f} %", ms(found["p50_ms"]),
            ms(found["p99_ms"]), ms(found["max_ms"], 1), str(found["error_count"]),
            note]  # fmt: skip


def load_rows(bench: Bench) -> list[list[str]]:
    """One row per route template and layer, in the order of ROUTES, then all together."""
    found = bench.results
    total = found["all"]["requests"]
    order = {kind: i for i, kind in enumerate(ROUTES)}
    labels = sorted(found["labels"], key=lambda lab: (order[lab.split(":")[0]], lab))
    rows = [_label_cells(lab, found["labels"][lab], total) for lab in labels]
    everything = _label_cells("all:", found["all"], total)
    rate = found["all"]["answered"] / found["seconds"]
    everything[0] = "all"
    everything[-1] = (f"achieved {rate:,.1f} req/s ({found['all']['answered']:,} answered in "
                      f"{found['seconds']:.1f} s); {found['connections_opened']} connections "
                      f"opened; generator lag p99 {found['lag_p99_ms']:.2f} ms, max "
                      f"{found['lag_max_ms']:.1f} ms")  # fmt: skip
    return [*rows, everything]


def report(bench: Bench, context: dict[str, Any]) -> int:
    """Print the tables (rich, then Markdown) and write --markdown; 1 on any failure."""
    out = Console(width=240)
    args = bench.args
    title = (f"Load test (issue 6): {args.rate:g} req/s for {args.seconds:g} s, open loop, "
             f"uvicorn --workers {args.workers}, N = {bench.lon.size:,} customers")  # fmt: skip
    rows = load_rows(bench) if bench.results else []
    notes = [*bench.notes, *context_notes(bench, context)]
    out.print(rich_table(title, HEADERS, [[escape(c) for c in r] for r in rows], 8))
    agree_title = "Afterwards: every worker's GET /lookup vs PostGIS"
    out.print(rich_table(agree_title, AGREE_HEADERS, bench.agreement, 6))
    for line in notes:
        out.print("- " + line, markup=False)
    for failure in bench.failures:
        out.print(f"FAIL: {failure}", markup=False, style="bold red")
    markdown = "\n".join(
        [
            markdown_table(HEADERS, rows, 8),
            "",
            markdown_table(AGREE_HEADERS, bench.agreement, 6),
            "",
            *(f"- {line}" for line in notes),
            *(f"- **FAIL: {failure}**" for failure in bench.failures),
        ]
    )
    print("\n<!-- markdown -->\n" + markdown)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n", encoding="utf-8")
    return 1 if bench.failures else 0


def context_notes(bench: Bench, context: dict[str, Any]) -> list[str]:
    """How, where and when: the server, the mix, the machine, the versions, the command."""
    args = bench.args
    server_env = ", ".join(  # settings the server inherits (e.g. TERRITORY_POOL_SIZE)
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("TERRITORY_")
    )
    return [
        f"Server: `{shlex.join(uvicorn_command('app.main:app', 0, args.workers))}` (a free "
        f"port), TERRITORY_DATABASE_URL = the scratch database {args.database}; the load generator "
        "(bench/loadgen.py, mixed mode) in its own process on the same machine.",
        f"Mix: {', '.join(f'{k} {v * 100:g} %' for k, v in MIX.items())}; edits: "
        f"{', '.join(f'{k} {v * 100:g} %' for k, v in EDITS.items())} (a DELETE removes what an "
        "earlier POST made). Latency from each request's due time (start + i / rate), so a "
        f"stalled server cannot hide its queue; timeout {args.timeout:g} s (an error; the "
        "percentiles are of the answered requests only, - when none was); "
        f"{args.warmup:g} s of the same mix before, untimed (its errors count).",
        f"Data: boundaries (states, counties), {bench.lon.size:,} demo customers "
        f"(seed {args.seed}) assigned to the counties and the partners; partners: "
        f"{len(REGIONS)} regions from states (priority 3), {len(METROS)} metros from counties "
        f"(priority 1), {len(DRAWN)} drawn areas (priority 0-2), overlapping.",
        f"Agreement: after {args.quiet:g} s of quiet, each worker on its own connections "
        f"(X-Worker-Pid), {args.sample:,} random points plus the vertices (up to "
        f"{args.vertices} each), centroids and points on surface of every edited territory "
        "and every shape sent; owner (id, name, owner), rule and covering set vs ST_Covers + "
        "priority, area, id.",
        f"Server environment beyond the database URL: {server_env or 'none'}.",
        f"Machine busy before the run: {context['busy'] * 100:.0f} % of all cores (1 s sample); "
        f"load average before {context['load_start']}, after {loadavg()}; other people's jobs "
        "share these 2 cores.",
        f"{context.get('info', '')}",
        f"started {context['started']:%Y-%m-%d %H:%M} UTC, took {context['took']:.0f} s; "
        f"command: `{context['command']}`",
    ]


# --- the run -------------------------------------------------------------------------------


def _step(label: str, run: Any) -> Any:
    console.log(f"[bold]{label}[/bold] ...")
    started = time.perf_counter()
    result = run()
    console.log(f"{label}: done in {time.perf_counter() - started:.1f} s")
    return result


def set_up(bench: Bench, context: dict[str, Any]) -> None:
    """Migrate, load boundaries and customers (before the server starts)."""
    engine = make_engine(bench.url, Settings(database=DatabaseSettings(url=bench.url)))
    try:
        migrate(engine)
        bench.notes += load_data(engine, bench.lon.size, bench.args.seed)
        context["info"] = info_line(engine)
    finally:
        engine.dispose()


def set_up_partners(bench: Bench) -> None:
    """The partners layer, and every customer assigned to the counties and to the partners."""
    bench.partners = create_partners(bench, np.random.default_rng(bench.args.seed))
    for layer in LOOKUP_LAYERS:
        done = call(bench, "POST", f"/layers/{layer}/assign")
        bench.notes.append(f"POST /layers/{layer}/assign: {done}")


def load(bench: Bench) -> Plan:
    """Warm-up, then the timed run; both plans' edits count for the check."""
    args = bench.args
    warm = Scheduler(bench, args.seed + 1, "warm-up").make(round(args.rate * args.warmup))
    if warm.items:
        found = _step("warm-up", lambda: run_loadgen(bench, warm, args.warmup, "warmup"))
        count_errors(bench, found, "warm-up")
    plan = Scheduler(bench, args.seed + 2, "load").make(round(args.rate * args.seconds))
    expect_county_owners(bench, plan.items)
    with cpu_during(bench, "the timed run"):
        bench.results = _step("load", lambda: run_loadgen(bench, plan, args.seconds, "load"))
    count_errors(bench, bench.results, "load")
    plan.edited |= warm.edited
    plan.shapes += warm.shapes
    return plan


def run_all(bench: Bench, context: dict[str, Any]) -> None:
    """Set up, start the server, load it, check it."""
    args = bench.args
    with scratch_database(args.keep, args.database) as url:
        bench.url = url
        _step("setup: boundaries, customers", lambda: set_up(bench, context))
        bench.port = free_port()
        bench.headers = admin_headers(url)
        env = {**os.environ, "DATABASE_URL": url, "TERRITORY_DATABASE_URL": url,
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        cmd = uvicorn_command("app.main:app", bench.port, args.workers)
        log = Path(args.server_log) if args.server_log else bench.workdir / "server.log"
        with server(cmd, env, bench.port, log) as pgid:
            bench.pgid = pgid
            _step("setup: partners, assignments", lambda: set_up_partners(bench))
            plan = load(bench)
            time.sleep(args.quiet)  # every worker hears of the last edits (LISTEN/NOTIFY)
            _step("check: every worker vs PostGIS", lambda: check_agreement(bench, plan))


def main(argv: list[str] | None = None) -> int:
    """Run the load test; exit status 1 on any error or disagreement."""
    args = parse_args(argv)
    context: dict[str, Any] = {
        "started": datetime.now(UTC),
        "busy": cpu_busy(),
        "load_start": loadavg(),
        "command": shlex.join([".venv/bin/python", "-m", "bench.bench_load", *args.argv]),
    }
    batch = demo.generate(args.customers, seed=args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        lon, lat = np.asarray(batch.lon, np.float64), np.asarray(batch.lat, np.float64)
        bench = Bench(args, lon, lat, Path(tmp))
        try:
            run_all(bench, context)
        except BenchmarkError as exc:
            bench.failures.append(f"stopped: {exc}")
    context["took"] = time.perf_counter() - started
    return report(bench, context)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_load",
        description="Load test (issue 6): open-loop mixed load (look-ups, coverage and tiles, "
        "edits) on uvicorn app.main:app with several workers over loopback, then every "
        f"worker's index against PostGIS; scratch database {BENCH_DB} on the embedded cluster.",
    )
    add = parser.add_argument
    add("--customers", type=int, default=100_000, help="N demo customers (default 100000)")
    add("--seed", type=int, default=42, help="seed of the customers and the schedule (42)")
    add("--rate", type=float, default=200, help="total requests per second (default 200)")
    add("--seconds", type=float, default=60, help="seconds of timed load (default 60)")
    add("--warmup", type=float, default=10, help="seconds of the mix before, untimed (10)")
    add("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    add("--connections", type=int, default=32, help="keep-alive connections opened first (32)")
    add("--timeout", type=float, default=30, help="seconds a request may take (default 30)")
    add("--quiet", type=float, default=2, help="seconds of quiet before the check (default 2)")
    add("--sample", type=int, default=5000, help="random check points (default 5000)")
    add("--vertices", type=int, default=100, help="check vertices per edited territory (100)")
    add("--database", default=BENCH_DB, help=f"the scratch database's name ({BENCH_DB})")
    add("--keep", action="store_true", help="keep the scratch database at the end")
    add("--server-log", help="keep the server's output (warnings, errors) in this file")
    add("--markdown", help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if min(args.customers, args.rate, args.seconds, args.workers, args.sample) <= 0:
        parser.error("--customers, --rate, --seconds, --workers and --sample must be > 0")
    return args


if __name__ == "__main__":
    raise SystemExit(main())
