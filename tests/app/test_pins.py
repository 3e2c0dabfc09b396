"""Pins (named accounts) win over geography; a customer's owner in every layer."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests import canonical

LAYER = "accounts"


@pytest.fixture
def setup(client: TestClient) -> dict[str, int]:
    """A layer with Big (priority 1) around Small, and one customer inside Small."""
    client.post("/layers", json={"name": LAYER})
    big = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}
    url = f"/layers/{LAYER}/territories"
    ids = {
        "big": client.post(url, json=canonical.feature(big, name="Big", priority=1)).json()["id"],
        "small": client.post(url, json=canonical.feature(canonical.SQUARE, name="Small")).json()[
            "id"
        ],
    }
    client.post("/customers", json=[{"external_id": "acct", "lon": 0.5, "lat": 0.5}])
    ids["customer"] = client.get("/customers").json()["features"][0]["id"]
    return ids


def _mine(client: TestClient, customer: int) -> dict[str, tuple[str | None, str | None]]:
    body = client.get(f"/customers/{customer}/territories").json()
    return {
        o["layer"]: (o["territory"] and o["territory"]["name"], o["rule"]) for o in body["layers"]
    }


def test_geography_then_pin_then_unpin(
    client: TestClient, session: Session, setup: dict[str, int]
) -> None:
    customer = setup["customer"]
    assert _mine(client, customer) == {
        LAYER: ("Small", "priority"),
        "counties": (None, None),  # (0.5, 0.5) is in the Gulf of Guinea
        "states": (None, None),
    }
    pinned = client.put(f"/layers/{LAYER}/pins/{customer}", json={"territory_id": setup["big"]})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["rule"] == "pinned"
    assert _mine(client, customer)[LAYER] == ("Big", "pinned")

    result = client.post(f"/layers/{LAYER}/assign").json()
    assert (result["assigned"], result["pinned"]) == (1, 1)
    row = session.execute(
        text("SELECT territory_id, rule, pinned FROM assignments WHERE customer_id = :c"),
        {"c": customer},
    ).one()
    assert tuple(row) == (setup["big"], "pinned", True)

    assert client.delete(f"/layers/{LAYER}/pins/{customer}").status_code == 204
    assert client.delete(f"/layers/{LAYER}/pins/{customer}").status_code == 404
    assert _mine(client, customer)[LAYER] == ("Small", "priority")


def test_bad_pins_are_404_or_422(client: TestClient, setup: dict[str, int]) -> None:
    customer = setup["customer"]
    other_layer = client.get("/layers/states/territories?limit=1").json()["features"][0]["id"]
    assert (
        client.put(
            f"/layers/{LAYER}/pins/{customer}", json={"territory_id": other_layer}
        ).status_code
        == 404
    )
    assert (
        client.put(f"/layers/{LAYER}/pins/999999", json={"territory_id": setup["big"]}).status_code
        == 404
    )
    assert (
        client.put(f"/layers/{LAYER}/pins/{customer}", json={"territory_id": "x"}).status_code
        == 422
    )
    assert client.get("/customers/999999/territories").status_code == 404
