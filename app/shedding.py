"""A bound on heavy work per worker: requests beyond it wait in a short queue, or get a 503.

Map reads, tiles, edits, analyses and imports (``HEAVY_PREFIXES``) run on the worker's thread
pool and hold one of its pooled database connections (5 + 5 overflow) while they run. Under
more load than the machine can serve, they used to pile up: requests waited up to 30 s for a
connection and timed out, and ``/health``, which needs a connection too, did not answer for a
minute (bench/RESULTS.md, "Load"). Here at most ``max_running`` of them run at once (fewer
than the pool's connections, so ``/health`` always finds one), up to ``max_queued`` more wait
their turn in arrival order for at most ``max_wait_s`` seconds, and anything beyond is
answered at once with 503 + Retry-After (``application/problem+json``), which a client can
retry, instead of a time-out. ``/lookup`` (answered from memory), ``/health`` and ``/metrics``
are never held back.

Writes (any method but GET, HEAD and OPTIONS: edits, imports, bulk runs) have a lane of their
own, ``max_writing`` at once (1 by default) with its own queue: the edits of a layer run one at
a time anyway (the layer's row lock), and while they waited for it they used to fill the map
reads' slots: at 10 edits/s about 11 of the 16 slots of two workers were edits waiting for the
lock (bench/RESULTS.md, "Load"), and map reads were shed. Edits waiting for the write lane
wait here, holding no database connection.

Territory edits (not dry runs) have a third lane, ``max_editing`` at once (16): inside, they
wait for their layer's next batch (app/edits.py), which applies all of them in one transaction
through a connection of its own, so they hold none of the pool's while they wait.
"""

from __future__ import annotations

import asyncio
import collections
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import route_path
from app.errors import problem

HEAVY_PREFIXES = ("/layers", "/tiles", "/customers", "/ogc")
RETRY_AFTER_S = 2  # what a shed request is told to wait: about a queue's worth of work


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A territory's edits, batched per layer (app/edits.py): /layers/{layer}/territories[/{id}].
_EDIT_PATH = re.compile(r"/layers/[^/]+/territories(/[^/]+)?/?")


def _is_edit(scope: Scope, path: str) -> bool:
    """A batched territory edit: a write of a territory, not a dry run (that holds its own
    connection while it waits for the layer, as other writes do)."""
    return (
        scope["method"] not in READ_METHODS
        and _EDIT_PATH.fullmatch(path) is not None
        and b"dry_run" not in scope.get("query_string", b"")
    )


class _Lane:
    """At most ``max_running`` at once; up to ``max_queued`` more wait in arrival order."""

    def __init__(self, name: str, max_running: int, max_queued: int, max_wait_s: float) -> None:
        self.name = name
        self.max_running = max_running
        self.max_queued = max_queued
        self.max_wait_s = max_wait_s
        self.running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self) -> bool:
        """Take a slot, waiting in line for one if need be; False: shed the request."""
        if self.running < self.max_running and not self._waiting:
            self.running += 1
            return True
        if len(self._waiting) >= self.max_queued:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.max_wait_s)
        except TimeoutError:
            if turn.done():  # handed a slot just as the wait ran out: take it
                return True
            self._waiting.remove(turn)
            return False
        except asyncio.CancelledError:  # the client went away while waiting
            if turn.done():
                self.release()  # the slot handed over is not used: pass it on
            else:
                self._waiting.remove(turn)
            raise
        return True

    def release(self) -> None:
        """Hand the slot to the first waiter, or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on: running stays as it is
                return
        self.running -= 1


class HeavyWorkLimit:
    """Pure ASGI middleware: bounded concurrency and queue for the heavy routes, else 503;
    reads and writes in lanes of their own."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_running: int = 8,
        max_queued: int = 64,
        max_wait_s: float = 10,
        max_writing: int = 1,
        max_writes_queued: int = 64,
        max_write_wait_s: float = 10,
        max_editing: int = 16,
        max_edits_queued: int = 64,
    ) -> None:
        self.app = app
        self.reads = _Lane("heavy requests", max_running, max_queued, max_wait_s)
        self.writes = _Lane("writes", max_writing, max_writes_queued, max_write_wait_s)
        self.edits = _Lane("edits", max_editing, max_edits_queued, max_write_wait_s)
        self.shed = 0  # requests answered 503 here, since start (tests, logs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a heavy request when a slot of its lane is free (waiting its turn), else 503."""
        path = route_path(scope) if scope["type"] == "http" else ""
        if not path.startswith(HEAVY_PREFIXES):
            await self.app(scope, receive, send)
            return
        lane = self.reads if scope["method"] in READ_METHODS else self.writes
        if _is_edit(scope, path):
            lane = self.edits
        if not await lane.acquire():
            self.shed += 1
            detail = (
                f"the service is busy ({lane.running} {lane.name} running, "
                f"{lane.waiting} waiting); retry in {RETRY_AFTER_S} s"
            )
            response = problem(503, "Service overloaded", detail, instance=scope["path"])
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            lane.release()
