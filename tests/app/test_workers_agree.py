"""Several workers agree: a change committed through one reaches every other's index."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.factory import create_app
from app.settings import Settings
from tests import canonical

LAYER = "shared"


@pytest.fixture
def other_worker(settings: Settings, client: TestClient) -> Iterator[TestClient]:
    """A second app on the same database, as a second uvicorn worker would be."""
    with TestClient(create_app(settings)) as second:
        assert second.app.state.change_listener.listening.wait(10)  # type: ignore[attr-defined]
        yield second


def _owner(client: TestClient, lon: float, lat: float) -> str | None:
    body = client.get("/lookup", params={"lon": lon, "lat": lat, "layer": LAYER}).json()
    return body["owner"] and body["owner"]["name"]


def _eventually(check: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_an_edit_reaches_the_other_worker(client: TestClient, other_worker: TestClient) -> None:
    client.post("/layers", json={"name": LAYER})
    created = client.post(
        f"/layers/{LAYER}/territories", json=canonical.feature(canonical.SQUARE, name="Before")
    ).json()
    assert _owner(other_worker, 0.5, 0.5) == "Before"  # the other worker builds its index

    client.patch(f"/layers/{LAYER}/territories/{created['id']}", json={"name": "After"})
    assert _eventually(lambda: _owner(other_worker, 0.5, 0.5) == "After")

    client.delete(f"/layers/{LAYER}/territories/{created['id']}")
    assert _eventually(lambda: _owner(other_worker, 0.5, 0.5) is None)


def test_a_deleted_layer_is_gone_everywhere(client: TestClient, other_worker: TestClient) -> None:
    client.post("/layers", json={"name": LAYER})
    client.post(f"/layers/{LAYER}/territories", json=canonical.feature(canonical.SQUARE, name="x"))
    assert _owner(other_worker, 0.5, 0.5) == "x"
    client.delete(f"/layers/{LAYER}")
    registry = other_worker.app.state.indexes  # type: ignore[attr-defined]
    assert _eventually(lambda: registry.version(LAYER) is None)
    status = other_worker.get("/lookup", params={"lon": 0.5, "lat": 0.5, "layer": LAYER})
    assert status.status_code == 404
