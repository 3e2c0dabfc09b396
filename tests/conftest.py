"""Test fixtures: a real PostGIS database (never a mock), fresh for every run.

The database is ``territory_test`` on the embedded cluster (another name with
TERRITORY_TEST_DATABASE, so two runs can share the cluster), dropped and migrated from empty at
the start of each run, or the one named by TERRITORY_TEST_DATABASE_URL. A skipped test fails
the run: a database test that did not run proved nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import embedded
from app.boundaries import load as load_boundaries
from app.db import alembic_config, make_engine, migrate
from app.factory import create_app
from app.settings import DatabaseSettings, EmbeddedSettings, IndexSettings, Settings
from tests.keys import bearer, make_key

TEST_DATABASE = os.environ.get("TERRITORY_TEST_DATABASE", "territory_test")
REFERENCE_LAYERS = ("states", "counties")


def _test_database_url() -> str:
    url = os.environ.get("TERRITORY_TEST_DATABASE_URL")
    if url:
        return url
    cluster = EmbeddedSettings()
    embedded.ensure_running(cluster)
    embedded.wait_ready(cluster)
    embedded.drop_database(cluster, TEST_DATABASE)
    return embedded.ensure_database(cluster, TEST_DATABASE)


@pytest.fixture(scope="session")
def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head
    return head


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings pointing at the test database."""
    return Settings(
        database=DatabaseSettings(url=_test_database_url()), index=IndexSettings(warm=False)
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    """A migrated engine on the test database, with the reference boundaries loaded."""
    assert settings.database.url
    eng = make_engine(settings.database.url, settings)
    migrate(eng)
    with Session(eng) as session:
        load_boundaries(session, data_dir=settings.data_dir)
        session.commit()
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def admin_key(engine: Engine) -> str:
    """An admin key every test client sends (tests use keys, as every client must)."""
    return make_key(engine, "admin", label="tests: admin")


@pytest.fixture(scope="session")
def auth_headers(admin_key: str) -> dict[str, str]:
    """The admin key as request headers."""
    return bearer(admin_key)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session for checks made directly in SQL (the oracle)."""
    with Session(engine) as s:
        yield s


@pytest.fixture
def clean(engine: Engine) -> None:
    """Remove what earlier tests wrote (custom layers, customers), keep reference data."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE customers, assignments"))
        conn.execute(
            text("DELETE FROM layers WHERE name <> ALL(:keep)"), {"keep": list(REFERENCE_LAYERS)}
        )


@pytest.fixture
def client(
    settings: Settings, engine: Engine, clean: None, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """An HTTP client (with the admin key) on a freshly built app over the test database."""
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test was skipped."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; a skipped test fails the run")
        session.exitstatus = 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(settings: Settings, engine: Engine) -> Iterator[str]:
    """A real uvicorn server on loopback over the test database; yields its base URL."""
    assert settings.database.url
    port = _free_port()
    env = {**os.environ, "TERRITORY_DATABASE_URL": settings.database.url}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/health", server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for(url: str, server: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise RuntimeError(f"server exited: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not answer in {timeout_s} s")


@pytest.fixture
def scratch_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedSettings]:
    """Settings of a cluster that does not exist yet; removed afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = EmbeddedSettings(data_dir=tmp_path / "pg", port=port, database="scratch")
    monkeypatch.delenv("TERRITORY_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TERRITORY_EMBEDDED_DATA_DIR", str(cluster.data_dir))
    monkeypatch.setenv("TERRITORY_EMBEDDED_PORT", str(port))
    yield cluster
    embedded.stop(cluster)
    shutil.rmtree(embedded.data_dir(cluster), ignore_errors=True)
