"""Look-ups keep answering from memory while the database is away; the rest says 503."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import embedded
from app.db import make_engine, migrate
from app.factory import create_app
from app.settings import DatabaseSettings, EmbeddedSettings, IndexSettings, Settings
from tests import canonical


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
    engine.dispose()
    with TestClient(create_app(settings)) as first:
        first.post("/layers/solo/territories", json=canonical.feature(canonical.SQUARE, name="Sq"))
    # A fresh app warms its indexes at start-up, then loses the database.
    with TestClient(create_app(settings)) as client:
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
        embedded.ensure_running(scratch_cluster)
        embedded.wait_ready(scratch_cluster)
        assert embedded.sqlalchemy_url(scratch_cluster) == url  # same port after a restart
        assert client.get("/layers").status_code == 200  # recovers by itself
