"""Layers over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests import canonical


def test_create_list_get_delete(client: TestClient) -> None:
    created = client.post("/layers", json={"name": "partners-2026", "title": "Partners"})
    assert created.status_code == 201
    assert created.headers["location"].endswith("/layers/partners-2026")
    assert created.json()["territory_count"] == 0

    names = [layer["name"] for layer in client.get("/layers").json()["layers"]]
    assert names == ["counties", "partners-2026", "states"]

    client.post(
        "/layers/partners-2026/territories", json=canonical.feature(canonical.SQUARE, name="a")
    )
    one = client.get("/layers/partners-2026").json()
    assert one["territory_count"] == 1
    assert one["bbox"] == [0, 0, 1, 1]

    assert client.delete("/layers/partners-2026").status_code == 204
    gone = client.get("/layers/partners-2026")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


def test_duplicate_name_is_a_conflict(client: TestClient) -> None:
    assert client.post("/layers", json={"name": "dup"}).status_code == 201
    again = client.post("/layers", json={"name": "dup"})
    assert again.status_code == 409
    assert again.json()["field"] == "name"


def test_bad_names_are_rejected_naming_the_field(client: TestClient) -> None:
    for bad in ("Has Space", "", "-leading", "x" * 64):
        response = client.post("/layers", json={"name": bad})
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == "body.name"
    unknown_field = client.post("/layers", json={"name": "ok", "colour": "red"})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["errors"][0]["field"] == "body.colour"


def test_unknown_layer_is_404_everywhere(client: TestClient) -> None:
    for method, path in [
        ("GET", "/layers/nope"),
        ("DELETE", "/layers/nope"),
        ("GET", "/layers/nope/territories"),
        ("GET", "/layers/nope/territories/1"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert "nope" in response.json()["detail"]


def test_malformed_json_is_a_clear_422(client: TestClient) -> None:
    response = client.post(
        "/layers", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "body"
    assert "not valid JSON at character" in problem["detail"]
