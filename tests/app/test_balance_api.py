"""GET /layers/{layer}/balance against the same measures computed from SQL."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import demo
from app.repositories import customers

LAYER = "bal"


@pytest.fixture
def layer(client: TestClient, session: Session) -> TestClient:
    """Four states, one of them (Wyoming) nearly empty of customers, assigned."""
    customers.upsert(session, batch=demo.generate(4_000, seed=8))
    session.commit()
    client.post("/layers", json={"name": LAYER})
    for code in ("CA", "TX", "NY", "WY"):
        client.post(f"/layers/{LAYER}/territories", json={"name": code, "states": [code]})
    client.post(f"/layers/{LAYER}/assign")
    return client


def test_balance_matches_sql(layer: TestClient, session: Session) -> None:
    response = layer.get(f"/layers/{LAYER}/balance")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    rows = session.execute(
        text(
            "SELECT t.id, t.name, count(a.customer_id) AS n, "
            "ST_Area(t.geom::geography) / 1e6 AS km2 "
            "FROM territories t JOIN layers l ON l.id = t.layer_id "
            "LEFT JOIN assignments a ON a.territory_id = t.id WHERE l.name = :n GROUP BY t.id"
        ),
        {"n": LAYER},
    ).all()
    session.rollback()
    n = np.array([r.n for r in rows], dtype=float)
    count = body["balance"]["customer_count"]
    assert count["mean"] == pytest.approx(n.mean(), abs=1e-3)
    assert count["cv"] == pytest.approx(n.std() / n.mean(), abs=1e-4)
    x = np.sort(n)  # Gini as the mean absolute difference over twice the mean
    mad = np.abs(x[:, None] - x[None, :]).mean()
    assert count["gini"] == pytest.approx(mad / (2 * x.mean()), abs=1e-4)
    assert count["max_min_ratio"] == pytest.approx(n.max() / n.min(), rel=1e-3)
    by_name = {r.name: r for r in rows}
    assert count["above_mean"][0]["name"] == max(by_name, key=lambda k: by_name[k].n)
    assert count["below_mean"][0]["name"] == min(by_name, key=lambda k: by_name[k].n)
    area = body["balance"]["area_km2"]
    assert area["above_mean"][0]["name"] == "TX"
    features = {f["properties"]["name"]: f["properties"] for f in body["features"]}
    for name, r in by_name.items():
        assert features[name]["customer_count"] == r.n
        assert features[name]["area_km2"] == pytest.approx(r.km2, rel=1e-6)
        assert features[name]["customer_count_vs_mean"] == pytest.approx(r.n / n.mean(), rel=1e-3)


def test_unknown_layer(layer: TestClient) -> None:
    assert layer.get("/layers/nope/balance").status_code == 404
