"""Open-loop load at a constant rate: GET requests sent on a fixed schedule, whatever the server.

Run as its own process by bench/bench_http.py (``python -m bench.loadgen SPEC.json``), so the
server under test and the client do not share an interpreter. Request ``i`` is due at
``start + i / rate``; it goes out then on an idle keep-alive connection (a new connection is
opened when none is idle, and that time counts; one idle for 2 s is not reused, and a request
whose reused connection turns out closed by the server is sent once more on a new one). Times
come from ``time.perf_counter`` (the event loop's clock has 1 ms steps under uvloop). Latency
is measured from the due time, not from the send, so a slow server cannot slow the generator
down and hide its own queue (no coordinated omission). Every answer is checked: status 200
and the owner id expected.

SPEC.json: ``{"host", "port", "rate", "seconds", "connections", "paths": [...],
"expected": [owner id or null, ...]}``; prints one JSON line with the results.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

try:  # the same event loop uvicorn runs on, when installed (uvicorn[standard] has it)
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
STALE_S = 2.0  # an idle connection older than this is closed rather than reused


@dataclass
class Run:
    """What one open-loop run needs, and what it found."""

    host: str
    port: int
    requests: list[bytes]
    expected: list[int | None]
    idle: list[tuple[Connection, float]] = field(default_factory=list)  # and when last used
    opened: int = 0
    retried: int = 0
    latency_s: list[float] = field(default_factory=list)  # from the due time
    service_s: list[float] = field(default_factory=list)  # from the send
    lag_s: list[float] = field(default_factory=list)  # send - due: the generator's own delay
    errors: list[str] = field(default_factory=list)
    wrong: int = 0

    async def connect(self) -> Connection:
        """A new keep-alive connection to the server."""
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def take(self) -> tuple[Connection, bool]:
        """The most recently used idle connection, or a new one; (connection, reused)."""
        while self.idle:
            conn, used = self.idle.pop()
            if time.perf_counter() - used < STALE_S:
                return conn, True
            conn[1].close()  # the server may be closing it (uvicorn's keep-alive is 5 s)
        return await self.connect(), False

    async def one(self, i: int, due: float) -> None:
        """Send request ``i`` now (it was due at ``due``), read and check its answer."""
        request = self.requests[i % len(self.requests)]
        conn, reused = await self.take()
        sent = time.perf_counter()
        try:
            try:
                status, body = await _exchange(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                conn[1].close()  # closed by the server while idle: once more, on a new one
                self.retried += 1
                conn = await self.connect()
                status, body = await _exchange(conn, request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.errors.append(f"request {i}: {exc!r}")
            conn[1].close()
            return
        done = time.perf_counter()
        self.idle.append((conn, done))
        self.latency_s.append(done - due)
        self.service_s.append(done - sent)
        self.lag_s.append(sent - due)
        if status != 200:
            self.errors.append(f"request {i}: HTTP {status}")
        elif _owner_id(body) != self.expected[i % len(self.expected)]:
            self.wrong += 1


async def _exchange(conn: Connection, request: bytes) -> tuple[int, bytes]:
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    return status, await reader.readexactly(length)


def _owner_id(body: bytes) -> int | None:
    owner = orjson.loads(body)["owner"]
    return None if owner is None else int(owner["id"])


async def run_open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Send ``rate * seconds`` requests on schedule; the latencies and checks, summarised."""
    host, port = spec["host"], spec["port"]
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for path in spec["paths"]
    ]
    run = Run(host, port, requests, spec["expected"])
    run.idle = [(await run.connect(), time.perf_counter()) for _ in range(spec["connections"])]
    total = round(spec["rate"] * spec["seconds"])
    tasks = set()
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / spec["rate"]
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(run.one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.wait(set(tasks))
    finished = time.perf_counter()
    for (_, writer), _ in run.idle:
        writer.close()
    return summary(run, total, finished - start)


def summary(run: Run, total: int, seconds: float) -> dict[str, Any]:
    """Percentiles (ms) of the latency from the due time and from the send, and the checks."""

    def ms(values: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(values), q) * 1000) if values else float("nan")

    return {
        "requests": total,
        "answered": len(run.latency_s),
        "seconds": seconds,
        "p50_ms": ms(run.latency_s, 50),
        "p90_ms": ms(run.latency_s, 90),
        "p99_ms": ms(run.latency_s, 99),
        "p999_ms": ms(run.latency_s, 99.9),
        "max_ms": ms(run.latency_s, 100),
        "service_p50_ms": ms(run.service_s, 50),
        "service_p99_ms": ms(run.service_s, 99),
        "lag_p99_ms": ms(run.lag_s, 99),
        "lag_max_ms": ms(run.lag_s, 100),
        "connections_opened": run.opened,
        "retried": run.retried,
        "errors": run.errors[:5],
        "error_count": len(run.errors),
        "wrong": run.wrong,
    }


def main(argv: list[str]) -> int:
    """Run the spec given as a JSON file; print the summary as one JSON line."""
    spec = json.loads(Path(argv[0]).read_text())
    run = uvloop.run if uvloop is not None else asyncio.run
    print(json.dumps(run(run_open_loop(spec))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
