"""CORS for map front-ends on other origins: allowed origins come from the settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.factory import create_app
from app.settings import Settings

MAPS = "https://maps.example.com"


@pytest.fixture
def cors_client(
    settings: Settings, engine: Engine, clean: None, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    allowed = settings.model_copy(
        update={"api": settings.api.model_copy(update={"cors_origins": [MAPS]})}
    )
    with TestClient(create_app(allowed), headers=auth_headers) as client:
        yield client


def test_an_allowed_origin_may_call_and_read_the_etag(cors_client: TestClient) -> None:
    preflight = cors_client.options(
        "/layers/counties/coverage",
        headers={
            "Origin": MAPS,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "If-None-Match",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == MAPS
    assert "if-none-match" in preflight.headers["access-control-allow-headers"].lower()
    answer = cors_client.get("/layers", headers={"Origin": MAPS})
    assert answer.headers["access-control-allow-origin"] == MAPS
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed and "x-request-id" in exposed
    # The look-up fast path answers before routing: it is tagged too.
    lookup = cors_client.get(
        "/lookup?lon=-118.2&lat=34.05&layer=counties", headers={"Origin": MAPS}
    )
    assert lookup.status_code == 200 and lookup.headers["access-control-allow-origin"] == MAPS


def test_other_origins_get_no_cors_headers(cors_client: TestClient, client: TestClient) -> None:
    other = cors_client.get("/layers", headers={"Origin": "https://evil.example.org"})
    assert "access-control-allow-origin" not in other.headers
    # Off by default: no origin is allowed unless configured.
    plain = client.get("/layers", headers={"Origin": MAPS})
    assert "access-control-allow-origin" not in plain.headers
