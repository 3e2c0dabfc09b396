"""HTTP benchmark (issue 3): ``GET`` and ``POST /lookup`` over loopback, real server processes.

Builds a scratch database (``territory_bench_http`` on the embedded cluster, dropped and
re-created at the start and dropped at the end) with the reference boundaries, draws N demo
customer points (``app.demo.generate``; look-ups need points, not stored customers), works out
every point's owner in PostGIS with the ownership rule, and then measures on the counties layer:

1. ``GET /lookup`` maximum throughput with ``wrk`` (a second process, a Lua script rotating
   through many points): ours (``uvicorn app.main:app``) against an endpoint that asks PostGIS
   on every request (``uvicorn bench.http_postgis:app``), same uvicorn settings and workers;
2. ``GET /lookup`` latency at a constant 500 requests/s, open loop (``bench/loadgen.py`` in a
   second process, latency measured from each request's due time), both servers;
3. ``POST /lookup`` with N (100,000) points end to end over HTTP: points JSON, a GeoJSON
   FeatureCollection, and NDJSON out; PostGIS over the same points in one statement for scale.

Every answer counted is checked: the GET answers of a sample (and every open-loop answer)
against PostGIS, every POST answer against PostGIS. Any difference, error or non-200 makes the
run fail (exit status 1) after the report. See bench/README.md.

    .venv/bin/python -m bench.bench_http
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import psycopg
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session

from app import boundaries, demo
from app.db import make_engine, migrate
from app.notify import conninfo
from app.repositories import layers as layer_repo
from app.settings import DatabaseSettings, Settings
from bench.auth import admin_headers
from bench.bench_assign import _POINT_SQL, loadavg, markdown_table, rich_table, scratch_database
from bench.bench_store import BenchmarkError, info_line
from bench.http_postgis import POINT_SQL

BENCH_DB = "territory_bench_http"  # never territory, territory_test*, territory_bench*
LAYER = "counties"
HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NDJSON = "application/x-ndjson"

MAX_RPS = "1. GET /lookup, max throughput"
FIXED = "2. GET /lookup, fixed rate"
BATCH = "3. POST /lookup, N points"
OURS_APP, THEIRS_APP = "app.main:app", "bench.http_postgis:app"

# Every point's owner under the ownership rule, in one statement (the same subquery per point
# as the contender's prepared statement).
_ALL_OWNERS = """
SELECT (SELECT t.id FROM territories t WHERE t.layer_id = %s
          AND ST_Covers(t.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
        ORDER BY t.priority, t.area_m2, t.id LIMIT 1)
FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(lon, lat, i)
ORDER BY p.i
"""

console = Console(stderr=True)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Row:
    """One line of the results table."""

    section: str
    contender: str
    requests: int
    seconds: float | None
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    note: str = ""


@dataclass
class Bench:
    """The points, their owners by PostGIS, the servers' ports, and what was found."""

    args: argparse.Namespace
    lon: FloatArray
    lat: FloatArray
    owner: IntArray  # PostGIS, -1: no territory covers the point
    ports: dict[str, int] = field(default_factory=dict)  # contender -> port
    pgids: set[int] = field(default_factory=set)  # the servers' process groups
    workdir: Path = Path()
    rows: list[Row] = field(default_factory=list)
    key: dict[str, float] = field(default_factory=dict)  # figures for the targets
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # an API key, sent to both servers

    @property
    def n(self) -> int:
        return int(self.lon.size)

    def paths(self, count: int) -> list[str]:
        """GET /lookup paths of the first ``count`` points (repeated if count > N)."""
        lon, lat = self.lon.tolist(), self.lat.tolist()  # Python floats: repr round-trips
        return [
            f"/lookup?lon={lon[i % self.n]!r}&lat={lat[i % self.n]!r}&layer={LAYER}"
            for i in range(count)
        ]

    def expected(self, count: int) -> list[int | None]:
        """The PostGIS owner id of the first ``count`` points (None: no owner)."""
        return [None if o < 0 else int(o) for o in np.resize(self.owner, count).tolist()]


# --- machine and setup -----------------------------------------------------------------------


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all cores busy over ``seconds`` (/proc/stat), before the bench does anything."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (process group, CPU ticks used so far, command line) of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        found[int(entry.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]), command)
    return found


def _busy_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), sum(values) - values[3] - values[4]  # total, busy (not idle, iowait)


@contextmanager
def others_cpu(bench: Bench, label: str) -> Iterator[None]:
    """Note how busy the machine was during a phase, and how much of it was not the bench.

    Not the bench: processes alive at both ends of the phase outside this process group and
    the servers', other than PostgreSQL backends of the bench database (short-lived ones that
    came and went in between are not seen).
    """
    before, ticks0, started = _processes(), _busy_ticks(), time.perf_counter()
    yield
    after, ticks1 = _processes(), _busy_ticks()
    hz, seconds = os.sysconf("SC_CLK_TCK"), time.perf_counter() - started
    ours = {os.getpgrp(), *bench.pgids}
    used = [
        ((ticks - before[pid][1]) / hz / seconds, command)
        for pid, (group, ticks, command) in after.items()
        if pid in before and group not in ours and BENCH_DB not in command
    ]
    used.sort(reverse=True)
    busy = (ticks1[1] - ticks0[1]) / max(ticks1[0] - ticks0[0], 1)
    top = "; ".join(f"{cores:.2f} `{command[:60].strip()}`" for cores, command in used[:2])
    bench.notes.append(
        f"CPU during {label} ({seconds:.0f} s): the machine {busy * 100:.0f} % busy "
        f"(all {os.cpu_count()} cores); not the bench: {sum(c for c, _ in used):.2f} cores "
        f"(top: {top})"
    )


def wrk_path() -> str:
    """The wrk binary, or an error telling how to install it."""
    found = shutil.which("wrk")
    if not found:
        raise SystemExit(
            "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), then run again"
        )
    return found


def load_layers(url: str) -> tuple[int, str]:
    """Migrate, load the boundaries; the counties layer's id and the versions line."""
    engine = make_engine(url, Settings(database=DatabaseSettings(url=url)))
    try:
        migrate(engine)
        with Session(engine) as session:
            boundaries.load(session, data_dir=Settings().data_dir)
            session.commit()
            layer_id = layer_repo.get_by_name(session, name=LAYER).id
        return layer_id, info_line(engine)
    finally:
        engine.dispose()


def postgis_owners(url: str, layer_id: int, lon: FloatArray, lat: FloatArray) -> tuple[float, Any]:
    """Every point's owner by PostGIS in one statement (-1: none), and its seconds."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        started = time.perf_counter()
        rows = conn.execute(_ALL_OWNERS, (layer_id, lon.tolist(), lat.tolist())).fetchall()
        seconds = time.perf_counter() - started
    return seconds, np.array([-1 if r[0] is None else r[0] for r in rows], dtype=np.int64)


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app_path: str, port: int, workers: int) -> list[str]:
    """The same uvicorn settings for both contenders."""
    return [PYTHON, "-m", "uvicorn", app_path, "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
            "--loop", "uvloop", "--http", "httptools"]  # fmt: skip


@contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """A server process group on ``port``, ready (GET /health is 200), its id; always ended."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180  # ours builds every layer's index before serving
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"{cmd[3]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield proc.pid  # the group's id too (a new session)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


@contextmanager
def both_servers(bench: Bench, url: str) -> Iterator[None]:
    """Ours and the PostGIS-per-request contender, up together, same uvicorn settings."""
    args = bench.args
    env = {**os.environ, "DATABASE_URL": url, "TERRITORY_DATABASE_URL": url,
           "BENCH_POOL_SIZE": str(args.pool_size), "PYTHONPATH": str(ROOT)}  # fmt: skip
    with ExitStack() as stack:
        for name, app_path in (("ours", OURS_APP), ("postgis", THEIRS_APP)):
            port = free_port()
            cmd = uvicorn_command(app_path, port, args.workers)
            log = bench.workdir / f"{name}.log"
            bench.pgids.add(stack.enter_context(server(cmd, env, port, log)))
            bench.ports[name] = port
        yield


# --- checks --------------------------------------------------------------------------------


def check_get(bench: Bench, name: str) -> None:
    """GET /lookup of the first --check points, one keep-alive connection, against PostGIS."""
    count = min(bench.args.check, bench.n)
    conn = http.client.HTTPConnection(HOST, bench.ports[name], timeout=30)
    wrong, failed = 0, 0
    for path, want in zip(bench.paths(count), bench.expected(count), strict=True):
        conn.request("GET", path, headers=bench.headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            failed += 1
            continue
        owner = orjson.loads(body)["owner"]
        wrong += (None if owner is None else owner["id"]) != want
    conn.close()
    bench.notes.append(
        f"check {name}: GET /lookup of {count:,} points vs PostGIS: {wrong} owners differ, "
        f"{failed} non-200"
    )
    if wrong or failed:
        bench.failures.append(f"{name}: {wrong} GET owners differ from PostGIS, {failed} non-200")


# --- 1. max throughput (wrk) ---------------------------------------------------------------

_LUA = """
local paths = {%(paths)s}
local requests = {}
local i = 0
local counter = 0

function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end

function init(args)
  for k, path in ipairs(paths) do requests[k] = wrk.format("GET", path) end
  i = (offset or 0) %% #requests
end

function request()
  i = i %% #requests + 1
  return requests[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"mean_us": %%.1f, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def write_lua(bench: Bench) -> Path:
    """The wrk script: rotates through --paths points (each thread from its own offset)."""
    paths = ",\n".join(json.dumps(p) for p in bench.paths(min(bench.args.paths, bench.n)))
    script = bench.workdir / "lookup.lua"
    script.write_text(_LUA % {"paths": paths})
    return script


def run_wrk(bench: Bench, port: int, seconds: float) -> dict[str, Any]:
    """One wrk run against ``port``; its JSON summary (latencies in µs)."""
    args = bench.args
    cmd = [wrk_path(), "-t", str(args.threads), "-c", str(args.connections),
           "-d", f"{seconds:g}s", "--timeout", "5s", "-s", str(bench.workdir / "lookup.lua"),
           f"http://{HOST}:{port}/"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchmarkError(f"wrk failed: {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    found: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    found["rps"] = found["requests"] / (found["duration_us"] / 1e6)
    return found


def bench_max_rps(bench: Bench) -> None:
    """wrk on each server, --runs times, alternating; the median run by req/s is reported."""
    args = bench.args
    write_lua(bench)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "postgis": []}
    for name in runs:
        run_wrk(bench, bench.ports[name], args.warmup)  # untimed
    for _ in range(args.runs):
        for name, found in runs.items():
            found.append(run_wrk(bench, bench.ports[name], args.duration))
    median = {name: _median_run(found) for name, found in runs.items()}
    ours_rps = median["ours"]["rps"]
    bench.key["ours_rps"], bench.key["postgis_rps"] = ours_rps, median["postgis"]["rps"]
    for name, label in (("ours", _ours_label(args)), ("postgis", _theirs_label(args))):
        run = median[name]
        errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout"))
        all_rps = ", ".join(f"{r['rps']:,.0f}" for r in runs[name])
        note = (f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
                f"{min(args.paths, bench.n):,} points rotated; median of {args.runs} runs "
                f"(req/s: {all_rps}); errors/non-2xx in the median run: {errors}")  # fmt: skip
        bench.rows.append(Row(MAX_RPS, label, run["requests"], run["duration_us"] / 1e6,
                              run["rps"], run["p50_us"] / 1e3, run["p99_us"] / 1e3,
                              ours_rps / run["rps"], note))  # fmt: skip
        bad = [r for r in runs[name] if any(r[k] for k in ("connect", "read", "write", "status"))]
        if bad:
            bench.failures.append(f"wrk on {name}: errors or non-2xx answers in {len(bad)} run(s)")


def _median_run(found: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(found, key=lambda r: r["rps"])[len(found) // 2]


def _ours_label(args: argparse.Namespace) -> str:
    return f"ours: uvicorn {OURS_APP}, {args.workers} worker(s), index in memory"


def _theirs_label(args: argparse.Namespace) -> str:
    return (f"PostGIS per request: uvicorn {THEIRS_APP}, {args.workers} worker(s), "
            f"{args.pool_size} pooled connections each")  # fmt: skip


# --- 2. fixed rate, open loop ---------------------------------------------------------------


def run_open_loop(bench: Bench, port: int) -> dict[str, Any]:
    """bench.loadgen in its own process at --rate for --rate-seconds; its JSON summary."""
    args = bench.args
    count = round(args.rate * args.rate_seconds)
    spec = {"host": HOST, "port": port, "rate": args.rate, "seconds": args.rate_seconds,
            "connections": args.connections, "paths": bench.paths(count),
            "expected": bench.expected(count), "headers": bench.headers}  # fmt: skip
    path = bench.workdir / f"loadgen-{port}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [PYTHON, "-m", "bench.loadgen", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=args.rate_seconds + 120,
    )
    if proc.returncode != 0:
        raise BenchmarkError(f"loadgen failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_fixed_rate(bench: Bench) -> None:
    """Each server at the same constant rate; p50/p99 from each request's due time."""
    args = bench.args
    found = {}
    for name in ("ours", "postgis"):
        with others_cpu(bench, f"2 fixed rate, {name}"):
            found[name] = run_open_loop(bench, bench.ports[name])
    bench.key["ours_fixed_p99_ms"] = found["ours"]["p99_ms"]
    for name, label in (("ours", _ours_label(args)), ("postgis", _theirs_label(args))):
        r = found[name]
        extra = r["connections_opened"] - args.connections
        note = (f"open loop, {args.rate:g} req/s for {args.rate_seconds:g} s (bench.loadgen, "
                f"{args.connections} keep-alive connections, +{extra} opened, {r['retried']} "
                f"resent on a new one); latency from the due time: p90 {r['p90_ms']:.2f}, "
                f"p99.9 {r['p999_ms']:.2f}, max {r['max_ms']:.2f} ms; from the send: p50 "
                f"{r['service_p50_ms']:.2f}, p99 {r['service_p99_ms']:.2f} ms; generator lag p99 "
                f"{r['lag_p99_ms']:.2f} ms; every answer checked: {r['wrong']} wrong owners, "
                f"{r['error_count']} errors")  # fmt: skip
        rps = r["answered"] / r["seconds"]
        ratio = r["p99_ms"] / found["ours"]["p99_ms"]
        bench.rows.append(Row(FIXED, label, r["requests"], r["seconds"], rps, r["p50_ms"],
                              r["p99_ms"], ratio, note))  # fmt: skip
        if r["wrong"] or r["error_count"] or r["answered"] != r["requests"]:
            bench.failures.append(f"open loop on {name}: {r['wrong']} wrong, "
                                  f"{r['error_count']} errors {r['errors']}")  # fmt: skip


# --- 3. POST /lookup with N points ---------------------------------------------------------


def fetch_raw(port: int, request: bytes) -> tuple[float, bytes]:
    """Send a whole request on a fresh connection (Connection: close) and read to EOF, timed."""
    chunks: list[bytes] = []
    started = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=120) as sock:
        sock.sendall(request)
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    return time.perf_counter() - started, b"".join(chunks)


def post_request(port: int, body: bytes, accept: str, headers: dict[str, str]) -> bytes:
    """POST /lookup with ``body`` (JSON), asking for ``accept``, closing the connection after."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (f"POST /lookup HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}"
            f"Content-Type: application/json\r\nAccept: {accept}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """Status and body of a raw HTTP/1.1 response (chunked transfer decoded)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return int(lines[0].split()[1]), body
    out, pos = bytearray(), 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return int(lines[0].split()[1]), bytes(out)
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def _owner_ids(answers: list[dict[str, Any]]) -> IntArray:
    return np.array([-1 if a["owner"] is None else a["owner"]["id"] for a in answers], np.int64)


def owners_from(kind: str, body: bytes) -> IntArray:
    """The owner ids (-1: none) in a POST /lookup answer of the given kind."""
    if kind == "ndjson":
        return _owner_ids([orjson.loads(line) for line in body.splitlines() if line])
    found = orjson.loads(body)
    if kind == "geojson":
        return _owner_ids([f["properties"] for f in found["features"]])
    return _owner_ids(found["results"])


def post_bodies(bench: Bench) -> dict[str, tuple[str, bytes, str]]:
    """kind -> (label, request body, Accept) for the three POST variants."""
    points = np.column_stack([bench.lon, bench.lat]).tolist()
    plain = orjson.dumps({"layer": LAYER, "points": points})
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": p}, "properties": {"i": i}}
        for i, p in enumerate(points)
    ]
    collection = orjson.dumps({"type": "FeatureCollection", "layer": LAYER, "features": features})
    return {
        "json": ('points JSON in, JSON out: {"layer", "points": [[lon, lat], ...]}', plain,
                 "application/json"),
        "geojson": ("GeoJSON FeatureCollection in and out", collection, "application/geo+json"),
        "ndjson": ("points JSON in, NDJSON out (Accept: application/x-ndjson)", plain, NDJSON),
    }  # fmt: skip


def bench_post(bench: Bench, postgis_s: float) -> None:
    """Each POST variant: 1 untimed warm-up, then --repeat timed; every answer checked."""
    port = bench.ports["ours"]
    for kind, (label, body, accept) in post_bodies(bench).items():
        request = post_request(port, body, accept, bench.headers)
        times = []
        for attempt in range(bench.args.repeat + 1):
            seconds, raw = fetch_raw(port, request)
            if attempt:
                times.append(seconds)
            _check_post(bench, kind, raw)
        median = statistics.median(times)
        bench.key.setdefault("post_json_s", median)
        note = (f"{len(body) / 1e6:.1f} MB in, {len(raw) / 1e6:.1f} MB out; median of "
                f"{len(times)} (min {min(times):.3f}, max {max(times):.3f} s), 1 untimed warm-up; "
                f"a fresh connection each, from the first byte sent to the last received; "
                f"{bench.n / median:,.0f} points/s")  # fmt: skip
        bench.rows.append(Row(BATCH, f"ours: {label}", len(times), median, None, median * 1e3,
                              None, median / bench.key["post_json_s"], note))  # fmt: skip
    bench.rows.append(Row(BATCH, "PostGIS: the same N points' owners in one SQL statement", 1,
                          postgis_s, None, None, None, postgis_s / bench.key["post_json_s"],
                          "no HTTP: unnest + a prepared-equivalent subquery per point (the "
                          "reference answers), for scale only"))  # fmt: skip


def _check_post(bench: Bench, kind: str, raw: bytes) -> None:
    status, body = parse_response(raw)
    if status != 200:
        bench.failures.append(f"POST /lookup ({kind}): HTTP {status}: {body[:300]!r}")
        return
    owners = owners_from(kind, body)
    differ = int((owners != bench.owner).sum()) if owners.size == bench.n else bench.n
    if differ:
        bench.failures.append(f"POST /lookup ({kind}): {differ} of {bench.n:,} owners differ")


# --- the report ----------------------------------------------------------------------------

HEADERS = ("Benchmark", "Contender", "Requests", "Seconds", "Req/s", "p50 ms", "p99 ms", "x ours")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _cells(row: Row) -> list[str]:
    return [row.section, row.contender, f"{row.requests:,}", _fmt(row.seconds, 3),
            _fmt(row.rps, 0), _fmt(row.p50_ms), _fmt(row.p99_ms), _fmt(row.ratio),
            row.note]  # fmt: skip


def targets(bench: Bench) -> list[list[str]]:
    """The issue's HTTP targets, each with what was measured and met / NOT met."""
    k = bench.key

    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    ratio = k["ours_rps"] / k["postgis_rps"]
    return [
        ["GET /lookup max throughput, ours vs PostGIS per request", ">= 3x",
         f"{ratio:.1f}x ({k['ours_rps']:,.0f} vs {k['postgis_rps']:,.0f} req/s)",
         verdict(ratio >= 3)],
        [f"GET /lookup p99 at {bench.args.rate:g} req/s (open loop)", "<= 10 ms",
         f"{k['ours_fixed_p99_ms']:.2f} ms", verdict(k["ours_fixed_p99_ms"] <= 10)],
        [f"POST /lookup, {bench.n:,} points (JSON), end to end", "<= 0.5 s",
         f"{k['post_json_s']:.3f} s (median)", verdict(k["post_json_s"] <= 0.5)],
        ["answers checked against PostGIS, no errors", "0 differences",
         "0" if not bench.failures else f"{len(bench.failures)} failed check(s)",
         verdict(not bench.failures)],
    ]  # fmt: skip


def report(bench: Bench, context: dict[str, Any]) -> int:
    """Print the tables (rich, then Markdown) and write --markdown; 1 if any check failed."""
    out = Console(width=240)
    cells = [_cells(row) for row in bench.rows]
    title = f"HTTP benchmark (issue 3): layer {LAYER}, N = {bench.n:,} demo points, loopback"
    shown = [[escape(c) for c in row] for row in cells]
    out.print(rich_table(title, (*HEADERS, "Notes"), shown, len(HEADERS)))
    goal_headers = ("Target (issue 3)", "Required", "Measured", "Verdict")
    goals = targets(bench)
    out.print(rich_table("Targets", goal_headers, [[escape(c) for c in g] for g in goals], 0))
    notes = [*bench.notes, *context_notes(bench, context)]
    for line in notes:
        out.print("- " + line, markup=False)
    for failure in bench.failures:
        out.print(f"FAIL: {failure}", markup=False, style="bold red")
    markdown = "\n".join(
        [
            markdown_table((*HEADERS, "Notes"), cells, len(HEADERS)),
            "",
            markdown_table(goal_headers, goals, 0),
            "",
            *(f"- {line}" for line in notes),
            *(f"- **FAIL: {failure}**" for failure in bench.failures),
        ]
    )
    print("\n<!-- markdown -->\n" + markdown)
    if bench.args.markdown:
        Path(bench.args.markdown).write_text(markdown + "\n", encoding="utf-8")
    return 1 if bench.failures else 0


def context_notes(bench: Bench, context: dict[str, Any]) -> list[str]:
    """How, where and when: the settings, the machine and how busy it was, the command."""
    args = bench.args
    wrk_says = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk_says.stdout.splitlines() or ["wrk"])[0]
    return [
        "x ours: for max throughput, ours req/s / the contender's (> 1: the contender is "
        "slower); at a fixed rate, the contender's p99 / ours; for POST, seconds / the JSON "
        "variant's.",
        f"Both servers: `{shlex.join(uvicorn_command('APP', 0, args.workers))}` (port free, "
        "same flags), up together, the client in other processes on the same 2-core machine. "
        "Ours builds every layer's index at start-up (TERRITORY_INDEX_WARM, the default).",
        f"N = {bench.n:,} points from demo.generate(N, seed={args.seed}) (around real ZIP "
        f"centroids); {int((bench.owner >= 0).sum()):,} of them in a county.",
        f"Machine busy before the run: {context['busy'] * 100:.0f} % of all cores (1 s sample); "
        f"load average at start {context['load_start']}, at end {loadavg()}; "
        "other people's jobs share these 2 cores.",
        f"{context['info']}; uvicorn {version('uvicorn')}, FastAPI {version('fastapi')}, "
        f"uvloop {version('uvloop')}, httptools {version('httptools')}, psycopg "
        f"{version('psycopg')}; {wrk_version}",
        f"started {context['started']:%Y-%m-%d %H:%M} UTC, took {context['took']:.0f} s; "
        f"command: `{context['command']}`",
    ]  # fmt: skip


# --- the run -------------------------------------------------------------------------------


def _step(label: str, run: Any) -> Any:
    console.log(f"[bold]{label}[/bold] ...")
    started = time.perf_counter()
    result = run()
    console.log(f"{label}: done in {time.perf_counter() - started:.1f} s")
    return result


def run_all(args: argparse.Namespace, context: dict[str, Any], workdir: Path) -> Bench:
    """Set up, measure, check; the filled-in Bench."""
    batch = demo.generate(args.points, seed=args.seed)
    lon, lat = np.asarray(batch.lon, np.float64), np.asarray(batch.lat, np.float64)
    with scratch_database(args.keep, BENCH_DB) as url:
        layer_id, context["info"] = _step("setup: boundaries", lambda: load_layers(url))
        postgis_s, owner = _step(
            "PostGIS: every point's owner", lambda: postgis_owners(url, layer_id, lon, lat)
        )
        bench = Bench(args, lon, lat, owner, workdir=workdir, headers=admin_headers(url))
        console.log("[bold]starting both servers[/bold] ...")
        with both_servers(bench, url):
            for name in ("ours", "postgis"):
                _step(f"check GET ({name})", lambda name=name: check_get(bench, name))
            with others_cpu(bench, "1 max throughput"):
                _step("1 max throughput (wrk)", lambda: bench_max_rps(bench))
            _step("2 fixed rate (open loop)", lambda: bench_fixed_rate(bench))
            with others_cpu(bench, "3 POST"):
                _step("3 POST /lookup", lambda: bench_post(bench, postgis_s))
    return bench


def main(argv: list[str] | None = None) -> int:
    """Run the HTTP benchmark; exit status 1 if any answer was wrong."""
    args = parse_args(argv)
    wrk_path()
    if POINT_SQL != _POINT_SQL:
        raise SystemExit("bench.http_postgis.POINT_SQL differs from bench_assign._POINT_SQL")
    context: dict[str, Any] = {
        "started": datetime.now(UTC),
        "busy": cpu_busy(),
        "load_start": loadavg(),
        "command": shlex.join([".venv/bin/python", "-m", "bench.bench_http", *args.argv]),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_http-") as tmp:
        bench = run_all(args, context, Path(tmp))
    context["took"] = time.perf_counter() - started
    return report(bench, context)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_http",
        description="HTTP benchmark (issue 3): GET /lookup (max throughput with wrk, p99 at a "
        "fixed rate) of ours against an endpoint asking PostGIS per request, and POST /lookup "
        f"with N points, on real uvicorn processes over loopback, in a scratch database "
        f"({BENCH_DB}) on the embedded cluster. Needs wrk (apt-get install -y wrk).",
    )
    add = parser.add_argument
    add("--points", type=int, default=100_000, help="N demo points (default 100000)")
    add("--seed", type=int, default=42, help="demo.generate seed (default 42)")
    add("--workers", type=int, default=1, help="uvicorn workers of each server (default 1)")
    add("--pool-size", type=int, default=4, help="contender's connections per worker (4)")
    add("--threads", type=int, default=1, help="wrk threads (default 1)")
    add("--connections", type=int, default=32, help="wrk and open-loop connections (32)")
    add("--duration", type=float, default=10, help="seconds of each wrk run (default 10)")
    add("--warmup", type=float, default=3, help="seconds of the untimed wrk warm-up (3)")
    add("--runs", type=int, default=3, help="wrk runs per server, alternating (default 3)")
    add("--paths", type=int, default=10_000, help="distinct points wrk rotates through")
    add("--rate", type=float, default=500, help="fixed rate, requests/s (default 500)")
    add("--rate-seconds", type=float, default=30, help="seconds at the fixed rate (30)")
    add("--repeat", type=int, default=5, help="timed POST requests per variant (default 5)")
    add("--check", type=int, default=2000, help="GET answers checked per server (2000)")
    add("--keep", action="store_true", help=f"keep {BENCH_DB} at the end")
    add("--markdown", help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if min(args.points, args.workers, args.runs, args.repeat, args.paths) < 1:
        parser.error("--points, --workers, --runs, --repeat and --paths must be >= 1")
    return args


if __name__ == "__main__":
    raise SystemExit(main())
