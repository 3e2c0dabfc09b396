"""GET /layers/{layer}/balance against the same measures computed from SQL."""

from __future__ import annotations

from typing import Any

import pytest
import shapely
import shapely.geometry
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import demo
from app.assign import ENGINE_MIN_CUSTOMERS
from app.repositories import customers
from tests import canonical

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
    rows = _check_against_sql(body, session)
    # Every territory holds customers here: max/min is a number for every metric.
    assert min(r.customer_count for r in rows.values()) > 0
    assert all(body["balance"][m]["max_min_ratio"] is not None for m in METRICS)
    # By hand: Texas is the largest of the four, Wyoming the smallest in customers and value.
    assert body["balance"]["area_km2"]["above_mean"][0]["name"] == "TX"
    for metric in ("customer_count", "customer_value"):
        assert body["balance"][metric]["below_mean"][0]["name"] == "WY"


def test_unknown_layer(layer: TestClient) -> None:
    assert layer.get("/layers/nope/balance").status_code == 404


def test_zoom_simplifies_the_shapes_not_the_measures(layer: TestClient) -> None:
    full = layer.get(f"/layers/{LAYER}/balance").json()
    coarse = layer.get(f"/layers/{LAYER}/balance", params={"zoom": 3}).json()
    # The same measures (areas are the territories', not the drawn shapes')...
    assert coarse["balance"] == full["balance"]
    assert [f["properties"] for f in coarse["features"]] == [
        f["properties"] for f in full["features"]
    ]
    # ...on shapes simplified for zoom 3 (a pixel is ~20 km there): valid, far fewer points.
    drawn = [shapely.geometry.shape(f["geometry"]) for f in coarse["features"]]
    exact = [shapely.geometry.shape(f["geometry"]) for f in full["features"]]
    assert all(shapely.is_valid(drawn))
    assert shapely.get_num_coordinates(drawn).sum() < shapely.get_num_coordinates(exact).sum() / 4
    bad = layer.get(f"/layers/{LAYER}/balance", params={"zoom": 23})
    assert bad.status_code == 422 and "zoom" in bad.text


# Each territory of a layer with its measures, from the tables: customers counted and valued
# through the layer's assignments (the customers' own values, not the copy assignments keep),
# area as PostGIS gives it on the spheroid.
_SQL_PER_TERRITORY = """
SELECT t.id, t.name, t.owner,
       count(c.id)::float8 AS customer_count,
       coalesce(sum(c.value), 0)::float8 AS customer_value,
       ST_Area(t.geom::geography) / 1e6 AS area_km2
FROM territories t JOIN layers l ON l.id = t.layer_id
LEFT JOIN assignments a ON a.territory_id = t.id AND a.layer_id = l.id
LEFT JOIN customers c ON c.id = a.customer_id
WHERE l.name = :n
GROUP BY t.id
"""
# The spread of each measure, in SQL: the mean; the coefficient of variation with the
# population standard deviation (what spatial/balance.py documents); the Gini index as the
# mean absolute difference over all ordered pairs over twice the mean; max/min (NULL when
# the smallest is 0, as documented).
_SQL_SPREAD = f"""
WITH per AS ({_SQL_PER_TERRITORY}),
m AS (SELECT per.id, v.metric, v.x FROM per CROSS JOIN LATERAL (VALUES
        ('customer_count', per.customer_count), ('customer_value', per.customer_value),
        ('area_km2', per.area_km2)) AS v(metric, x))
SELECT a.metric, avg(a.x) AS mean,
       stddev_pop(a.x) / nullif(avg(a.x), 0) AS cv,
       (SELECT sum(abs(p.x - q.x)) FROM m p JOIN m q ON q.metric = p.metric
        WHERE p.metric = a.metric) / nullif(2 * count(*) ^ 2 * avg(a.x), 0) AS gini,
       max(a.x) / nullif(min(a.x), 0) AS max_min_ratio
FROM m a GROUP BY a.metric
"""
METRICS = ("customer_count", "customer_value", "area_km2")


def _check_against_sql(body: dict[str, Any], session: Session) -> dict[str, Any]:
    """Every measure, spread and extreme of a balance body against SQL; the SQL rows back."""
    params = {"n": body["layer"]}
    rows = {r.id: r for r in session.execute(text(_SQL_PER_TERRITORY), params).all()}
    spreads = {r.metric: r for r in session.execute(text(_SQL_SPREAD), params).all()}
    session.rollback()
    assert set(body["balance"]) == set(METRICS)
    features = {f["id"]: f["properties"] for f in body["features"]}
    assert set(features) == set(rows)
    for metric in METRICS:
        got, want = body["balance"][metric], spreads[metric]
        # Areas: the service measures them geodesically itself (a hair off PostGIS).
        rel = 1e-6 if metric == "area_km2" else 1e-12
        # The body rounds the mean to 3 decimals, cv and gini to 4, max/min to 3.
        assert got["mean"] == pytest.approx(want.mean, rel=rel, abs=5.1e-4), metric
        assert got["cv"] == pytest.approx(want.cv or 0.0, abs=5.1e-5), metric
        assert got["gini"] == pytest.approx(want.gini or 0.0, abs=5.1e-5), metric
        if want.max_min_ratio is None:
            assert got["max_min_ratio"] is None, metric
        else:
            assert got["max_min_ratio"] == pytest.approx(want.max_min_ratio, rel=rel, abs=5.1e-4)
        x = {tid: getattr(r, metric) for tid, r in rows.items()}
        above = sorted((t for t in x if x[t] > want.mean), key=lambda t: -x[t])[:3]
        below = sorted((t for t in x if x[t] < want.mean), key=lambda t: x[t])[:3]
        for listed, expected in ((got["above_mean"], above), (got["below_mean"], below)):
            assert [e["id"] for e in listed] == expected, metric
            for e in listed:
                r = rows[e["id"]]
                assert (e["name"], e["owner"]) == (r.name, r.owner)
                assert e["value"] == pytest.approx(x[r.id], rel=rel, abs=5.1e-4)
        for tid, props in features.items():
            assert props["name"] == rows[tid].name
            assert props[metric] == pytest.approx(x[tid], rel=rel, abs=5.1e-4), (metric, tid)
            if want.mean:
                ratio = x[tid] / want.mean
                assert props[f"{metric}_vs_mean"] == pytest.approx(ratio, rel=rel, abs=5.1e-5)
            else:
                assert props[f"{metric}_vs_mean"] is None
    return rows


OCEAN = {"type": "Polygon", "coordinates": [[[-140, 30], [-139, 30], [-139, 31], [-140, 31],
                                             [-140, 30]]]}  # fmt: skip


def test_a_territory_without_customers(layer: TestClient, session: Session) -> None:
    r = layer.post(
        f"/layers/{LAYER}/territories", json=canonical.feature(OCEAN, name="Ocean", owner="Nemo")
    )
    assert r.status_code == 201, r.text
    ocean = r.json()["id"]
    body = layer.get(f"/layers/{LAYER}/balance").json()
    rows = _check_against_sql(body, session)
    assert rows[ocean].customer_count == 0
    balance = body["balance"]
    for metric in ("customer_count", "customer_value"):
        # Documented: null when the smallest is 0 (infinitely unbalanced).
        assert balance[metric]["max_min_ratio"] is None
        assert balance[metric]["below_mean"][0] == {
            "id": ocean, "name": "Ocean", "owner": "Nemo", "value": 0.0
        }  # fmt: skip
    assert balance["area_km2"]["max_min_ratio"] is not None
    assert balance["area_km2"]["below_mean"][0]["id"] == ocean  # 1 degree square: the smallest
    props = next(f["properties"] for f in body["features"] if f["id"] == ocean)
    assert (props["customer_count"], props["customer_value"]) == (0, 0)
    assert props["customer_count_vs_mean"] == props["customer_value_vs_mean"] == 0


# The layer's assignments with their territories' names.
_ASSIGNED = f"""assignments a JOIN territories t ON t.id = a.territory_id
JOIN layers l ON l.id = t.layer_id AND l.id = a.layer_id AND l.name = '{LAYER}'"""


def _pin_one_californian_to_wyoming(layer: TestClient, session: Session) -> int:
    wy = session.scalar(
        text("SELECT t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
             "WHERE l.name = :l AND t.name = 'WY'"),
        {"l": LAYER},
    )  # fmt: skip
    pinned = session.scalar(
        text(f"SELECT a.customer_id FROM {_ASSIGNED} WHERE t.name = 'CA' "
             "ORDER BY a.customer_id LIMIT 1")
    )  # fmt: skip
    session.rollback()
    assert layer.put(f"/layers/{LAYER}/pins/{pinned}", json={"territory_id": wy}).is_success
    return int(pinned)


def _customers_json(session: Session, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT external_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, value::float8 AS value "
            f"FROM customers WHERE {where} ORDER BY id"
        ),
        params,
    ).all()
    session.rollback()
    return [dict(r._mapping) for r in rows]


def test_follows_pins_and_rewritten_customers(layer: TestClient, session: Session) -> None:
    pinned = _pin_one_californian_to_wyoming(layer, session)
    before = layer.get(f"/layers/{LAYER}/balance").json()
    _check_against_sql(before, session)
    # Two other Californians rewritten by external_id (a few: re-assigned in SQL): one
    # revalued in place, one moved to Austin, Texas, with a new value.
    revalued, moved = _customers_json(
        session,
        f"id IN (SELECT a.customer_id FROM {_ASSIGNED} WHERE t.name = 'CA' "
        "AND a.customer_id <> :p ORDER BY a.customer_id LIMIT 2)",
        {"p": pinned},
    )
    revalued["value"] = 0.5
    moved.update(lon=-97.74, lat=30.27, value=777)
    # And the pinned one, revalued and moved to Austin too: the pin holds it in WY, with its
    # new value (a pin's copy of the value was once left as it was).
    (held,) = _customers_json(session, "id = :p", {"p": pinned})
    held.update(lon=-97.74, lat=30.27, value=1_000_000)
    assert layer.post("/customers", json=[revalued, moved, held]).status_code == 200
    after = layer.get(f"/layers/{LAYER}/balance").json()
    rows = _check_against_sql(after, session)
    by_name = {r.name: r for r in rows.values()}
    before_count = {f["properties"]["name"]: f["properties"]["customer_count"]
                    for f in before["features"]}  # fmt: skip
    assert by_name["CA"].customer_count == before_count["CA"] - 1
    assert by_name["TX"].customer_count == before_count["TX"] + 1
    assert by_name["WY"].customer_count == before_count["WY"]
    assert by_name["WY"].customer_value > 1_000_000
    # Customers moved, none added: the mean count is as before.
    assert after["balance"]["customer_count"]["mean"] == before["balance"]["customer_count"]["mean"]


def test_follows_a_bulk_revaluation(layer: TestClient, session: Session) -> None:
    pinned = _pin_one_californian_to_wyoming(layer, session)
    before = _check_against_sql(layer.get(f"/layers/{LAYER}/balance").json(), session)
    # Enough customers re-sent to be re-assigned by the engine (not in SQL), the pinned one
    # among them; every value tripled, the pinned customer's too (its pin keeps it in WY).
    batch = _customers_json(
        session, "id IN (SELECT id FROM customers ORDER BY id LIMIT :n)",
        {"n": ENGINE_MIN_CUSTOMERS + 500},
    )  # fmt: skip
    pinned_ext = session.scalar(
        text("SELECT external_id FROM customers WHERE id = :p"), {"p": pinned}
    )
    session.rollback()
    assert pinned_ext in {c["external_id"] for c in batch}
    for c in batch:
        c["value"] = round(3 * c["value"], 2)
    assert layer.post("/customers", json=batch).status_code == 200
    after = _check_against_sql(layer.get(f"/layers/{LAYER}/balance").json(), session)
    # Nobody moved (the pin held): the same counts; the values grew.
    for tid, r in after.items():
        assert r.customer_count == before[tid].customer_count
        assert r.customer_value > before[tid].customer_value


def test_no_customers_at_all(client: TestClient, session: Session) -> None:
    client.post("/layers", json={"name": LAYER})
    for code in ("NV", "UT"):
        client.post(f"/layers/{LAYER}/territories", json={"name": code, "states": [code]})
    body = client.get(f"/layers/{LAYER}/balance").json()
    _check_against_sql(body, session)
    for metric in ("customer_count", "customer_value"):
        # All equal (all 0): no spread, no extremes, and max/min undefined (null).
        assert body["balance"][metric] == {
            "mean": 0.0, "cv": 0.0, "gini": 0.0, "max_min_ratio": None,
            "above_mean": [], "below_mean": [],
        }  # fmt: skip
    assert body["balance"]["area_km2"]["above_mean"][0]["name"] == "NV"
    assert body["balance"]["area_km2"]["below_mean"][0]["name"] == "UT"
