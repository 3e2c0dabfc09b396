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

With ``"mode": "mixed"`` (bench/bench_load.py) the schedule is a list of any requests instead:
``{"host", "port", "rate", "seconds", "connections", "timeout", "items": [{"label", "method",
"path", "body"?, "expect": [statuses], "revalidate"?, "owner"?, "creates"?, "needs"?}]}``.
Item ``i`` is due at ``start + i / rate`` as above. ``revalidate`` sends the ETag last seen for
that path as If-None-Match, as a browser's cache does; ``owner`` checks a look-up's owner id;
``creates`` names the id a 201 answer returns, and ``needs`` waits for such an id and puts it
in the path's ``{id}`` (a DELETE of what an earlier POST created; the wait counts as latency).
The summary is per label: status counts and percentiles, errors (a status not in ``expect``, a
connection error, no answer within ``timeout`` seconds) and wrong owners.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
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
class Pool:
    """Keep-alive connections to one server, the most recently used first."""

    host: str
    port: int
    idle: list[tuple[Connection, float]] = field(default_factory=list)  # and when last used
    opened: int = 0

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

    def give(self, conn: Connection) -> None:
        """Back to the idle ones after a complete answer."""
        self.idle.append((conn, time.perf_counter()))

    def close(self) -> None:
        """Close every idle connection."""
        for (_, writer), _ in self.idle:
            writer.close()
        self.idle.clear()


@dataclass
class Run(Pool):
    """What one open-loop run needs, and what it found."""

    requests: list[bytes] = field(kw_only=True)
    expected: list[int | None] = field(kw_only=True)
    retried: int = 0
    latency_s: list[float] = field(default_factory=list)  # from the due time
    service_s: list[float] = field(default_factory=list)  # from the send
    lag_s: list[float] = field(default_factory=list)  # send - due: the generator's own delay
    errors: list[str] = field(default_factory=list)
    wrong: int = 0

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
    status, _, body = await _exchange_full(conn, request)
    return status, body


async def _exchange_full(conn: Connection, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request, read its answer: status, headers (lower-case names), body."""
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return status, headers, await _read_chunked(reader)
    if status in (204, 304) or status < 200:  # no body by definition (RFC 9110)
        return status, headers, b""
    raise ValueError(f"HTTP {status} without Content-Length or chunked encoding")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (RFC 9112 7.1), trailers skipped."""
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size + 2)
        del body[-2:]  # the CRLF after each chunk
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return bytes(body)


def _owner_id(body: bytes) -> int | None:
    owner = orjson.loads(body)["owner"]
    return None if owner is None else int(owner["id"])


def _header_lines(spec: dict[str, Any]) -> str:
    """The spec's extra headers (an API key) as request lines."""
    return "".join(f"{name}: {value}\r\n" for name, value in spec.get("headers", {}).items())


async def run_open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Send ``rate * seconds`` requests on schedule; the latencies and checks, summarised."""
    host, port = spec["host"], spec["port"]
    extra = _header_lines(spec)
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
        for path in spec["paths"]
    ]
    run = Run(host, port, requests=requests, expected=spec["expected"])
    run.idle = [(await run.connect(), time.perf_counter()) for _ in range(spec["connections"])]
    total = round(spec["rate"] * spec["seconds"])
    seconds = await _on_schedule(total, spec["rate"], run.one)
    for (_, writer), _ in run.idle:
        writer.close()
    return summary(run, total, seconds)


async def _on_schedule(
    total: int, rate: float, send: Callable[[int, float], Coroutine[Any, Any, None]]
) -> float:
    """Start ``send(i, due)`` for i < total at its due time, start + i / rate, whatever is still
    running; wait for all of them. Returns the seconds from the start to the last answer."""
    tasks = set()
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(send(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.wait(set(tasks))
    return time.perf_counter() - start


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


# --- mixed mode: any requests, results per label (bench/bench_load.py) ------------------------


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q) * 1000) if values else float("nan")


@dataclass
class Label:
    """What the requests of one label (a route, a layer) found."""

    scheduled: int = 0
    latency_s: list[float] = field(default_factory=list)  # from the due time
    service_s: list[float] = field(default_factory=list)  # from the send
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    wrong: int = 0  # look-ups answered with another owner than expected
    retried: int = 0  # resent once on a new connection (the reused one was closed)
    revalidated: int = 0  # sent with If-None-Match

    def summary(self) -> dict[str, Any]:
        """Counts and percentiles (ms), JSON-ready."""
        return {
            "requests": self.scheduled,
            "answered": len(self.latency_s),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": _ms(self.latency_s, 50),
            "p90_ms": _ms(self.latency_s, 90),
            "p99_ms": _ms(self.latency_s, 99),
            "max_ms": _ms(self.latency_s, 100),
            "service_p50_ms": _ms(self.service_s, 50),
            "service_p99_ms": _ms(self.service_s, 99),
            "error_count": len(self.errors),
            "errors": self.errors[:5],
            "wrong": self.wrong,
            "retried": self.retried,
            "revalidated": self.revalidated,
        }


@dataclass
class MixedRun:
    """One open-loop run of mixed requests: the connections, the client's caches, the results."""

    pool: Pool
    items: list[dict[str, Any]]
    timeout_s: float
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (the key)
    labels: dict[str, Label] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)  # path -> ETag last seen (a cache)
    created: dict[str, asyncio.Future[int]] = field(default_factory=dict)  # token -> new id
    lag_s: list[float] = field(default_factory=list)  # send - due: the generator's own delay

    def label(self, item: dict[str, Any]) -> Label:
        return self.labels.setdefault(item["label"], Label())

    def future(self, token: str) -> asyncio.Future[int]:
        """The id a POST names ``token`` will return (made on first use, by either side)."""
        if token not in self.created:
            self.created[token] = asyncio.get_running_loop().create_future()
        return self.created[token]

    async def one(self, i: int, due: float) -> None:
        """Send item ``i`` (due at ``due``), read and check its answer, note what it found."""
        item = self.items[i]
        label = self.label(item)
        path = item["path"]
        if "needs" in item:  # e.g. DELETE .../{id} of what an earlier POST created
            try:
                path = path.replace("{id}", str(await self.future(item["needs"])))
            except RuntimeError as exc:
                label.errors.append(f"item {i} not sent: {exc}")
                return
        request, what = self.request(item, path, label), f"item {i} {item['method']} {path}"
        sent = time.perf_counter()
        self.lag_s.append(sent - due)
        try:
            answer = await asyncio.wait_for(self.send(request, label), self.timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            label.errors.append(f"{what}: {exc!r}" if str(exc) else f"{what}: no answer in time")
            self.settle(item, None)
            return
        done = time.perf_counter()
        status, headers, body = answer
        label.latency_s.append(done - due)
        label.service_s.append(done - sent)
        label.statuses[status] = label.statuses.get(status, 0) + 1
        if status not in item["expect"]:
            label.errors.append(f"{what}: HTTP {status} {body[:200]!r}")
        elif "owner" in item and _owner_id(body) != item["owner"]:
            label.wrong += 1
        if status == 200 and "etag" in headers:
            self.etags[path] = headers["etag"]
        self.settle(item, body if status == 201 else None)

    def request(self, item: dict[str, Any], path: str, label: Label) -> bytes:
        """The request's bytes: If-None-Match when revalidating a path seen before, a body."""
        head = [f"{item['method']} {path} HTTP/1.1", f"Host: {self.pool.host}:{self.pool.port}"]
        head += [f"{name}: {value}" for name, value in self.headers.items()]
        if item.get("revalidate") and path in self.etags:
            head.append(f"If-None-Match: {self.etags[path]}")
            label.revalidated += 1
        payload = b""
        if item.get("body") is not None:
            payload = orjson.dumps(item["body"])
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + payload

    async def send(self, request: bytes, label: Label) -> tuple[int, dict[str, str], bytes]:
        """Exchange on a keep-alive connection; once more on a new one if a reused connection
        turns out closed by the server. A connection whose exchange did not finish (an error,
        the timeout's cancellation) is closed: its state is unknown."""
        conn, reused = await self.pool.take()
        try:
            try:
                answer = await _exchange_full(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                conn[1].close()
                label.retried += 1
                conn = await self.pool.connect()
                answer = await _exchange_full(conn, request)
        except BaseException:
            conn[1].close()
            raise
        self.pool.give(conn)
        return answer

    def settle(self, item: dict[str, Any], body: bytes | None) -> None:
        """A creating item's id for those that need it (or why there is none)."""
        if "creates" not in item:
            return
        future = self.future(item["creates"])
        if body is None:
            future.set_exception(RuntimeError(f"creating {item['creates']} failed"))
        else:
            future.set_result(int(orjson.loads(body)["id"]))

    def summary(self, seconds: float) -> dict[str, Any]:
        """Per label and over all: counts, statuses, percentiles (ms), errors; the ids made."""
        everything = Label(
            scheduled=len(self.items),
            latency_s=[x for lab in self.labels.values() for x in lab.latency_s],
            service_s=[x for lab in self.labels.values() for x in lab.service_s],
        )
        for lab in self.labels.values():
            for status, n in lab.statuses.items():
                everything.statuses[status] = everything.statuses.get(status, 0) + n
            everything.errors += lab.errors
            everything.wrong += lab.wrong
            everything.retried += lab.retried
            everything.revalidated += lab.revalidated
        return {
            "seconds": seconds,
            "labels": {name: lab.summary() for name, lab in self.labels.items()},
            "all": everything.summary(),
            "lag_p99_ms": _ms(self.lag_s, 99),
            "lag_max_ms": _ms(self.lag_s, 100),
            "connections_opened": self.pool.opened,
            "created": {
                token: f.result()
                for token, f in self.created.items()
                if f.done() and not f.exception()
            },
        }


async def run_mixed(spec: dict[str, Any]) -> dict[str, Any]:
    """Send every item of the spec on schedule; the results per label, summarised."""
    run = MixedRun(
        Pool(spec["host"], spec["port"]), spec["items"], spec["timeout"], spec.get("headers", {})
    )
    for item in run.items:
        run.label(item).scheduled += 1
    run.pool.idle = [
        (await run.pool.connect(), time.perf_counter()) for _ in range(spec["connections"])
    ]
    seconds = await _on_schedule(len(run.items), spec["rate"], run.one)
    run.pool.close()
    return run.summary(seconds)


def main(argv: list[str]) -> int:
    """Run the spec given as a JSON file; print the summary as one JSON line."""
    spec = json.loads(Path(argv[0]).read_text())
    run = uvloop.run if uvloop is not None else asyncio.run
    mode = run_mixed if spec.get("mode") == "mixed" else run_open_loop
    print(json.dumps(run(mode(spec))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
