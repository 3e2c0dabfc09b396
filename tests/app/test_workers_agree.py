"""Several workers agree: a change committed through one reaches every other's index."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.factory import create_app
from app.settings import Settings
from tests import canonical

LAYER = "shared"


@pytest.fixture
def other_worker(
    settings: Settings, client: TestClient, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """A second app on the same database, as a second uvicorn worker would be."""
    with TestClient(create_app(settings), headers=auth_headers) as second:
        assert second.app.state.change_listener.listening.wait(10)  # type: ignore[attr-defined]
        yield second


def _owner(client: TestClient, lon: float, lat: float) -> str | None:
    body = client.get("/lookup", params={"lon": lon, "lat": lat, "layer": LAYER}).json()
    return body["owner"] and body["owner"]["name"]


def _eventually(check: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_an_edit_reaches_the_other_worker(client: TestClient, other_worker: TestClient) -> None:
    client.post("/layers", json={"name": LAYER})
    created = client.post(
        f"/layers/{LAYER}/territories", json=canonical.feature(canonical.SQUARE, name="Before")
    ).json()
    assert _owner(other_worker, 0.5, 0.5) == "Before"  # the other worker builds its index

    client.patch(f"/layers/{LAYER}/territories/{created['id']}", json={"name": "After"})
    assert _eventually(lambda: _owner(other_worker, 0.5, 0.5) == "After")

    client.delete(f"/layers/{LAYER}/territories/{created['id']}")
    assert _eventually(lambda: _owner(other_worker, 0.5, 0.5) is None)


def test_a_deleted_layer_is_gone_everywhere(client: TestClient, other_worker: TestClient) -> None:
    client.post("/layers", json={"name": LAYER})
    client.post(f"/layers/{LAYER}/territories", json=canonical.feature(canonical.SQUARE, name="x"))
    assert _owner(other_worker, 0.5, 0.5) == "x"
    client.delete(f"/layers/{LAYER}")
    registry = other_worker.app.state.indexes  # type: ignore[attr-defined]
    assert _eventually(lambda: registry.version(LAYER) is None)
    status = other_worker.get("/lookup", params={"lon": 0.5, "lat": 0.5, "layer": LAYER})
    assert status.status_code == 404


# --- the real service: uvicorn --workers 2 in a subprocess ----------------------------------

WORKERS = 2
PROPAGATION_S = 1.0  # every worker answers the new state within this long after the commit
POINT = {"lon": 0.5, "lat": 0.5, "layer": LAYER}


def _square(x0: float, y0: float, size: float) -> dict[str, Any]:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Live:
    """A running service: its port and the headers (an admin key) every request carries."""

    port: int
    headers: dict[str, str]


def _call(live: Live, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a fresh connection; (status, JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json", **live.headers}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


Probe = tuple[int, dict[str, Any], float, float]  # pid, answer, asked at, answered at


def _probe(live: Live) -> Probe:
    """On one fresh connection (so one worker): the worker's pid, then its GET /lookup answer,
    with the moments it was asked and answered (the probes run concurrently: only these order
    them)."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        conn.request("GET", "/health")
        health = conn.getresponse()
        health.read()
        pid = int(health.getheader("X-Worker-Pid") or 0)
        asked = time.monotonic()
        conn.request("GET", "/lookup?" + urlencode(POINT), headers=live.headers)
        answer = conn.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 200, body
        return pid, body, asked, time.monotonic()
    finally:
        conn.close()


def _stop(server: subprocess.Popen[bytes]) -> None:
    """End the server and its workers: its own process group (started as a new session)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _wait_ready(live: Live, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log.read_text()[-2000:]}")
        try:
            if _call(live, "GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not answer in 60 s: {log.read_text()[-2000:]}")


@pytest.fixture
def workers(
    settings: Settings, engine: Engine, clean: None, tmp_path: Path, auth_headers: dict[str, str]
) -> Iterator[Live]:
    """``uvicorn app.main:app --workers 2`` on a free loopback port over the test database."""
    assert settings.database.url
    port = _free_port()
    env = {
        **os.environ,
        "TERRITORY_DATABASE_URL": settings.database.url,
        "TERRITORY_INDEX_WARM": "false",  # the counties index is not what is tested here
    }
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(WORKERS), "--no-access-log"]  # fmt: skip
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    live = Live(port, auth_headers)
    try:
        _wait_ready(live, server, log)
        yield live
    finally:
        _stop(server)


def _poll(live: Live, until: Any, timeout_s: float) -> list[Probe]:
    """Probe with 4 concurrent fresh connections until ``until(seen)`` or the timeout."""
    seen: list[Probe] = []
    deadline = time.monotonic() + timeout_s
    with ThreadPoolExecutor(4) as pool:
        while time.monotonic() < deadline and not until(seen):
            seen += pool.map(lambda _: _probe(live), range(4))
    return seen


def _layer_of_three(live: Live) -> dict[str, int]:
    """Near (priority 1) inside Wide (priority 2) at the probed point, and Far elsewhere."""
    assert _call(live, "POST", "/layers", {"name": LAYER})[0] == 201
    ids = {}
    for name, shape, priority in (
        ("Near", _square(0, 0, 1), 1),
        ("Wide", _square(0, 0, 2), 2),
        ("Far", _square(10, 0, 1), 1),
    ):
        body = canonical.feature(shape, name=name, owner=f"{name} team", priority=priority)
        status, created = _call(live, "POST", f"/layers/{LAYER}/territories", body)
        assert status == 201, created
        ids[name] = created["id"]
    return ids


def _answer(owner: dict[str, Any], rule: str, covering: list[dict[str, Any]]) -> dict[str, Any]:
    return {"layer": LAYER, "point": [0.5, 0.5], "owner": owner, "rule": rule, "covering": covering}


def test_every_uvicorn_worker_answers_the_change_within_a_second(workers: Live) -> None:
    ids = _layer_of_three(workers)
    near = {"id": ids["Near"], "name": "Near", "owner": "Near team"}
    wide = {"id": ids["Wide"], "name": "Wide", "owner": "Wide team"}
    old = _answer(near, "priority", [near, wide])
    new = _answer(wide, "only", [wide])  # Near moves away (and changes hands) in one edit

    def pids_with(state: dict[str, Any]) -> Any:
        return lambda seen: len({pid for pid, body, *_ in seen if body == state}) >= WORKERS

    before = _poll(workers, pids_with(old), timeout_s=30)  # every worker builds the index
    assert len({pid for pid, *_ in before}) == WORKERS, "the probes did not reach every worker"
    assert all(body == old for _, body, *_ in before)

    edit = {"geometry": _square(5, 0, 1), "owner": "New team"}
    sent = time.monotonic()  # the commit happens after this: the 1 s is measured strictly
    status, _ = _call(workers, "PATCH", f"/layers/{LAYER}/territories/{ids['Near']}", edit)
    assert status == 200
    after = _poll(workers, pids_with(new), timeout_s=5 * PROPAGATION_S)

    mixed = [body for _, body, *_ in after if body not in (old, new)]
    assert not mixed, f"answers that are neither the old nor the new state: {mixed[:3]}"
    first_new: dict[int, float] = {}  # per worker: when its first new answer arrived
    for pid, body, _, answered in after:
        if body == new:
            first_new[pid] = min(first_new.get(pid, answered), answered)
    for pid, body, asked, _ in after:
        # Going back = an old answer to a question asked after a new answer had arrived;
        # concurrent probes that overlap it may be answered either way.
        went_back = body != new and pid in first_new and asked > first_new[pid]
        assert not went_back, f"worker {pid} went back to the old state"
    first_new = {pid: at - sent for pid, at in first_new.items()}
    assert len(first_new) == WORKERS, f"workers with the new state: {first_new}"
    slowest = max(first_new.values())
    assert slowest <= PROPAGATION_S, f"seconds from the edit to each worker: {first_new}"
