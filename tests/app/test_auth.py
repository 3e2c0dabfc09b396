"""API keys: authentication (401), roles (403), layer scopes (the 404 of an unknown layer)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from app.auth import PUBLIC_PATHS, route_path
from app.cli import cli
from app.factory import create_app
from app.settings import AuthSettings, Settings
from tests import canonical
from tests.keys import bearer, make_key

PARTNER = "partners-acme"
HIDDEN = "counties"  # exists, but not for the partner's key
UNKNOWN = "no-such-layer"  # does not exist at all
TERRITORY = str(Path(sys.executable).with_name("territory"))
TOKEN = re.compile(r"tmk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
# POSTs that only read: look-ups of many points, white space of a market sent as a polygon.
ONE_CUSTOMER = [{"external_id": "c1", "lon": 0.5, "lat": 0.5, "value": 10}]
READING_POSTS = {"/lookup", "/layers/{layer}/whitespace"}


@pytest.fixture
def app_client(settings: Settings, engine: Engine, clean: None) -> Iterator[TestClient]:
    """A client that sends no key of its own (each test chooses)."""
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def partner_layer(client: TestClient) -> dict[str, Any]:
    """The layer PARTNER with one territory (a 1° square at 0,0), assigned."""
    assert client.post("/layers", json={"name": PARTNER}).status_code == 201
    made = client.post(
        f"/layers/{PARTNER}/territories", json=canonical.feature(canonical.SQUARE, name="Sq")
    )
    assert made.status_code == 201, made.text
    assert client.post("/customers", json=ONE_CUSTOMER).status_code == 200
    return made.json()


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every documented operation."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    )


def _fill(template: str, layer: str = PARTNER) -> str:
    values = {"layer": layer, "collectionId": layer, "z": "0", "x": "0", "y": "0"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), template)


def _refused_soon(client: TestClient, headers: dict[str, str], timeout_s: float = 10) -> None:
    """Wait until ``client`` refuses the key (401): a worker hears of a revocation by NOTIFY."""
    deadline = time.monotonic() + timeout_s
    while client.get("/layers", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "a worker still takes a revoked key"
        time.sleep(0.05)


# --- authentication --------------------------------------------------------------------------


def test_every_operation_needs_a_key(app_client: TestClient) -> None:
    operations = _routes(app_client.app)
    guarded = [(m, p) for m, p in operations if p not in PUBLIC_PATHS]
    assert len(guarded) > 40
    for method, template in guarded:
        answer = app_client.request(method, _fill(template))
        body = _problem(answer, 401)
        assert "Authorization: Bearer" in body["detail"], (method, template)
        assert answer.headers["www-authenticate"].startswith("Bearer")
    # Unknown paths too: nothing is learnt about the API's shape without a key.
    _problem(app_client.get("/no/such/path"), 401)


def test_public_documents_need_no_key(app_client: TestClient) -> None:
    for path in ("/health", "/openapi.json", "/docs", "/map", "/ogc", "/ogc/conformance"):
        assert app_client.get(path).status_code == 200, path
    spec = app_client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert spec["paths"]["/layers"]["get"]["security"]  # documented per operation
    assert "security" not in spec["paths"]["/health"]["get"]


def test_bad_keys_are_refused(app_client: TestClient, engine: Engine) -> None:
    key = make_key(engine, "read")
    assert app_client.get("/layers", headers=bearer(key)).status_code == 200
    assert app_client.get("/layers", headers={"X-API-Key": key}).status_code == 200
    assert app_client.get("/layers", headers={"Authorization": f"bearer {key}"}).status_code == 200
    forged = key[:-4] + (
        "AAAA" if not key.endswith("AAAA") else "BBBB"
    )  # right prefix, wrong secret
    for bad in (forged, "tmk_000000000000_" + "A" * 43, "not-a-key", key + "x"):
        body = _problem(app_client.get("/layers", headers=bearer(bad)), 401)
        assert "not valid" in body["detail"]
        assert bad not in body["detail"]  # never echoed
    _problem(app_client.get("/layers", headers={"Authorization": f"Basic {key}"}), 401)


# --- roles -----------------------------------------------------------------------------------


def test_a_read_key_reads_and_changes_nothing(
    app_client: TestClient, engine: Engine, partner_layer: dict[str, Any]
) -> None:
    reader = bearer(make_key(engine, "read"))
    assert app_client.get(f"/layers/{PARTNER}/territories", headers=reader).status_code == 200
    lookup = app_client.get("/lookup?lon=0.5&lat=0.5&layer=" + PARTNER, headers=reader)
    assert lookup.json()["owner"]["name"] == "Sq"
    batch = app_client.post(
        "/lookup", json={"layer": PARTNER, "points": [[0.5, 0.5]]}, headers=reader
    )
    assert batch.status_code == 200
    for method, template in _routes(app_client.app):
        if method == "GET" or template in READING_POSTS or template in PUBLIC_PATHS:
            continue
        body = _problem(app_client.request(method, _fill(template), headers=reader), 403)
        assert "role is read" in body["detail"], (method, template)
    # Nothing changed.
    assert (
        app_client.get(f"/layers/{PARTNER}/territories", headers=reader).json()["features"][0][
            "properties"
        ]["name"]
        == "Sq"
    )
    _problem(app_client.get("/metrics", headers=reader), 403)
    _problem(app_client.get("/keys", headers=reader), 403)


def test_a_write_key_edits_territories_but_not_layers_or_keys(
    app_client: TestClient, engine: Engine, partner_layer: dict[str, Any]
) -> None:
    writer = bearer(make_key(engine, "write"))
    tid = partner_layer["id"]
    patched = app_client.patch(
        f"/layers/{PARTNER}/territories/{tid}", json={"owner": "Acme"}, headers=writer
    )
    assert patched.status_code == 200, patched.text
    assert app_client.post("/customers", json=ONE_CUSTOMER, headers=writer).status_code == 200
    _problem(app_client.post("/layers", json={"name": "mine"}, headers=writer), 403)
    _problem(app_client.delete(f"/layers/{PARTNER}", headers=writer), 403)
    _problem(app_client.post("/keys", json={"role": "read"}, headers=writer), 403)
    assert app_client.get("/metrics", headers=writer).status_code == 403


# --- scopes ----------------------------------------------------------------------------------


def _same_as_unknown(
    client: TestClient, headers: dict[str, str], method: str, template: str
) -> None:
    """The hidden layer's answer is the unknown layer's, word for word (names swapped)."""
    hidden = client.request(method, _fill(template, HIDDEN), headers=headers)
    unknown = client.request(method, _fill(template, UNKNOWN), headers=headers)
    # 404, or 403 where the key's role may not do this to any layer (DELETE /layers/...).
    assert hidden.status_code == unknown.status_code, (method, template, hidden.text)
    assert hidden.status_code in (403, 404), (method, template, hidden.text)
    assert hidden.headers["content-type"] == unknown.headers["content-type"]
    assert hidden.text.replace(HIDDEN, "X") == unknown.text.replace(UNKNOWN, "X"), template


def test_a_hidden_layer_looks_exactly_like_an_unknown_one(
    app_client: TestClient, engine: Engine, partner_layer: dict[str, Any]
) -> None:
    partner = bearer(make_key(engine, "write", layers=[PARTNER]))
    per_layer = [
        (m, p) for m, p in _routes(app_client.app) if "{layer}" in p or "{collectionId}" in p
    ]
    assert len(per_layer) >= 25
    for method, template in per_layer:
        _same_as_unknown(app_client, partner, method, template)
    # Even with another parameter wrong, which an unknown layer's route would judge first if
    # the scope were checked late: both answer the same 404.
    for query in ("/coverage?zoom=99", "/overlaps?limit=0", "/territories?bbox=1,2"):
        _same_as_unknown(app_client, partner, "GET", "/layers/{layer}" + query)
    _same_as_unknown(app_client, partner, "GET", "/lookup?lon=500&lat=0&layer={layer}")
    _same_as_unknown(app_client, partner, "GET", "/lookup?lon=0.5&lat=0.5&layer={layer}")
    for layer in (HIDDEN, UNKNOWN):
        body = {"layer": layer, "points": [[0.5, 0.5]]}
        assert _problem(app_client.post("/lookup", json=body, headers=partner), 404)["detail"] == (
            f"layer '{layer}' does not exist; GET /layers lists them"
        )


def test_a_partner_sees_only_its_layers_in_every_listing(
    app_client: TestClient, engine: Engine, partner_layer: dict[str, Any]
) -> None:
    partner = bearer(make_key(engine, "read", layers=[PARTNER]))
    listed = app_client.get("/layers", headers=partner).json()["layers"]
    assert [layer["name"] for layer in listed] == [PARTNER]
    collections = app_client.get("/ogc/collections", headers=partner).json()["collections"]
    assert [c["id"] for c in collections] == [PARTNER, "customers", "us-states", "us-counties"]
    customer_id = app_client.get("/customers", headers=partner).json()["features"][0]["id"]
    owners = app_client.get(f"/customers/{customer_id}/territories", headers=partner).json()
    assert [o["layer"] for o in owners["layers"]] == [PARTNER]
    assert app_client.get(f"/layers/{PARTNER}/export", headers=partner).status_code == 200
    assert app_client.get(f"/tiles/{PARTNER}/0/0/0.mvt", headers=partner).status_code == 200
    items = app_client.get(f"/ogc/collections/{PARTNER}/items", headers=partner).json()
    assert [f["properties"]["name"] for f in items["features"]] == ["Sq"]
    # What a partner's key may not do, even with role write: change the shared customers.
    writer = bearer(make_key(engine, "write", layers=[PARTNER]))
    body = _problem(app_client.post("/customers", json=ONE_CUSTOMER, headers=writer), 403)
    assert "limited to some layers" in body["detail"]


def test_a_hidden_layer_stays_hidden_on_the_lookup_fast_path(
    app_client: TestClient, engine: Engine, partner_layer: dict[str, Any]
) -> None:
    admin = bearer(make_key(engine, "admin"))
    partner = bearer(make_key(engine, "read", layers=[PARTNER]))
    query = f"/lookup?lon=-118.25&lat=34.05&layer={HIDDEN}"
    assert app_client.get(query, headers=admin).json()["owner"]["name"] == "Los Angeles"  # held
    _problem(app_client.get(query, headers=partner), 404)


# --- keys: the admin endpoints, revocation, anonymous reads, the CLI -------------------------


def test_keys_are_created_shown_once_and_revoked(
    app_client: TestClient, engine: Engine, settings: Settings, auth_headers: dict[str, str]
) -> None:
    made = app_client.post("/keys", json={"role": "read", "label": "acme"}, headers=auth_headers)
    assert made.status_code == 201, made.text
    created = made.json()
    assert TOKEN.fullmatch(created["key"]) and created["key"].startswith(
        f"tmk_{created['prefix']}_"
    )
    key = bearer(created["key"])
    listing = app_client.get("/keys", headers=auth_headers)
    assert created["key"] not in listing.text  # never shown again, nor its hash
    assert {"id", "prefix", "role", "layers", "label"} <= set(listing.json()["keys"][0])
    with TestClient(create_app(settings)) as other_worker:
        assert other_worker.app.state.change_listener.listening.wait(10)  # type: ignore[attr-defined]
        assert app_client.get("/layers", headers=key).status_code == 200
        assert other_worker.get("/layers", headers=key).status_code == 200  # now held there too
        revoked = app_client.delete(f"/keys/{created['id']}", headers=auth_headers)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        _problem(app_client.get("/layers", headers=key), 401)  # this worker: at once
        _refused_soon(other_worker, key)  # the other: when the commit's NOTIFY lands
    assert created["id"] not in [
        k["id"] for k in app_client.get("/keys", headers=auth_headers).json()["keys"]
    ]
    _problem(app_client.delete("/keys/999999999", headers=auth_headers), 404)


def test_key_requests_are_checked(app_client: TestClient, auth_headers: dict[str, str]) -> None:
    admin_scoped = {"role": "admin", "layers": ["counties"]}
    body = _problem(app_client.post("/keys", json=admin_scoped, headers=auth_headers), 422)
    assert "admin keys cannot be limited" in body["detail"]
    missing = {"role": "read", "layers": ["counties", UNKNOWN]}
    body = _problem(app_client.post("/keys", json=missing, headers=auth_headers), 422)
    assert body["field"] == "layers" and UNKNOWN in body["detail"]
    _problem(app_client.post("/keys", json={"role": "owner"}, headers=auth_headers), 422)


def test_anonymous_reads_when_allowed(
    settings: Settings, engine: Engine, clean: None, auth_headers: dict[str, str]
) -> None:
    public = settings.model_copy(
        update={"auth": AuthSettings(anonymous_read=True, anonymous_layers=["states"])}
    )
    with TestClient(create_app(public)) as anonymous:
        listed = anonymous.get("/layers").json()["layers"]
        assert [layer["name"] for layer in listed] == ["states"]
        assert anonymous.get("/lookup?lon=-118&lat=34&layer=states").json()["owner"]
        _problem(anonymous.get("/layers/counties"), 404)
        body = _problem(anonymous.post("/layers", json={"name": "x"}), 401)  # a key is needed
        assert "need an API key" in body["detail"]
        _problem(anonymous.get("/layers", headers=bearer("tmk_bad")), 401)  # a bad key is not none
        assert (
            anonymous.post("/layers", json={"name": "x"}, headers=auth_headers).status_code == 201
        )


def test_the_cli_makes_lists_and_revokes_keys(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, app_client: TestClient
) -> None:
    assert settings.database.url
    monkeypatch.setenv("TERRITORY_DATABASE_URL", settings.database.url)
    runner = CliRunner()
    # A real process: the key alone on stdout (KEY=$(territory keys create ...) works), the
    # rest on stderr.
    made = subprocess.run(
        [TERRITORY, "keys", "create", "--role", "read", "--layers", "states", "--label", "cli"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = TOKEN.fullmatch(made.stdout.strip())
    assert key, made.stdout
    assert "cannot be shown again" in made.stderr
    listed = app_client.get("/layers", headers=bearer(key.group(0))).json()["layers"]
    assert [layer["name"] for layer in listed] == ["states"]
    table = runner.invoke(cli, ["keys", "list"])
    assert "cli" in table.output and key.group(0) not in table.output
    key_id = int(re.findall(r"key (\d+) created", made.stderr)[0])
    assert runner.invoke(cli, ["keys", "revoke", str(key_id)]).exit_code == 0
    # The running service held the key: it drops it when the revocation's NOTIFY lands.
    _refused_soon(app_client, bearer(key.group(0)))
    again = runner.invoke(cli, ["keys", "create", "--role", "admin", "--layers", "states"])
    assert again.exit_code == 2 and "admin keys cannot be limited" in again.output
    # --replace: one live key per label (what ./scripts/run does on every start).
    first = runner.invoke(
        cli, ["keys", "create", "--role", "admin", "--label", "demo", "--replace"]
    )
    second = runner.invoke(
        cli, ["keys", "create", "--role", "admin", "--label", "demo", "--replace"]
    )
    old, new = (TOKEN.findall(r.stdout)[-1] for r in (first, second))
    _problem(app_client.get("/layers", headers=bearer(old)), 401)
    assert app_client.get("/layers", headers=bearer(new)).status_code == 200


def test_a_key_revoked_in_sql_is_refused_by_a_worker_that_never_held_it(
    engine: Engine, settings: Settings, clean: None
) -> None:
    key = make_key(engine, "read", label="audit")
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE label = 'audit'"))
    # Revoked behind the service's back (no NOTIFY), before the worker starts: it never held
    # the key (a worker already running may load every key when its LISTEN begins, and would
    # hold this one until a NOTIFY says otherwise), so it asks the database and refuses it.
    with TestClient(create_app(settings)) as fresh:
        _problem(fresh.get("/layers", headers=bearer(key)), 401)


def test_a_reader_s_change_is_refused_before_its_body_is_read(
    app_client: TestClient, engine: Engine, settings: Settings, partner_layer: dict[str, Any]
) -> None:
    reader = bearer(make_key(engine, "read"))
    broken = {"Content-Type": "application/json", **reader}
    # A malformed body would be a 422 if it were read first; a reader gets its 403.
    _problem(app_client.post("/customers", content=b"{not json", headers=broken), 403)
    _problem(app_client.post(f"/layers/{PARTNER}/territories", content=b"[", headers=broken), 403)
    upload = {"file": ("a.csv", b"external_id,lon,lat\nx,1,1\n", "text/csv")}
    _problem(app_client.post("/customers/import", files=upload, headers=reader), 403)
    # The reads among the POSTs still read.
    assert app_client.post("/lookup", content=b"{", headers=broken).status_code == 422
    public = settings.model_copy(update={"auth": AuthSettings(anonymous_read=True)})
    with TestClient(create_app(public)) as anonymous:
        _problem(anonymous.post("/customers", content=b"{not json"), 401)


def test_a_deleted_layer_leaves_every_key_s_layers(
    app_client: TestClient, engine: Engine, auth_headers: dict[str, str]
) -> None:
    assert app_client.post("/layers", json={"name": "gone"}, headers=auth_headers).status_code
    made = app_client.post(
        "/keys", json={"role": "read", "layers": ["gone", "states"]}, headers=auth_headers
    ).json()
    key = bearer(made["key"])
    assert app_client.get("/layers/gone", headers=key).status_code == 200
    assert app_client.delete("/layers/gone", headers=auth_headers).status_code == 204
    # Another layer of the same name, made later (for another partner), is not this key's.
    assert app_client.post("/layers", json={"name": "gone"}, headers=auth_headers).status_code
    _problem(app_client.get("/layers/gone", headers=key), 404)
    stored = app_client.get(f"/keys/{made['id']}", headers=auth_headers).json()
    assert stored["layers"] == ["states"]


def test_scopes_hold_behind_a_root_path(
    settings: Settings, engine: Engine, clean: None, partner_layer: dict[str, Any]
) -> None:
    partner = bearer(make_key(engine, "read", layers=[PARTNER]))
    # As uvicorn --root-path /api passes requests on: the path keeps the prefix.
    with TestClient(create_app(settings), root_path="/api", headers=partner) as proxied:
        assert proxied.get(f"/api/lookup?lon=0.5&lat=0.5&layer={PARTNER}").status_code == 200
        _problem(proxied.get(f"/api/lookup?lon=-118.25&lat=34.05&layer={HIDDEN}"), 404)
        assert proxied.get("/api/health", headers={}).status_code == 200  # public there too
        assert route_path({"path": "/api/layers/x/coverage", "root_path": "/api"}) == (
            "/layers/x/coverage"  # what the overload bound (app/shedding.py) matches too
        )
        _problem(proxied.get("/api/layers", headers={"Authorization": ""}), 401)
