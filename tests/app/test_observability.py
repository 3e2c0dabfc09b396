"""Request ids, JSON logs and /metrics, through the real app over the test database."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import sessionmaker

from app.factory import create_app
from app.observability import JsonFormatter, RequestIdFilter, configure_logging
from app.settings import PROJECT_ROOT, LogSettings, Settings

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
SF = {"lon": -122.4194, "lat": 37.7749, "layer": "states"}


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """The test settings with JSON logs, whatever stdout is."""
    return settings.model_copy(update={"log": LogSettings(format="json", level="INFO")})


@pytest.fixture
def obs_client(
    app_settings: Settings, engine: Engine, clean: None, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """A client on a fresh app with JSON logs; server errors answered, not raised."""
    app = create_app(app_settings)

    def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)  # an unhandled error, as a bug would raise
    with TestClient(app, raise_server_exceptions=False, headers=auth_headers) as c:
        yield c


def _records(err: str) -> list[dict]:
    """The JSON log lines written to stdout (anything else there fails the test)."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def _metrics(client: TestClient) -> dict[tuple[str, frozenset], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def _value(found: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_a_request_gets_an_id_answered_and_logged(
    obs_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    answer = obs_client.get("/layers")
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    access = [r for r in _records(capsys.readouterr().out) if r["logger"] == "app.access"]
    assert len(access) == 1  # one access record per request, and uvicorn's is not there
    record = access[0]
    assert record["request_id"] == request_id
    assert record["level"] == "INFO"
    assert record["timestamp"].endswith("Z")
    assert {k: record[k] for k in ("method", "path", "route", "status")} == {
        "method": "GET",
        "path": "/layers",
        "route": "/layers",
        "status": 200,
    }
    assert record["duration_ms"] > 0
    assert "GET /layers 200" in record["message"]
    assert isinstance(record["key_id"], int)  # who called: the key's id (the audit trail)


def test_the_client_s_id_is_used_by_every_record_of_the_request(
    obs_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # The first look-up of a layer builds its index: app.indexes logs that, in a worker thread.
    answer = obs_client.get("/lookup", params=SF, headers={"X-Request-ID": "trace-42.a:b_c"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "trace-42.a:b_c"
    records = _records(capsys.readouterr().out)
    mine = {r["logger"] for r in records if r["request_id"] == "trace-42.a:b_c"}
    assert {"app.access", "app.indexes"} <= mine
    # The fast path (the index is held now) answers with the id too.
    fast = obs_client.get("/lookup", params=SF, headers={"X-Request-ID": "fast-1"})
    assert fast.headers["x-request-id"] == "fast-1"
    assert [r["status"] for r in _records(capsys.readouterr().out) if r["request_id"] == "fast-1"]


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "a;b", "é".encode(), ""])
def test_a_bad_incoming_id_is_replaced(
    obs_client: TestClient, capsys: pytest.CaptureFixture[str], bad: str | bytes
) -> None:
    capsys.readouterr()
    answer = obs_client.get("/layers", headers={"X-Request-ID": bad})
    request_id = answer.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    records = _records(capsys.readouterr().out)
    assert [r["request_id"] for r in records if r["logger"] == "app.access"] == [request_id]


def test_problems_and_server_errors_carry_the_id(
    obs_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = obs_client.get("/layers/nope/coverage", headers={"X-Request-ID": "p-404"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["x-request-id"] == "p-404"
    capsys.readouterr()
    boom = obs_client.get("/boom", headers={"X-Request-ID": "p-500"})
    assert boom.status_code == 500
    assert boom.headers["content-type"] == "application/problem+json"
    assert boom.headers["x-request-id"] == "p-500"
    records = [r for r in _records(capsys.readouterr().out) if r["request_id"] == "p-500"]
    error = [r for r in records if r["logger"] == "app.errors"]
    assert len(error) == 1 and "RuntimeError: boom" in error[0]["exception"]
    assert [r["status"] for r in records if r["logger"] == "app.access"] == [500]


def test_metrics_count_requests_by_route_template(obs_client: TestClient) -> None:
    before = _metrics(obs_client)
    obs_client.get("/layers")
    obs_client.get("/layers/states/territories", params={"limit": 1})
    obs_client.get("/layers/nope/coverage")
    obs_client.get("/layers/nope-again/coverage")
    obs_client.get("/no/such/path/123")
    obs_client.get("/boom")
    obs_client.request("BREW", "/layers")
    after = _metrics(obs_client)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    total = "http_requests_total"
    assert delta(total, method="GET", route="/layers", status="200") == 1
    assert delta(total, method="GET", route="/layers/{layer}/territories", status="200") == 1
    assert delta(total, method="GET", route="/layers/{layer}/coverage", status="404") == 2
    assert delta(total, method="GET", route="other", status="404") == 1
    assert delta(total, method="GET", route="/boom", status="500") == 1
    assert delta(total, method="OTHER", route="/layers", status="405") == 1
    # The scrape before this one was counted too, and nothing under a raw path ever is.
    assert delta(total, method="GET", route="/metrics", status="200") == 1
    assert not [k for k in after if "nope" in str(k) or "/no/such" in str(k)]
    count = "http_request_duration_seconds_count"
    assert delta(count, method="GET", route="/layers/{layer}/coverage") == 2
    assert delta("http_request_duration_seconds_sum", method="GET", route="/layers") > 0


def test_lookups_fast_path_included_and_index_gauges(obs_client: TestClient) -> None:
    before = _metrics(obs_client)
    registry = obs_client.app.state.indexes  # type: ignore[attr-defined]
    assert registry.held("states") is None
    assert obs_client.get("/lookup", params=SF).status_code == 200  # the route: builds the index
    assert registry.held("states") is not None  # so these two are the fast path's
    assert obs_client.get("/lookup", params=SF).status_code == 200
    assert obs_client.get("/lookup", params=SF).status_code == 200
    after = _metrics(obs_client)
    labels = {"method": "GET", "route": "/lookup", "status": "200"}
    assert _value(after, "http_requests_total", **labels) == (
        _value(before, "http_requests_total", **labels) + 3
    )
    entry = registry.held("states")
    assert _value(after, "territory_index_territories", layer="states") == 56
    assert _value(after, "territory_index_version_seconds", layer="states") == (
        entry.version.timestamp()
    )
    assert _value(after, "territory_index_build_seconds", layer="states", how="built") == (
        pytest.approx(entry.seconds)
    )
    # A deleted layer's series go with its index.
    obs_client.post("/layers", json={"name": "brief"})
    obs_client.get("/lookup", params={**SF, "layer": "brief"})
    assert _value(_metrics(obs_client), "territory_index_territories", layer="brief") == 0
    assert ("territory_index_territories", frozenset({("layer", "brief")})) in _metrics(obs_client)
    assert obs_client.delete("/layers/brief").status_code == 204
    obs_client.get("/lookup", params={**SF, "layer": "brief"})  # 404: the registry drops it
    gone = _metrics(obs_client)
    assert ("territory_index_territories", frozenset({("layer", "brief")})) not in gone


def test_bulk_assignments_are_timed(obs_client: TestClient) -> None:
    customers = [{"external_id": f"c{i}", "lon": -100 + i, "lat": 40} for i in range(5)]
    assert obs_client.post("/customers", json=customers).status_code < 300
    before = _value(_metrics(obs_client), "territory_assignment_seconds_count")
    assert obs_client.post("/layers/states/assign").status_code == 200
    after = _metrics(obs_client)
    assert _value(after, "territory_assignment_seconds_count") == before + 1
    assert _value(after, "territory_assignment_seconds_bucket", le="+Inf") >= before + 1


def test_database_errors_are_counted_by_kind(
    obs_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _metrics(obs_client)
    assert obs_client.post("/layers", json={"name": "nul"}).status_code == 201
    nul = {"name": "nul\u0000", "states": ["RI"]}  # text PostgreSQL refuses: a DataError
    assert obs_client.post("/layers/nul/territories", json=nul).status_code == 422
    # The database goes away: nothing listens on port 1 (connection refused, at once).
    app = obs_client.app
    saved = app.state.sessionmaker  # type: ignore[attr-defined]
    dead = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=True)
    app.state.sessionmaker = sessionmaker(dead)  # type: ignore[attr-defined]
    try:
        down = obs_client.get("/layers", headers={"X-Request-ID": "db-down"})
    finally:
        app.state.sessionmaker = saved  # type: ignore[attr-defined]
        dead.dispose()
    assert down.status_code == 503
    assert down.headers["x-request-id"] == "db-down"
    after = _metrics(obs_client)
    errors = "territory_database_errors_total"
    assert _value(after, errors, kind="data") == _value(before, errors, kind="data") + 1
    assert _value(after, errors, kind="unavailable") == (
        _value(before, errors, kind="unavailable") + 1
    )
    assert _value(after, errors, kind="other") == _value(before, errors, kind="other")


def test_metrics_are_documented_as_text(obs_client: TestClient) -> None:
    spec = obs_client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert set(spec["responses"]["200"]["content"]) == {"text/plain"}


def test_logging_is_set_up_while_the_app_runs_only(app_settings: Settings, engine: Engine) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("uvicorn.access").disabled)
    with TestClient(create_app(app_settings)):
        assert len([h for h in root.handlers if h not in before[0]]) == 1
        assert root.level == logging.INFO
        assert logging.getLogger("uvicorn.access").disabled
    # The CLI run in the same process afterwards prints what it printed before any app.
    after = (list(root.handlers), root.level, logging.getLogger("uvicorn.access").disabled)
    assert after == before


def test_text_logs_and_extras(capsys: pytest.CaptureFixture[str]) -> None:
    restore_first = configure_logging(LogSettings(format="json", level="INFO"))
    restore = configure_logging(LogSettings(format="text", level="warning"))  # replaces, once
    try:
        capsys.readouterr()
        logging.getLogger("app.test").warning("careful")
        logging.getLogger("app.test").info("not shown")
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1 and lines[0].endswith("WARNING app.test [None] careful")
        assert logging.getLogger("uvicorn.access").disabled
        assert logging.getLogger("uvicorn.error").propagate
    finally:
        restore()
        restore_first()
    # Extras are fields; exceptions are one field, so a record stays one line.
    formatter = JsonFormatter()
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops %d", (7,), sys.exc_info())
    record.__dict__.update(layer="states", big=2**70, when=Path("/tmp"))
    RequestIdFilter().filter(record)
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "oops 7" and entry["layer"] == "states"
    assert entry["big"] == 2**70 and entry["when"] == "/tmp"
    assert entry["request_id"] is None
    assert "ValueError: bad" in entry["exception"]


def test_log_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERRITORY_LOG_LEVEL", "debug")
    monkeypatch.setenv("TERRITORY_LOG_FORMAT", "TEXT")
    assert Settings().log == LogSettings(format="text", level="DEBUG")
    monkeypatch.setenv("TERRITORY_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="level"):
        LogSettings()


# A worker: serves (observes), then shuts down through the middleware, or renders /metrics.
_WORKER = textwrap.dedent(
    """
    import asyncio
    import os
    import sys
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from app import metrics
    from app.observability import Observability

    metrics.observe_request("GET", "/layers", 200, 0.01)
    metrics.observe_database_error("unavailable")
    version = datetime(2026, 1, 1, tzinfo=timezone.utc)
    index = SimpleNamespace(layer="states", version=version, index=[0] * 56, how="built", seconds=1)
    metrics.observe_index(index)


    async def app(scope, receive, send):
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


    async def lifespan():
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive():
            return next(messages)

        async def send(message):
            pass

        await Observability(app)({"type": "lifespan"}, receive, send)


    if sys.argv[1] == "render":
        print(f"# pid {os.getpid()}")
        sys.stdout.write(metrics.render().decode())
    else:
        asyncio.run(lifespan())
    """
)


def test_multiprocess_mode_sums_the_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(what: str) -> str:
        run = [sys.executable, "-c", _WORKER, what]
        done = subprocess.run(
            run, check=False, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker("stop")
    worker("stop")
    text = worker("render")
    shown = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = {"method": "GET", "route": "/layers", "status": "200"}
    assert _value(shown, "http_requests_total", **labels) == 3  # two gone workers + this one
    assert _value(shown, "territory_database_errors_total", kind="unavailable") == 3
    gauges = [k for k in shown if k[0] == "territory_index_territories"]
    assert len(gauges) == 1  # the stopped workers' gauges went with them; this one's is shown
    assert shown[gauges[0]] == 56
    pid = text.split()[2]  # the rendering worker's: the only one still serving
    assert dict(gauges[0][1])["pid"] == pid
    assert [p.name for p in tmp_path.glob("gauge_liveall_*.db")] == [f"gauge_liveall_{pid}.db"]
