"""Behaviour under load (issue 6, item 6): single-flight builds, look-ups that never wait for an
index refresh, and a bound on heavy work that answers 503 + Retry-After instead of queueing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import coverage
from app.cache import LruCache
from app.factory import create_app
from app.indexes import IndexRegistry
from app.repositories import layers
from app.settings import Settings
from tests import canonical

LAYER = "busy"


def _square(x: float, y: float, side: float) -> dict[str, Any]:
    ring = [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _registry(client: TestClient) -> IndexRegistry:
    registry: IndexRegistry = client.app.state.indexes  # type: ignore[attr-defined]
    return registry


@pytest.fixture
def busy(client: TestClient) -> dict[str, int]:
    """A layer of two overlapping squares (a wins where they overlap), assigned; their ids."""
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    url = f"/layers/{LAYER}/territories"
    a = client.post(url, json=canonical.feature(_square(0, 0, 4), name="a", priority=0))
    b = client.post(url, json=canonical.feature(_square(2, 0, 4), name="b", priority=1))
    assert client.post(f"/layers/{LAYER}/assign").status_code == 200
    return {"a": a.json()["id"], "b": b.json()["id"]}


def _owner(client: TestClient, lon: float, lat: float) -> str | None:
    found = client.get("/lookup", params={"lon": lon, "lat": lat, "layer": LAYER}).json()
    return found["owner"]["name"] if found["owner"] else None


# --- single flight ------------------------------------------------------------------------------


def _at_once(n: int, call: Callable[[], Any]) -> list[Any]:
    """``call`` from ``n`` threads released together; their results."""
    start = threading.Barrier(n)

    def one() -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


def test_concurrent_misses_of_one_key_build_it_once() -> None:
    cache = LruCache(max_entries=4)
    builds = []

    def make() -> object:
        builds.append(threading.get_ident())
        time.sleep(0.3)  # a slow build: every other thread misses while it runs
        return object()

    found = _at_once(8, lambda: cache.get_or_make("map", make))
    assert len(builds) == 1
    assert all(value is found[0] for value in found)
    assert cache.get_or_make("map", make) is found[0] and len(builds) == 1


def test_a_failed_build_fails_its_waiters_and_is_not_kept() -> None:
    cache = LruCache(max_entries=4)
    calls = []

    def broken() -> object:
        calls.append(1)
        time.sleep(0.2)
        raise RuntimeError("database gone")

    def attempt() -> str:
        try:
            cache.get_or_make("map", broken)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert _at_once(4, attempt) == ["database gone"] * 4
    assert len(calls) == 1
    assert cache.get_or_make("map", lambda: "made") == "made"  # the next call tries again


def test_concurrent_cold_coverage_maps_are_made_once(
    busy: dict[str, int], client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight map requests at once, all missing: one map made, one ETag, one body."""
    made = []
    real = coverage.coverage_map

    def counted(*args: Any, **kwargs: Any) -> bytes:
        made.append(1)
        time.sleep(0.3)  # as a cold map under load: the others arrive while it is made
        return real(*args, **kwargs)

    monkeypatch.setattr(coverage, "coverage_map", counted)
    app = client.app
    registry = _registry(client)

    def ask() -> coverage.Answer:
        with Session(engine) as session:
            layer = layers.get_by_name(session, name=LAYER)
            return coverage.answer(
                session, cache=app.state.cache, registry=registry, layer=layer,  # type: ignore[attr-defined]
                options=coverage.CoverageOptions(tolerance_m=500.0), if_none_match=None,
            )  # fmt: skip

    answers = _at_once(8, ask)
    assert len(made) == 1
    assert {a.tag for a in answers} == {answers[0].tag}
    assert {a.body for a in answers} == {answers[0].body} and answers[0].status == 200
    # Over HTTP too: the same map and tag, made by nobody again.
    again = client.get(f"/layers/{LAYER}/coverage", params={"tolerance_m": 500})
    assert again.headers["etag"] == answers[0].tag and again.content == answers[0].body
    assert len(made) == 1


# --- look-ups never wait for an index refresh ---------------------------------------------------


@pytest.fixture
def territories_locked(engine: Engine) -> Iterator[Callable[[], None]]:
    """Call it to lock the territories table (ACCESS EXCLUSIVE) until the test releases it:
    every read of a territory (an index refresh, an edit) waits meanwhile."""
    conn = engine.connect()
    tx = conn.begin()

    def lock() -> None:
        conn.execute(text("SET LOCAL lock_timeout = '20s'"))
        conn.execute(text("LOCK TABLE territories IN ACCESS EXCLUSIVE MODE"))

    try:
        yield lock
    finally:
        tx.rollback()
        conn.close()


def _timed(call: Callable[[], Any], limit_s: float) -> Any:
    """``call()``'s result, failing the test if it takes longer than ``limit_s``."""
    with ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        result = pool.submit(call).result(timeout=limit_s)
        assert time.perf_counter() - started < limit_s
        return result


def _move_away(session: Session, territory_id: int) -> None:
    """Another writer's change: the territory moves to a 1° square at (10, 10), far from (1, 1)."""
    session.execute(
        text(
            "UPDATE territories SET geom = ST_Multi(ST_MakeEnvelope(10, 10, 11, 11, 4326)) "
            "WHERE id = :t"
        ),
        {"t": territory_id},
    )


def test_lookups_answer_from_the_held_index_while_a_refresh_waits(
    busy: dict[str, int],
    client: TestClient,
    engine: Engine,
    territories_locked: Callable[[], None],
) -> None:
    registry = _registry(client)
    assert _owner(client, 3, 1) == "a"  # held now
    first = registry.version(LAYER)
    assert first is not None
    # An edit through this worker: its index is current when the edit returns (b wins now).
    edited = client.patch(f"/layers/{LAYER}/territories/{busy['b']}", json={"priority": -1})
    assert edited.status_code == 200
    assert (registry.version(LAYER) or first) > first
    assert _owner(client, 3, 1) == "b"
    version_after_edit = registry.version(LAYER)
    # Another writer's change (no NOTIFY reaches this worker): a moves away from (1, 1).
    with Session(engine) as other:
        _move_away(other, busy["a"])
        other.execute(
            text("UPDATE layers SET updated_at = clock_timestamp() WHERE name = :n"), {"n": LAYER}
        )
        other.commit()
    territories_locked()  # the refresh below waits for the territories: a slow one
    refreshing = threading.Thread(target=registry.refresh, args=(LAYER,), daemon=True)
    refreshing.start()
    time.sleep(0.3)
    assert refreshing.is_alive()  # still waiting
    # Meanwhile look-ups are answered at once, from the index held: the state before the change.
    assert _timed(lambda: _owner(client, 1, 1), 2.0) == "a"
    assert registry.version(LAYER) == version_after_edit
    many = _timed(lambda: [_owner(client, 1 + i / 100, 1) for i in range(100)], 5.0)
    assert set(many) == {"a"}


def test_after_the_refresh_lookups_see_the_change(
    busy: dict[str, int], client: TestClient, engine: Engine
) -> None:
    registry = _registry(client)
    assert _owner(client, 1, 1) == "a"
    before = registry.version(LAYER)
    with Session(engine) as other:
        _move_away(other, busy["a"])
        layer = layers.get_by_name(other, name=LAYER, for_change=True)
        layers.touch(other, layer=layer)  # with its NOTIFY, as the API does
        other.commit()
    deadline = time.monotonic() + 10
    while registry.version(LAYER) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # the listener thread refreshes in the background
    assert registry.version(LAYER) != before
    assert _owner(client, 1, 1) is None and _owner(client, 10.5, 10.5) == "a"


# --- a bound on heavy work ----------------------------------------------------------------------


@pytest.fixture
def bounded(
    settings: Settings, engine: Engine, clean: None, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """The app with at most one heavy read, one write and one territory edit running, one
    more of each waiting (for 1 s)."""
    api = settings.api.model_copy(
        update={
            "heavy_running": 1,
            "heavy_queued": 1,
            "heavy_wait_s": 1.0,
            "write_running": 1,
            "write_queued": 1,
            "write_wait_s": 1.0,
            "edit_running": 1,
            "edit_queued": 1,
        }
    )
    with TestClient(
        create_app(settings.model_copy(update={"api": api})), headers=auth_headers
    ) as c:
        yield c


def _one_territory(client: TestClient) -> tuple[str, int]:
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    url = f"/layers/{LAYER}/territories"
    tid = client.post(url, json=canonical.feature(_square(0, 0, 4), name="a")).json()["id"]
    assert client.get(f"/layers/{LAYER}/coverage").status_code == 200
    assert _owner(client, 1, 1) == "a"
    return url, tid


def _assert_shed(shed: Any, took: float, instance: str) -> None:
    assert shed.status_code == 503 and took < 0.5  # at once, not after a time-out
    assert shed.headers["retry-after"].isdigit() and int(shed.headers["retry-after"]) > 0
    assert shed.headers["content-type"] == "application/problem+json"
    problem = shed.json()
    assert problem["status"] == 503 and problem["title"] == "Service overloaded"
    assert problem["instance"] == instance


def test_beyond_the_bound_heavy_reads_get_503_with_retry_after_and_writes_go_on(
    bounded: TestClient, engine: Engine
) -> None:
    client = bounded
    url, tid = _one_territory(client)
    # A map read stuck behind another transaction's lock of the assignments' versions holds
    # the one read slot.
    with Session(engine) as holder:
        holder.execute(text("LOCK TABLE assignment_versions IN ACCESS EXCLUSIVE MODE"))
        with ThreadPoolExecutor(2) as pool:
            stuck = pool.submit(client.get, f"/layers/{LAYER}/coverage", params={"zoom": 4})
            time.sleep(0.5)
            waited = pool.submit(client.get, f"/layers/{LAYER}/coverage")  # waits its turn
            time.sleep(0.2)
            started = time.perf_counter()
            shed = client.get(f"/layers/{LAYER}/coverage", params={"zoom": 3})
            took = time.perf_counter() - started
            # Look-ups and health never wait for heavy work; an edit has a lane of its own.
            assert _timed(lambda: _owner(client, 1, 1), 1.0) == "a"
            assert _timed(lambda: client.get("/health").status_code, 2.0) == 200
            edited = _timed(lambda: client.patch(f"{url}/{tid}", json={"owner": "Zoe"}), 2.0)
            assert edited.status_code == 200
            # The one waiting gives up after its second: 503 as well.
            timed_out = waited.result(timeout=10)
            holder.rollback()  # the read goes on
            assert stuck.result(timeout=10).status_code == 200
    _assert_shed(shed, took, f"/layers/{LAYER}/coverage")
    assert timed_out.status_code == 503 and "retry-after" in timed_out.headers
    # The bound frees up: heavy requests are served again.
    again = client.get(f"/layers/{LAYER}/coverage")
    assert again.status_code == 200
    assert {f["properties"]["owner"] for f in again.json()["features"]} == {"Zoe"}


def test_edits_waiting_for_the_layer_lock_never_hold_back_map_reads(
    bounded: TestClient, engine: Engine
) -> None:
    client = bounded
    url, tid = _one_territory(client)
    # An edit stuck behind another transaction's lock of the layer holds the one write slot.
    with Session(engine) as holder:
        layers.get_by_name(holder, name=LAYER, for_change=True)
        with ThreadPoolExecutor(2) as pool:
            stuck = pool.submit(client.patch, f"{url}/{tid}", json={"owner": "Zoe"})
            time.sleep(0.5)
            waited = pool.submit(client.patch, f"{url}/{tid}", json={"owner": "Yann"})
            time.sleep(0.2)
            started = time.perf_counter()
            shed = client.patch(f"{url}/{tid}", json={"owner": "Xavier"})
            took = time.perf_counter() - started
            # Map reads and tiles are served at once meanwhile (the old single bound: shed).
            for path in (f"/layers/{LAYER}/coverage", f"/layers/{LAYER}/coverage?zoom=5",
                         f"/tiles/{LAYER}/4/8/7.mvt"):  # fmt: skip
                read = _timed(lambda p=path: client.get(p), 2.0)
                assert read.status_code in (200, 204), (path, read.status_code)
            timed_out = waited.result(timeout=10)
            holder.rollback()  # the edit goes on
            assert stuck.result(timeout=10).status_code == 200
    _assert_shed(shed, took, f"{url}/{tid}")
    assert timed_out.status_code == 503 and "retry-after" in timed_out.headers
    again = client.get(f"/layers/{LAYER}/coverage")
    assert {f["properties"]["owner"] for f in again.json()["features"]} == {"Zoe"}
