"""Database faults, against real processes: PostgreSQL stopped under a running service, and the
service killed (SIGKILL) in the middle of an import or an assignment.

Everything runs on a private embedded cluster made for this module (never the shared test
database, which other runs use and which must never be stopped): a real ``uvicorn`` with two
workers for the outage, the real ``territory`` command line for the kills.

A kill must leave the data exactly as before (every write of a run is one transaction, DDL
included), and re-running must give what one clean run gives. The kills are timed by what the
server shows (``pg_stat_activity``), not by sleeping: one while the import is busy writing
territories, and one at each run's partition swap, where the test holds a lock the swap waits
for, so the run is killed with all its work done (its fresh ``assignments_layer_<id>_next``
table made and filled) but not committed.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy.orm import Session, sessionmaker

from app import boundaries, demo, embedded
from app.assign import assign_layer
from app.db import make_engine, migrate
from app.indexes import IndexRegistry
from app.notify import conninfo
from app.repositories import customers, layers
from app.settings import DatabaseSettings, EmbeddedSettings, Settings
from app.territory_files import export_layer, import_territories, read_territories
from tests import canonical
from tests.keys import bearer, make_key

CUSTOMERS = 50_000  # enough for the bulk paths (engine, COPY, partition swap) to do real work
PROMPT_S = 5.0  # longest a request may take to answer while the database is away
RECOVERY_S = 10.0  # everything answers again within this long after the database is back
TERRITORY = str(Path(sys.executable).with_name("territory"))


@dataclass(frozen=True)
class Scratch:
    """The module's private cluster and database, with the files the imports read."""

    cluster: EmbeddedSettings
    url: str  # SQLAlchemy URL of the database
    dsn: str  # the same as a libpq connection string
    counties: Path  # the 3,230 counties as GeoJSON
    states: Path  # the 56 states as GeoJSON
    key: str  # an admin API key

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a service process on this database (and nothing else)."""
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        return {**env, "TERRITORY_DATABASE_URL": self.url, **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    """A cluster of this module's own: migrated, boundaries loaded, demo customers, exports."""
    folder = tmp_path_factory.mktemp("faults")
    cluster = EmbeddedSettings(data_dir=folder / "pg", port=_free_port(), database="scratch")
    try:
        embedded.ensure_running(cluster)
        embedded.wait_ready(cluster)
        url = embedded.ensure_database(cluster)
        engine = make_engine(url, Settings(database=DatabaseSettings(url=url)))
        migrate(engine)
        files = {}
        with Session(engine) as session:
            boundaries.load(session, data_dir=Settings().data_dir)
            customers.upsert(session, batch=demo.generate(CUSTOMERS, seed=7))
            session.commit()
            for layer in ("counties", "states"):
                exported = export_layer(session, layer=layer, fmt="geojson")
                files[layer] = folder / f"{layer}.geojson"
                files[layer].write_bytes(exported.content)
        key = make_key(engine)
        engine.dispose()
        yield Scratch(cluster, url, conninfo(url), files["counties"], files["states"], key)
    finally:
        embedded.stop(cluster)
        shutil.rmtree(embedded.data_dir(cluster), ignore_errors=True)


def _sql(db: Scratch, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _one(db: Scratch, query: str, *params: Any) -> Any:
    return _sql(db, query, *params)[0][0]


# --- 1. PostgreSQL stops under a running service ---------------------------------------------

LAYER = "outage"
INSIDE = {"lon": 0.5, "lat": 0.5, "layer": LAYER}
BATCH = {"layer": LAYER, "points": [[0.5, 0.5], [10.5, 0.5], [50, 50]]}
UNHELD_LOOKUP = "/lookup?lon=-100&lat=40&layer=states"  # a layer no worker has built yet


class Worker:
    """One keep-alive connection, so every request on it reaches the same uvicorn worker."""

    def __init__(self, port: int, key: str) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._headers = {"Content-Type": "application/json", **bearer(key)}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, Any, float]:
        """(status, JSON body, headers, seconds taken)."""
        payload = None if body is None else json.dumps(body)
        started = time.monotonic()
        self._conn.request(method, path, body=payload, headers=self._headers)
        response = self._conn.getresponse()
        raw = response.read()
        took = time.monotonic() - started
        return response.status, json.loads(raw) if raw else None, response.headers, took

    def pid(self) -> int:
        """The worker's pid (GET /health names it, whether the database answers or not)."""
        _, _, headers, _ = self.call("GET", "/health")
        return int(headers["X-Worker-Pid"])

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def _each_worker(
    port: int, key: str, check: Callable[[Worker], bool], timeout_s: float
) -> set[int]:
    """Run ``check`` on fresh connections until it held on both workers; their pids."""
    done: set[int] = set()
    deadline = time.monotonic() + timeout_s

    def once(_: int) -> None:
        worker = Worker(port, key)
        try:
            pid = worker.pid()
            if pid not in done and check(worker):
                done.add(pid)
        finally:
            worker.close()

    with ThreadPoolExecutor(4) as pool:
        while len(done) < 2 and time.monotonic() < deadline:
            list(pool.map(once, range(4)))
    return done


def _query(params: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def service(db: Scratch, tmp_path: Path) -> Iterator[int]:
    """``uvicorn app.main:app --workers 2`` over the scratch database; yields its port."""
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "2", "--no-access-log"]  # fmt: skip
    log = tmp_path / "uvicorn.log"
    env = db.env(TERRITORY_INDEX_WARM="false")  # the layer's index is warmed by look-ups
    with log.open("wb") as out:
        server = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            probe = Worker(port, db.key)
            try:
                if probe.call("GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
            finally:
                probe.close()
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
        # Not a crash in the log (a 500 anywhere, or a worker that died).
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]


def test_service_rides_out_a_database_outage(db: Scratch, service: int) -> None:
    first = Worker(service, db.key)
    assert first.call("POST", "/layers", {"name": LAYER})[0] == 201
    square = canonical.feature(canonical.SQUARE, name="Square", owner="Ann")
    status, created, _, _ = first.call("POST", f"/layers/{LAYER}/territories", square)
    assert status == 201, created
    far = canonical.feature(
        {"type": "Polygon", "coordinates": [[[10, 0], [11, 0], [11, 1], [10, 1], [10, 0]]]},
        name="Far",
    )
    assert first.call("POST", f"/layers/{LAYER}/territories", far)[0] == 201
    first.close()
    territory = f"/layers/{LAYER}/territories/{created['id']}"

    # Both workers hold the layer's index (built by a look-up each); what they answer now.
    answers: dict[str, Any] = {}

    def warm(worker: Worker) -> bool:
        one, many = (
            worker.call("GET", "/lookup?" + _query(INSIDE)),
            worker.call("POST", "/lookup", BATCH),
        )
        assert one[0] == 200 and many[0] == 200, (one, many)
        answers.setdefault("one", one[1])
        answers.setdefault("many", many[1])
        assert (one[1], many[1]) == (answers["one"], answers["many"])
        return True

    assert len(_each_worker(service, db.key, warm, timeout_s=30)) == 2
    assert answers["one"]["owner"]["name"] == "Square"
    assert [r["rule"] for r in answers["many"]["results"]] == ["only", "only", None]

    embedded.stop(db.cluster)  # pg_ctl stop -m fast: every connection of the service is cut
    try:
        slowest = 0.0

        def down(worker: Worker) -> bool:
            nonlocal slowest
            calls = {
                "health": worker.call("GET", "/health"),
                "lookup": worker.call("GET", "/lookup?" + _query(INSIDE)),
                "batch": worker.call("POST", "/lookup", BATCH),
                "layers": worker.call("GET", "/layers"),
                "territories": worker.call("GET", f"/layers/{LAYER}/territories"),
                "coverage": worker.call("GET", f"/layers/{LAYER}/coverage"),
                "create layer": worker.call("POST", "/layers", {"name": "during-outage"}),
                "edit": worker.call("PATCH", territory, {"owner": "Bob"}),
                "assign": worker.call("POST", f"/layers/{LAYER}/assign"),
                # A layer this worker never built needs the database: a 503 too, not a 500.
                "unheld lookup": worker.call("GET", UNHELD_LOOKUP),
            }
            slowest = max(slowest, *(took for *_, took in calls.values()))
            assert calls["lookup"][:2] == (200, answers["one"]), calls["lookup"]
            assert calls["batch"][:2] == (200, answers["many"]), calls["batch"]
            assert calls["health"][0] == 503
            assert calls["health"][1]["database"]["status"] == "unreachable"
            for what in ("health", "layers", "territories", "coverage", "create layer", "edit",
                         "assign", "unheld lookup"):  # fmt: skip
                status, body, headers, _ = calls[what]
                assert status == 503, (what, status, body)
                assert int(headers["Retry-After"]) > 0, what
                if what != "health":
                    assert headers["Content-Type"] == "application/problem+json", what
                    assert body["status"] == 503 and "127.0.0.1" not in json.dumps(body), body
            return True

        assert len(_each_worker(service, db.key, down, timeout_s=30)) == 2
        assert slowest < PROMPT_S, f"a request took {slowest:.1f} s with the database away"
    finally:
        embedded.ensure_running(db.cluster)
        embedded.wait_ready(db.cluster)

    # Back, with no restart of the service: the first edit through it (in the very moment the
    # database returns, before any worker is known to have reconnected) must reach both
    # workers' look-ups: the change listeners reconnect, and hear of what they missed.
    back = time.monotonic()
    edit = Worker(service, db.key)
    while True:
        status, body, _, _ = edit.call("PATCH", territory, {"name": "Renamed"})
        if status == 200:
            break
        assert status == 503, body
        assert time.monotonic() - back < RECOVERY_S, "the service did not recover by itself"
        time.sleep(0.1)
    edit.close()

    def renamed(worker: Worker) -> bool:
        status, body, _, _ = worker.call("GET", "/lookup?" + _query(INSIDE))
        return bool(status == 200 and body["owner"]["name"] == "Renamed")

    assert len(_each_worker(service, db.key, renamed, timeout_s=RECOVERY_S)) == 2, (
        "a worker still answers from before the edit"
    )

    def healthy(worker: Worker) -> bool:
        paths = ("/health", "/layers", f"/layers/{LAYER}/territories", UNHELD_LOOKUP)
        for path in paths:
            status, body, _, _ = worker.call("GET", path)
            assert status == 200, (path, status, body)
        return True

    assert len(_each_worker(service, db.key, healthy, timeout_s=RECOVERY_S)) == 2
    # Nothing written while the database was away.
    assert not _sql(db, "SELECT 1 FROM layers WHERE name = 'during-outage'")
    assert _one(db, "SELECT owner FROM territories WHERE id = %s", created["id"]) == "Ann"


# --- 2 and 3. The service killed mid-import and mid-assignment -------------------------------


def _layer_id(db: Scratch, layer: str) -> int:
    return int(_one(db, "SELECT id FROM layers WHERE name = %s", layer))


def _snapshot(db: Scratch, layer: str) -> dict[str, Any]:
    """Everything of the layer, byte for byte, and every table of the schema."""
    layer_id = _layer_id(db, layer)
    return {
        "layer": _one(db, "SELECT to_jsonb(l) FROM layers l WHERE id = %s", layer_id),
        "territories": _sql(
            db,
            "SELECT to_jsonb(t) - 'geom', md5(ST_AsEWKB(geom)) FROM territories t "
            "WHERE layer_id = %s ORDER BY id",
            layer_id,
        ),
        "assignments": _sql(
            db,
            "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY customer_id)) "
            "FROM assignments a WHERE layer_id = %s",
            layer_id,
        ),
        "tables": _tables(db),
        "partitions": _sql(
            db,
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'assignments'::regclass ORDER BY 1",
        ),
    }


def _tables(db: Scratch) -> list[tuple[Any, ...]]:
    return _sql(
        db,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind IN ('r', 'p') ORDER BY 1",
    )


def _result(db: Scratch, layer: str) -> dict[str, Any]:
    """What a run made of the layer, free of ids and clocks: to compare two layers."""
    layer_id = _layer_id(db, layer)
    key = "concat_ws('|', t.name, t.properties::text, md5(ST_AsEWKB(t.geom)))"
    return {
        "territories": sorted(
            _sql(
                db,
                "SELECT (to_jsonb(t) - 'id' - 'layer_id' - 'geom' - 'created_at' - 'updated_at')"
                "::text, md5(ST_AsEWKB(geom)) FROM territories t WHERE layer_id = %s",
                layer_id,
            )
        ),
        "assigned": _one(db, "SELECT assigned_at IS NOT NULL FROM layers WHERE id = %s", layer_id),
        "rules": _sql(
            db,
            "SELECT rule, pinned, count(*) FROM assignments WHERE layer_id = %s "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            layer_id,
        ),
        "assignments": _one(
            db,
            f"SELECT md5(string_agg(concat_ws('|', a.customer_id, {key}, a.rule, a.pinned, "
            "a.value), ',' ORDER BY a.customer_id)) FROM assignments a "
            "JOIN territories t ON t.id = a.territory_id WHERE a.layer_id = %s",
            layer_id,
        ),
    }


def _territory(db: Scratch, *args: str, appname: str = "territory-faults") -> subprocess.Popen[str]:
    """The ``territory`` command line, its server sessions named ``appname``."""
    return subprocess.Popen(
        [TERRITORY, *args],
        env=db.env(PGAPPNAME=appname),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(db: Scratch, *args: str) -> str:
    proc = _territory(db, *args)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def _kill_when(
    db: Scratch, proc: subprocess.Popen[str], appname: str, where: str, timeout_s: float = 60
) -> dict[str, Any]:
    """SIGKILL the process once one of its sessions matches ``where`` (pg_stat_activity);
    wait until its sessions are gone (rolled back); returns the matched session."""
    query = (
        "SELECT pid, state, wait_event_type, query, backend_xid::text AS xid, "
        "(SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' "
        " AND l.mode = 'AccessExclusiveLock' AND l.database = a.datid "
        " AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = l.relation)) AS unseen "
        f"FROM pg_stat_activity a WHERE application_name = %s AND ({where})"
    )
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(db.dsn, autocommit=True, row_factory=dict_row) as conn:
        while True:
            found = conn.execute(query, (appname,)).fetchone()
            if found is not None:
                break
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"the run ended before it could be killed: {out[-2000:]}")
            assert time.monotonic() < deadline, "the run never reached the point to kill at"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        return found


def _wait_gone(db: Scratch, appname: str, release: Callable[[], None] | None = None) -> None:
    """The killed run's server sessions end (rolling back); ``release`` frees a held lock."""
    if release is not None:
        release()
    deadline = time.monotonic() + 30
    while _sql(db, "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", appname):
        assert time.monotonic() < deadline, "the killed run's session lingers"
        time.sleep(0.05)


class SwapGate:
    """Holds the lock a partition swap takes (territories, share row exclusive) at bay: a
    run reaches its swap with all its work done, uncommitted, and waits there."""

    def __init__(self, db: Scratch) -> None:
        self._conn = psycopg.connect(db.dsn)
        # ROW EXCLUSIVE (what any INSERT takes): the run's own writes go on, its swap waits.
        self._conn.execute("LOCK TABLE territories IN ROW EXCLUSIVE MODE")

    def release(self) -> None:
        """Let go (the waiting session, its client dead by now, proceeds and ends)."""
        self._conn.rollback()
        self._conn.close()


AT_SWAP = "wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE territories%%'"


def _assert_no_orphans(db: Scratch) -> None:
    leftovers = _sql(
        db,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname LIKE 'assignments%%' AND relkind = 'r' AND NOT relispartition",
    )
    assert not leftovers, f"tables left behind by a killed run: {leftovers}"
    partitions = {
        row[0]
        for row in _sql(
            db,
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'assignments'::regclass",
        )
    }
    layers = {f"assignments_layer_{row[0]}" for row in _sql(db, "SELECT id FROM layers")}
    assert partitions == layers, "every layer has its one partition, and nothing else is one"


def _prepare(db: Scratch, layer: str, *, assigned: bool, file: Path | None = None) -> None:
    """A new layer (kept assigned or not) with the file's territories: set-up, in process."""
    engine = make_engine(db.url, Settings(database=DatabaseSettings(url=db.url)))
    try:
        with Session(engine) as session:
            layers.create(session, name=layer, title=None, description=None)
            session.commit()
            if assigned:
                assign_layer(session, layer=layer, registry=IndexRegistry(sessionmaker(engine)))
                session.commit()
            if file is not None:
                drafts = read_territories(file.name, file.read_bytes())
                import_territories(session, layer=layer, drafts=drafts)
            session.commit()
    finally:
        engine.dispose()


def test_a_killed_import_leaves_the_layer_as_it_was(db: Scratch) -> None:
    # A layer kept assigned (so an import re-assigns every customer in its transaction), with
    # the 56 states; the import replaces them with the 3,230 counties.
    _prepare(db, "plan", assigned=True, file=db.states)
    before = _snapshot(db, "plan")
    assert before["assignments"][0][0] > CUSTOMERS * 0.9  # the states own most customers
    replace = ("territories", "import", "plan", str(db.counties), "--replace")

    # Killed while busy writing territories (the old ones deleted in the same transaction).
    busy = _territory(db, *replace, appname="import-busy")
    writing = "backend_xid IS NOT NULL AND query LIKE 'INSERT INTO territories%%'"
    _kill_when(db, busy, "import-busy", writing)
    _wait_gone(db, "import-busy")
    assert _snapshot(db, "plan") == before

    # Killed at the swap: every territory written, every customer assigned again into the
    # layer's fresh partition table, all uncommitted.
    gate = SwapGate(db)
    try:
        late = _territory(db, *replace, appname="import-late")
        found = _kill_when(db, late, "import-late", AT_SWAP)
    finally:
        _wait_gone(db, "import-late", release=gate.release)
    assert found["xid"] and found["unseen"] >= 1, found  # the new table existed, unseen
    assert _snapshot(db, "plan") == before
    _assert_no_orphans(db)

    # Run again, to the end: the same as one clean run into a fresh layer kept assigned.
    _run(db, *replace)
    _prepare(db, "fresh", assigned=True)
    _run(db, "territories", "import", "fresh", str(db.counties))
    again, clean = _result(db, "plan"), _result(db, "fresh")
    assert len(clean["territories"]) == 3230 and clean["assigned"]
    assert again == clean
    _assert_no_orphans(db)


def test_a_killed_assignment_leaves_the_assignments_as_they_were(db: Scratch) -> None:
    # Two layers with the same states and the same pins, never bulk-assigned: one is assigned
    # cleanly, the other killed while being assigned, then assigned again.
    for layer in ("twin", "target"):
        _prepare(db, layer, assigned=False, file=db.states)
        for customer_id, fips in ((1, "06"), (2, "36")):  # pinned to CA and NY, wherever they are
            _sql(
                db,
                "INSERT INTO assignments (layer_id, customer_id, territory_id, rule, pinned, "
                "value) SELECT t.layer_id, c.id, t.id, 'pinned', true, c.value "
                "FROM territories t JOIN layers l ON l.id = t.layer_id, customers c "
                "WHERE c.id = %s AND l.name = %s AND t.properties ->> 'fips' = %s",
                customer_id,
                layer,
                fips,
            )
    _run(db, "assign", "twin")
    before = _snapshot(db, "target")
    assert before["assignments"][0][0] == 2  # the pins only
    assert before["layer"]["assigned_at"] is None

    gate = SwapGate(db)
    try:
        run = _territory(db, "assign", "target", appname="assign-late")
        found = _kill_when(db, run, "assign-late", AT_SWAP)
    finally:
        _wait_gone(db, "assign-late", release=gate.release)
    assert found["xid"] and found["unseen"] >= 1, found  # assignments_layer_<id>_next existed
    assert _snapshot(db, "target") == before
    _assert_no_orphans(db)

    _run(db, "assign", "target")
    again, clean = _result(db, "target"), _result(db, "twin")
    assert clean["assigned"] and ["pinned", True, 2] in [list(r) for r in clean["rules"]]
    assert sum(n for _, _, n in clean["rules"]) > CUSTOMERS * 0.9
    assert again == clean
    _assert_no_orphans(db)
