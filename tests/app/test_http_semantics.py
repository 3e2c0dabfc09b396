"""HTTP semantics every route shares: a 405 lists every method its path takes (RFC 9110)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/customers", "GET, HEAD, POST"),  # two routes share the path
        ("POST", "/layers/x/territories/3", "DELETE, GET, HEAD, PATCH, PUT"),
        ("DELETE", "/health", "GET, HEAD"),
        ("PUT", "/tiles/counties/1/0/0.mvt", "GET, HEAD"),
    ],
)
def test_405_lists_every_allowed_method(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == allowed
