"""Schemathesis against the service's own OpenAPI document, every operation (issue 6, item 4).

A real ``uvicorn`` on a private PostgreSQL cluster (never the shared test database: the run
deletes layers), holding demo-ish data: the reference boundaries, 200 demo customers and a
small layer ``fuzz`` of overlapping squares, assigned. Path parameters are drawn mostly from
what exists (schemathesis dictionaries: ``{layer}`` = fuzz, real territory, customer and
feature ids), so requests reach the data, not only the 404s. The checks: no server error
(5xx), and every status code, content type, header and body is the one the document declares.
The service's log must hold no traceback either (an error answered as a 4xx but logged).

The bounded run (the default pytest run, so ./scripts/test) makes up to TERRITORY_FUZZ_EXAMPLES
(default 50) test cases per operation and phase with a fixed seed (TERRITORY_FUZZ_SEED, 1):
about a minute and a half on two cores. The longer run is the same test with more examples and
another seed, e.g. (about 25 minutes)::

    TERRITORY_FUZZ_EXAMPLES=1000 TERRITORY_FUZZ_SEED=3 .venv/bin/pytest -s tests/app/test_fuzz.py

On a failure the assertion message holds schemathesis' report, with a curl command line
reproducing each failing case.

Phases, because deletes would take the data the other operations are meant to hit: first every
operation except the DELETEs, then the deletes of territories and pins, then DELETE
/layers/{layer} (of ``spare`` and ``fuzz`` itself) last. Together: every operation.

Not in the run: ``positive_data_acceptance`` (a schema-valid request must succeed) and
``negative_data_rejection`` (a schema-invalid one must be refused). The schemas say what they
can (lengths, ranges, required and non-null members, reserved property keys); what stays is
semantic, and a JSON schema cannot say it: a polygon must be valid, a county or state code must
exist, a territory id must belong to the layer, a file must be a readable CSV, GeoJSON or
GeoPackage; and rules across parameters: zoom or tolerance_m, one white-space market, the
look-up's layer in the query or the body, the filters an OGC collection has. Schema-valid
requests that break those are rightly answered 4xx, which the first check counts as failures
(so is 2.0 for an integer id: JSON Schema calls it an integer, the service wants 2). The second
asks the opposite, that the service take nothing beyond its schema, where it is lenient on
purpose (column names in any case and spelling, read-only keys echoed back from a GET).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from app import boundaries, demo, embedded
from app.db import make_engine, migrate
from app.repositories import customers
from app.repositories import layers as layer_repo
from app.settings import DatabaseSettings, EmbeddedSettings, Settings
from tests import canonical
from tests.keys import bearer, make_key

ST = str(Path(sys.executable).with_name("st"))
EXAMPLES = int(os.environ.get("TERRITORY_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("TERRITORY_FUZZ_SEED", "1"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# The phases, each an ``st run`` with the options selecting its operations.
PHASES = {
    "all but the deletes": ["--exclude-method", "DELETE"],
    "deletes of territories and pins": [
        "--include-name", "DELETE /layers/{layer}/territories/{territory_id}",
        "--include-name", "DELETE /layers/{layer}/pins/{customer_id}",
    ],
    "delete a layer": ["--include-name", "DELETE /layers/{layer}"],
    # Last: a key id drawn at random may be the fuzzer's own key, after which only 401s come.
    "revoke a key": ["--include-name", "DELETE /keys/{key_id}"],
}  # fmt: skip


@pytest.fixture
def fuzz_headers(database: str) -> dict[str, str]:
    """Headers every schemathesis request carries: an admin key (every operation is open to
    it, as the issue asks: "with a valid key")."""
    engine = make_engine(database, Settings(database=DatabaseSettings(url=database)))
    try:
        return bearer(make_key(engine, "admin", label="fuzz"))
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private cluster's database: migrated, boundaries and 200 demo customers; its URL.

    The boundary layers (3,230 counties, 56 states) are dropped again: every edit of a layer
    makes its next validate, overlaps and coverage answer work from scratch, seconds each on
    the counties. The boundaries stay (compositions, white-space markets, /ogc collections).
    """
    folder = tmp_path_factory.mktemp("fuzz")
    cluster = EmbeddedSettings(data_dir=folder / "pg", port=_free_port(), database="fuzz")
    try:
        embedded.ensure_running(cluster)
        embedded.wait_ready(cluster)
        url = embedded.ensure_database(cluster)
        engine = make_engine(url, Settings(database=DatabaseSettings(url=url)))
        migrate(engine)
        with Session(engine) as session:
            boundaries.load(session, data_dir=Settings().data_dir)
            for name in ("counties", "states"):
                layer_repo.remove(session, name=name)
            customers.upsert(session, batch=demo.generate(200, seed=7))
            session.commit()
        engine.dispose()
        yield url
    finally:
        embedded.stop(cluster)
        shutil.rmtree(embedded.data_dir(cluster), ignore_errors=True)


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``uvicorn app.main:app`` over the fuzz database; yields its base URL.

    At the end the log must hold no traceback: an error turned into a 4xx but logged as a
    crash is a bug schemathesis cannot see.
    """
    port = _free_port()
    log = tmp_path_factory.mktemp("fuzz-server") / "uvicorn.log"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(TERRITORY_DATABASE_URL=database, TERRITORY_INDEX_WARM="false")
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
           "--port", str(port), "--no-access-log"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/health", proc, log)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    crashes = [line for line in log.read_text().splitlines() if "Traceback" in line]
    assert not crashes, "\n".join(crashes[:3])[-10_000:]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer in 60 s: {log.read_text()[-3000:]}")


def _square(x0: float, y0: float, size: float) -> dict[str, Any]:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


@dataclass(frozen=True)
class Known:
    """Ids that exist on the server, for the path parameters."""

    territories: list[int]
    customers: list[int]
    keys: list[int]  # spare keys, there to be revoked


def _seed(base: str, headers: dict[str, str]) -> Known:
    """The ``fuzz`` layer (overlapping squares over the demo customers, assigned, one customer
    pinned) and an empty ``spare`` one, through the API itself."""
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for name in ("fuzz", "spare"):
            assert http.post("/layers", json={"name": name}).status_code == 201
        shapes = [
            ("West", _square(-125, 32, 12), "Ann", 1),
            ("Plains", _square(-110, 30, 15), "Bob", 2),
            ("Overlap", _square(-100, 35, 10), "Cy", 1),  # overlaps Plains
            ("East", _square(-85, 30, 15), None, 1),
        ]
        ids = []
        for name, shape, owner, priority in shapes:
            body = canonical.feature(shape, name=name, owner=owner, priority=priority)
            created = http.post("/layers/fuzz/territories", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        assert http.post("/layers/fuzz/assign").status_code == 200
        page = http.get("/customers", params={"limit": 5}).json()
        pinned = http.put(
            f"/layers/fuzz/pins/{page['features'][0]['id']}", json={"territory_id": ids[1]}
        )
        assert pinned.status_code == 200, pinned.text
        keys = [http.post("/keys", json={"role": "read"}).json()["id"] for _ in range(3)]
    return Known(territories=ids, customers=[f["id"] for f in page["features"]], keys=keys)


def _config(path: Path, known: Known, layers: list[str]) -> Path:
    """A schemathesis.toml binding the path parameters to what exists, 4 times in 5."""

    def values(items: list[Any]) -> str:
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in items) + "]"

    features = [str(t) for t in known.territories]
    path.write_text(
        "[dictionaries]\n"
        f"layers = {{ values = {values(layers)} }}\n"
        f"collections = {{ values = {values([*layers, 'customers', 'us-states'])} }}\n"
        f"territories = {{ values = {values(known.territories)} }}\n"
        f"features = {{ values = {values(features)} }}\n"
        f"customers = {{ values = {values(known.customers)} }}\n"
        f"keys = {{ values = {values(known.keys)} }}\n"
        "[parameters]\n"
        '"path.layer" = { dictionary = "layers", probability = 0.8 }\n'
        '"path.collectionId" = { dictionary = "collections", probability = 0.8 }\n'
        '"path.territory_id" = { dictionary = "territories", probability = 0.8 }\n'
        '"path.featureId" = { dictionary = "features", probability = 0.8 }\n'
        '"path.customer_id" = { dictionary = "customers", probability = 0.8 }\n'
        '"path.key_id" = { dictionary = "keys", probability = 0.8 }\n'
        '"body.territory_id" = { dictionary = "territories", probability = 0.8 }\n'
    )
    return path


def _st_run(base: str, config: Path, headers: dict[str, str], selection: list[str]) -> str:
    """One ``st run``; its report, or a failure carrying it."""
    cmd = [ST, "--config-file", str(config), "run", f"{base}/openapi.json",
           "--checks", ",".join(CHECKS), "--max-examples", str(EXAMPLES), "--seed", str(SEED),
           "--workers", "2", "--request-timeout", "30", "--generation-database", "none",
           "--no-color", *selection]  # fmt: skip
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=config.parent, check=False)
    report = done.stdout + done.stderr
    print(report)  # shown with -s, as the longer run's progress
    assert done.returncode == 0, report[-20_000:]
    return report


def test_schemathesis_finds_nothing(
    server: str, database: str, fuzz_headers: dict[str, str], tmp_path: Path
) -> None:
    known = _seed(server, fuzz_headers)
    reports = {}
    for phase, selection in PHASES.items():
        layers = ["spare", "fuzz"] if phase == "delete a layer" else ["fuzz"]
        config = _config(tmp_path / f"{len(reports)}.toml", known, layers)
        reports[phase] = _st_run(server, config, fuzz_headers, selection)
    # Every operation was tested somewhere, and with the key let in (not 401s throughout): the
    # keys it made are there. A key of our own asks: the last phase may have revoked its key.
    engine = make_engine(database, Settings(database=DatabaseSettings(url=database)))
    checker = bearer(make_key(engine, "admin", label="fuzz check"))
    engine.dispose()
    with httpx.Client(base_url=server, headers=checker) as http:
        paths = http.get("/openapi.json").json()["paths"]
        made = http.get("/keys", params={"revoked": True}).json()["keys"]
        assert len([k for k in made if k["label"] not in ("fuzz", "fuzz check")]) > 3 + 5
    operations = sum(len(methods) for methods in paths.values())
    tested = sum(_tested(report) for report in reports.values())
    assert tested == operations, reports


def _tested(report: str) -> int:
    """The number of operations a report says it tested ("Tested: N")."""
    for line in report.splitlines():
        if line.strip().startswith("Tested:"):
            return int(line.split(":")[1])
    raise AssertionError(f"no 'Tested:' line in the report:\n{report[-5000:]}")
