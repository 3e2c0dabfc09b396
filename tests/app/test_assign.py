"""Bulk assignment: every customer to its owner, written in one transaction, checked by SQL."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app import demo
from app.assign import ENGINE_MIN_CUSTOMERS
from app.cli import cli
from app.repositories import customers, layers
from app.repositories.assignments import customer_points, lock_for_bulk, owners_sql
from app.settings import Settings
from tests import canonical


@pytest.fixture
def stored(client: TestClient, session: Session) -> TestClient:
    """3,000 demo customers in the store, and two in the sea."""
    customers.upsert(session, batch=demo.generate(3_000, seed=11))
    session.commit()
    client.post(
        "/customers",
        json=[
            {"external_id": "sea-1", "lon": -140.0, "lat": 30.0},
            {"external_id": "sea-2", "lon": -60.0, "lat": 30.0},
        ],
    )
    return client


def _layer_id(session: Session, name: str) -> int:
    return int(session.scalar(text("SELECT id FROM layers WHERE name = :n"), {"n": name}))


def _stored_owners(session: Session, layer_id: int) -> dict[int, tuple[int, str]]:
    rows = session.execute(
        text("SELECT customer_id, territory_id, rule FROM assignments WHERE layer_id = :l"),
        {"l": layer_id},
    ).all()
    # End the read: a transaction left open on assignments would hold up (and time out) the
    # partition swap of the next bulk assignment.
    session.rollback()
    return {r.customer_id: (r.territory_id, r.rule) for r in rows}


def test_assigning_the_counties_matches_postgis(stored: TestClient, session: Session) -> None:
    response = stored.post("/layers/counties/assign")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["assigned"] + result["unassigned"] == 3_002
    assert result["unassigned"] >= 2  # the two at sea
    layer_id = _layer_id(session, "counties")
    ids, lon, lat = customer_points(session)
    owner, covering = owners_sql(session, layer_id=layer_id, lon=lon, lat=lat)
    expected = {int(c): int(t) for c, t in zip(ids, owner, strict=True) if t >= 0}
    written = _stored_owners(session, layer_id)
    assert {c: t for c, (t, _) in written.items()} == expected
    assert result["assigned"] == len(expected)
    assert result["contested"] == int((covering > 1).sum())
    assert stored.post("/layers/counties/assign").json()["assigned"] == result["assigned"]
    assert len(_stored_owners(session, layer_id)) == len(expected)  # replaced, not added


def test_contested_customers_and_rules(stored: TestClient, session: Session) -> None:
    stored.post("/layers", json={"name": "west"})
    west = {
        "type": "Polygon",
        "coordinates": [[[-125, 30], [-110, 30], [-110, 50], [-125, 50], [-125, 30]]],
    }
    stored.post("/layers/west/territories", json=canonical.feature(west, name="West", priority=1))
    stored.post("/layers/west/territories", json={"name": "CA", "states": ["CA"]})
    result = stored.post("/layers/west/assign").json()
    layer_id = _layer_id(session, "west")
    _, lon, lat = customer_points(session)
    owner, covering = owners_sql(session, layer_id=layer_id, lon=lon, lat=lat)
    assert result["contested"] == int((covering > 1).sum()) > 0
    rules = {rule for _, rule in _stored_owners(session, layer_id).values()}
    assert rules == {"only", "priority"}
    assert result["assigned"] == int((owner >= 0).sum())


def test_assign_unknown_layer_is_404(stored: TestClient) -> None:
    assert stored.post("/layers/nope/assign").status_code == 404


def test_cli_assign(
    stored: TestClient, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.database.url
    monkeypatch.setenv("TERRITORY_DATABASE_URL", settings.database.url)
    result = CliRunner().invoke(cli, ["assign", "states"])
    assert result.exit_code == 0, result.output
    written = len(_stored_owners(session, _layer_id(session, "states")))
    assert f"states: {written} assigned" in result.output
    assert written > 2_900


def _truth(session: Session, layer_id: int) -> dict[int, int]:
    ids, lon, lat = customer_points(session)
    owner, _ = owners_sql(session, layer_id=layer_id, lon=lon, lat=lat)
    session.rollback()  # the read ends here (see _stored_owners)
    return {int(c): int(t) for c, t in zip(ids, owner, strict=True) if t >= 0}


def _square(x0: float, y0: float, side: float) -> dict[str, object]:
    ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_assignments_stay_current_after_edits(stored: TestClient, session: Session) -> None:
    stored.post("/layers", json={"name": "live"})
    url = "/layers/live/territories"
    west = stored.post(url, json=canonical.feature(_square(-125, 30, 15), name="W")).json()["id"]
    stored.post(url, json={"name": "TX", "states": ["TX"]})
    stored.post(url, json=canonical.feature(_square(-74, 40, 8), name="NE"))  # never edited
    stored.post("/layers/live/assign")
    layer_id = _layer_id(session, "live")

    def current() -> dict[int, int]:
        session.rollback()  # a fresh snapshot
        return {c: t for c, (t, _) in _stored_owners(session, layer_id).items()}

    assert current() == _truth(session, layer_id)
    untouched_before = session.scalar(
        text("SELECT min(assigned_at) FROM assignments WHERE layer_id = :l"), {"l": layer_id}
    )
    # A new territory overlapping W, a reshape, a priority change, a delete: each re-assigns
    # only what it touches, and the table always equals a full run.
    east = stored.post(url, json=canonical.feature(_square(-95, 25, 20), name="E", priority=-1))
    assert current() == _truth(session, layer_id)
    stored.patch(f"{url}/{west}", json={"geometry": _square(-125, 35, 10)})
    assert current() == _truth(session, layer_id)
    stored.patch(f"{url}/{east.json()['id']}", json={"priority": 9})
    assert current() == _truth(session, layer_id)
    stored.delete(f"{url}/{west}")
    assert current() == _truth(session, layer_id)
    # Customers added and moved are assigned as they are written.
    stored.post(
        "/customers",
        json=[
            {"external_id": "new-in-texas", "lon": -97.7, "lat": 30.3},
            {"external_id": "sea-1", "lon": -96.8, "lat": 32.8},  # moved ashore, into Texas
        ],
    )
    assert current() == _truth(session, layer_id)
    # Customers far from every edit (New England, east of E's -75) kept their original rows.
    kept, rewritten = session.execute(
        text(
            "SELECT count(*), count(*) FILTER (WHERE a.assigned_at > :t) "
            "FROM assignments a JOIN customers c ON c.id = a.customer_id "
            "WHERE a.layer_id = :l AND ST_X(c.geom) > -74"
        ),
        {"l": layer_id, "t": untouched_before},
    ).one()
    assert kept > 50 and rewritten == 0


def test_deleting_a_layer_takes_its_assignments(stored: TestClient, session: Session) -> None:
    stored.post("/layers", json={"name": "gone"})
    stored.post("/layers/gone/territories", json={"name": "CA", "states": ["CA"]})
    assert stored.post("/layers/gone/assign").json()["assigned"] > 100
    layer_id = _layer_id(session, "gone")
    session.rollback()
    assert stored.delete("/layers/gone").status_code == 204
    left = session.scalar(
        text("SELECT count(*) FROM assignments WHERE layer_id = :l"), {"l": layer_id}
    )
    assert left == 0


def _partition(session: Session, layer_id: int) -> str | None:
    name = session.scalar(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'assignments'::regclass "
            "AND pg_get_expr(c.relpartbound, c.oid) = :bound"
        ),
        {"bound": f"FOR VALUES IN ({layer_id})"},
    )
    session.rollback()
    return name


def test_a_layer_has_its_own_partition_from_creation_to_deletion(
    stored: TestClient, session: Session
) -> None:
    stored.post("/layers", json={"name": "parted"})
    layer_id = _layer_id(session, "parted")
    assert _partition(session, layer_id) == f"assignments_layer_{layer_id}"
    stored.post("/layers/parted/territories", json={"name": "CA", "states": ["CA"]})
    stored.post("/layers/parted/assign")
    # Swapped in whole, under the same name, with the table's indexes and keys (the rule tying
    # each row to a territory of its layer is kept by triggers on the parent, migration 0011).
    assert _partition(session, layer_id) == f"assignments_layer_{layer_id}"
    keys = session.scalars(
        text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY 1"
        ),
        {"t": f"assignments_layer_{layer_id}"},
    ).all()
    assert keys == ["FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE"]
    session.rollback()
    assert stored.delete("/layers/parted").status_code == 204
    assert _partition(session, layer_id) is None
    # Made and dropped by the database itself, whoever inserts or deletes the layer.
    plain = session.scalar(text("INSERT INTO layers (name) VALUES ('plain') RETURNING id"))
    session.commit()
    assert _partition(session, plain) == f"assignments_layer_{plain}"
    session.execute(text("DELETE FROM layers WHERE id = :l"), {"l": plain})
    session.commit()
    assert _partition(session, plain) is None


def test_keys_of_a_swapped_in_partition_still_cascade(stored: TestClient, session: Session) -> None:
    stored.post("/layers", json={"name": "keys"})
    url = "/layers/keys/territories"
    ca = stored.post(url, json={"name": "CA", "states": ["CA"]}).json()["id"]
    stored.post(url, json={"name": "TX", "states": ["TX"]})
    stored.post("/layers/keys/assign")
    layer_id = _layer_id(session, "keys")
    some = session.scalar(
        text("SELECT customer_id FROM assignments WHERE layer_id = :l AND territory_id <> :t"),
        {"l": layer_id, "t": ca},
    )
    session.execute(text("DELETE FROM customers WHERE id = :c"), {"c": some})
    session.commit()
    assert some not in _stored_owners(session, layer_id)
    # A territory deleted straight in SQL (no re-assignment): its rows go with it.
    session.execute(text("DELETE FROM territories WHERE id = :t"), {"t": ca})
    session.commit()
    assert ca not in {t for t, _ in _stored_owners(session, layer_id).values()}
    with pytest.raises(IntegrityError):  # an owner outside the layer is refused, as before
        session.execute(
            text(
                "INSERT INTO assignments (layer_id, customer_id, territory_id, rule) "
                "SELECT :l, c.id, t.id, 'only' FROM customers c, territories t "
                "WHERE t.layer_id <> :l LIMIT 1"
            ),
            {"l": layer_id},
        )
    session.rollback()


def test_a_bulk_assignment_waits_for_an_edit_in_flight(
    stored: TestClient, session: Session, engine: Engine
) -> None:
    stored.post("/layers", json={"name": "race"})
    url = "/layers/race/territories"
    west = stored.post(url, json=canonical.feature(_square(-125, 30, 15), name="W")).json()["id"]
    stored.post("/layers/race/assign")
    layer_id = _layer_id(session, "race")
    session.rollback()
    # An edit in flight: it holds the layer's row, as every write to a layer does first.
    with Session(engine) as editor:
        race = layers.get_by_name(editor, name="race", for_change=True)
        outcome: dict[str, object] = {}
        worker = threading.Thread(
            target=lambda: outcome.update(response=stored.post("/layers/race/assign"))
        )
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive()  # waiting for the edit, not racing it
        editor.execute(
            text("UPDATE territories SET geom = ST_GeomFromText(:g, 4326) WHERE id = :t"),
            {"g": "MULTIPOLYGON(((-125 30, -100 30, -100 50, -125 50, -125 30)))", "t": west},
        )
        layers.touch(editor, layer=race)
        editor.commit()
    worker.join(timeout=60)
    response = outcome["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200, response
    # The bulk run saw the edit: the table is what PostGIS says of the edited layer.
    current = {c: t for c, (t, _) in _stored_owners(session, layer_id).items()}
    assert current == _truth(session, layer_id)
    assert any(lon > -110 for lon in _lons(session, list(current)))


def test_a_new_layer_waits_for_a_bulk_assignment_in_flight(
    client: TestClient, session: Session, engine: Engine
) -> None:
    # Found by schemathesis (tests/app/test_fuzz.py): POST /layers next to POST .../assign
    # deadlocked, and PostgreSQL's victim answered 503. The new layer's partition locked
    # assignments and then wanted customers, which the bulk run held while it read assignments.
    client.post("/layers", json={"name": "busy"})
    busy = _layer_id(session, "busy")
    session.rollback()
    with Session(engine) as bulk:
        layers.get_by_name(bulk, name="busy", for_change=True)
        lock_for_bulk(bulk, layer_id=busy)
        outcome: dict[str, object] = {}
        worker = threading.Thread(
            target=lambda: outcome.update(response=client.post("/layers", json={"name": "new"}))
        )
        worker.start()
        assert _eventually_waiting(session), "POST /layers did not queue behind the bulk run"
        # What the bulk run reads next: before the fix, this closed the cycle.
        bulk.execute(text("SELECT customer_id FROM assignments WHERE layer_id = :l"), {"l": busy})
        bulk.commit()
    worker.join(timeout=60)
    response = outcome["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 201, response


def _eventually_waiting(session: Session, timeout_s: float = 10) -> bool:
    """Is another session of this database waiting for a lock (within ``timeout_s``)?"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        )
        session.rollback()
        if waiting:
            return True
        time.sleep(0.05)
    return False


def _lons(session: Session, ids: list[int]) -> list[float]:
    rows = session.scalars(
        text("SELECT ST_X(geom) FROM customers WHERE id = ANY(:ids)"), {"ids": ids}
    ).all()
    session.rollback()
    return [float(x) for x in rows]


def test_a_large_customer_batch_is_assigned_by_the_engine(
    stored: TestClient, session: Session
) -> None:
    stored.post("/layers", json={"name": "big"})
    url = "/layers/big/territories"
    stored.post(url, json=canonical.feature(_square(-125, 30, 15), name="W", priority=1))
    stored.post(url, json={"name": "CA", "states": ["CA"]})  # overlaps W: rules too
    stored.post(url, json={"name": "TX", "states": ["TX"]})
    stored.post("/layers/big/assign")
    layer_id = _layer_id(session, "big")
    pinned_id = next(iter(_stored_owners(session, layer_id)))
    texas = stored.get(url, params={"limit": 10}).json()["features"][-1]["id"]
    assert stored.put(f"/layers/big/pins/{pinned_id}", json={"territory_id": texas}).is_success
    pinned_ext = session.scalar(
        text("SELECT external_id FROM customers WHERE id = :c"), {"c": pinned_id}
    )
    # 2,400 customers (over the engine's threshold): 2,000 new, 400 moved, the pinned one too.
    batch = demo.generate(2_400, seed=99)
    moved = [e for e in (f"demo-{k:07d}" for k in range(1, 402)) if e != pinned_ext][:400]
    body = [
        {"external_id": f"new-{i}" if i < 2_000 else moved[i - 2_000],
         "lon": float(x), "lat": float(y)}
        for i, (x, y) in enumerate(zip(batch.lon, batch.lat, strict=True))
    ]  # fmt: skip
    body.append({"external_id": pinned_ext, "lon": -140.0, "lat": 30.0})  # at sea, still pinned
    assert len(body) >= ENGINE_MIN_CUSTOMERS
    response = stored.post("/customers", json=body)
    assert response.status_code == 200, response.text
    current = _stored_owners(session, layer_id)
    assert current.pop(pinned_id) == (texas, "pinned")
    truth = _truth(session, layer_id)
    truth.pop(pinned_id, None)
    assert {c: t for c, (t, _) in current.items()} == truth
    assert {rule for _, rule in current.values()} == {"only", "priority"}


def test_a_boundaries_reload_keeps_an_assigned_layer_assigned(
    stored: TestClient, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.database.url
    monkeypatch.setenv("TERRITORY_DATABASE_URL", settings.database.url)
    assert stored.post("/layers/states/assign").status_code == 200
    layer_id = _layer_id(session, "states")
    # Texas deleted behind the service's back: its customers lose their owner ...
    session.execute(
        text("DELETE FROM territories WHERE layer_id = :l AND code = '48'"), {"l": layer_id}
    )
    session.commit()
    before = {c: t for c, (t, _) in _stored_owners(session, layer_id).items()}
    # ... and the reload that puts Texas back re-assigns the layer.
    result = CliRunner().invoke(cli, ["boundaries", "load"])
    assert result.exit_code == 0, result.output
    assert "states: customers re-assigned" in result.output
    after = {c: t for c, (t, _) in _stored_owners(session, layer_id).items()}
    assert after == _truth(session, layer_id)
    assert len(after) > len(before) + 100  # the Texans are back
