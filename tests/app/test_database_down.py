"""Look-ups keep answering from memory while the database is away; the rest says 503."""

from __future__ import annotations

import socket
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import embedded
from app.db import make_engine, migrate
from app.factory import create_app
from app.settings import DatabaseSettings, EmbeddedSettings, IndexSettings, Settings
from tests import canonical
from tests.keys import bearer, make_key

INSIDE = {"lon": 0.5, "lat": 0.5, "layer": "solo"}


def test_lookups_survive_the_database_going_away(scratch_cluster: EmbeddedSettings) -> None:
    embedded.ensure_running(scratch_cluster)
    embedded.wait_ready(scratch_cluster)
    url = embedded.ensure_database(scratch_cluster)
    settings = Settings(database=DatabaseSettings(url=url), index=IndexSettings(warm=True))
    engine = make_engine(url, settings)
    migrate(engine)
    with Session(engine) as session:  # a layer stored before the app starts
        session.execute(text("INSERT INTO layers (name) VALUES ('solo')"))
        session.commit()
    headers = bearer(make_key(engine, "write"))  # read from the database, then held in memory
    unseen = bearer(make_key(engine, "read"))  # never used before the outage
    with TestClient(create_app(settings), headers=headers) as first:
        first.post("/layers/solo/territories", json=canonical.feature(canonical.SQUARE, name="Sq"))
    # A fresh app warms its indexes at start-up, then loses the database.
    with TestClient(create_app(settings), headers=headers) as client:
        with engine.begin() as conn:  # revoked after start-up: the worker hears of it (NOTIFY)
            conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE role = 'read'"))
        engine.dispose()
        listener = client.app.state.change_listener  # type: ignore[attr-defined]
        assert listener.listening.wait(10)
        embedded.stop(scratch_cluster)
        answer = client.get("/lookup", params={"lon": 0.5, "lat": 0.5, "layer": "solo"})
        assert answer.status_code == 200
        assert answer.json()["owner"]["name"] == "Sq"
        batch = client.post("/lookup", json={"layer": "solo", "points": [[0.5, 0.5], [5, 5]]})
        assert [r["rule"] for r in batch.json()["results"]] == ["only", None]
        health = client.get("/health")
        assert health.status_code == 503 and health.headers["retry-after"]
        layers = client.get("/layers")
        assert layers.status_code == 503
        assert layers.headers["content-type"] == "application/problem+json"
        assert "127.0.0.1" not in layers.text  # nothing about the server leaks
        # A key this worker does not hold cannot be checked now: 503 (retry), not 401.
        unchecked = client.get("/lookup", params=INSIDE, headers=unseen)
        assert unchecked.status_code == 503 and unchecked.headers["retry-after"]
        assert unchecked.headers["content-type"] == "application/problem+json"
        embedded.ensure_running(scratch_cluster)
        embedded.wait_ready(scratch_cluster)
        assert embedded.sqlalchemy_url(scratch_cluster) == url  # same port after a restart
        assert client.get("/layers").status_code == 200  # recovers by itself
        assert client.get("/lookup", params=INSIDE, headers=unseen).status_code == 401  # revoked


def test_a_server_that_never_answers_fails_the_connection_in_seconds() -> None:
    """A peer that accepts TCP but never speaks (a hung server, a black-holed route): the
    connection gives up after connect_timeout, so a request gets its 503 instead of hanging."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever answers
    try:
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql+psycopg://x@127.0.0.1:{port}/x", Settings())
        failed: list[BaseException] = []

        def connect() -> None:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except OperationalError as exc:
                failed.append(exc)

        # In a thread, so that a hang fails this test instead of stalling the run.
        attempt = threading.Thread(target=connect, daemon=True)
        started = time.monotonic()
        attempt.start()
        attempt.join(timeout=15)  # 5 s connect_timeout, with slack
        assert not attempt.is_alive(), "still connecting after 15 s: no connect timeout"
        assert failed and time.monotonic() - started < 15
        engine.dispose()
    finally:
        silent.close()
