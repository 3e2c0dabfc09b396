"""Territory edits batched per layer (app/edits.py): one transaction for the edits waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

import app.edits
from app import demo
from app.edits import Edit
from app.models import Layer
from app.repositories import customers, layers
from app.repositories.assignments import customer_points, owners_sql
from tests import canonical

LAYER = "batch"
URL = f"/layers/{LAYER}/territories"
BOX = {
    "type": "Polygon",
    "coordinates": [[[-121, 36], [-115, 36], [-115, 40], [-121, 40], [-121, 36]]],
}


@pytest.fixture
def plan(client: TestClient, session: Session) -> dict[str, int]:
    """A layer kept assigned over 3,000 demo customers: three states and a drawn box over
    CA and NV; their ids by name."""
    customers.upsert(session, batch=demo.generate(3_000, seed=5))
    session.commit()
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    ids = {}
    for state, priority in (("CA", 2), ("NV", 2), ("OR", 1)):
        body = {"name": state, "states": [state], "priority": priority}
        ids[state] = client.post(URL, json=body).json()["id"]
    ids["box"] = client.post(URL, json=canonical.feature(BOX, name="box", priority=3)).json()["id"]
    assert client.post(f"/layers/{LAYER}/assign").status_code == 200
    return ids


def _queued_behind_a_held_lock(
    client: TestClient,
    engine: Engine,
    first: Callable[[], httpx.Response],
    rest: list[Callable[[], Any]],
) -> tuple[httpx.Response, list[Any]]:
    """``first`` starts a batch that waits for the layer's row lock, held here; the ``rest``
    queue behind it, then the lock is let go: they go as the next batch, all together."""
    edits = client.app.state.edits  # type: ignore[attr-defined]
    with Session(engine) as holder, ThreadPoolExecutor(len(rest) + 1) as pool:
        layers.get_by_name(holder, name=LAYER, for_change=True)
        leading = pool.submit(first)
        _until(lambda: edits.waiting(LAYER) == 0 and not leading.done())  # taken, blocked
        time.sleep(0.2)
        queued: list[Future[Any]] = []
        for call in rest:
            queued.append(pool.submit(call))
            _until(lambda n=len(queued): edits.waiting(LAYER) == n)
        holder.rollback()
        return leading.result(timeout=30), [f.result(timeout=30) for f in queued]


def _until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _stamps(session: Session, ids: list[int]) -> dict[int, Any]:
    rows = session.execute(
        text("SELECT id, updated_at FROM territories WHERE id = ANY(:ids)"), {"ids": ids}
    ).all()
    session.rollback()
    return {r.id: r.updated_at for r in rows}


def _assert_assignments_match_postgis(session: Session) -> None:
    layer_id = session.scalar(text("SELECT id FROM layers WHERE name = :n"), {"n": LAYER})
    ids, lon, lat = customer_points(session)
    owner, _ = owners_sql(session, layer_id=layer_id, lon=lon, lat=lat)
    expected = {int(c): int(t) for c, t in zip(ids, owner, strict=True) if t >= 0}
    stored = dict(
        session.execute(
            text("SELECT customer_id, territory_id FROM assignments WHERE layer_id = :l"),
            {"l": layer_id},
        ).all()
    )
    session.rollback()
    assert stored == expected


def test_edits_waiting_for_a_batch_share_its_transaction_and_assignments_follow(
    client: TestClient, engine: Engine, session: Session, plan: dict[str, int]
) -> None:
    ring = [[-120, 33], [-112, 33], [-112, 38], [-120, 38], [-120, 33]]
    moved = canonical.feature({"type": "Polygon", "coordinates": [ring]}, name="box", priority=1)
    batches = _sample("territory_edit_batch_edits_count")
    edited = _sample("territory_edit_batch_edits_sum")
    first, rest = _queued_behind_a_held_lock(
        client, engine,
        lambda: client.patch(f"{URL}/{plan['CA']}", json={"priority": 0}),
        [
            lambda: client.patch(f"{URL}/{plan['NV']}", json={"priority": 0}),
            lambda: client.put(f"{URL}/{plan['box']}", json=moved),
            lambda: client.patch(f"{URL}/{plan['CA']}", json={"owner": "Ann", "priority": 3}),
            lambda: client.patch(f"{URL}/999999999", json={"owner": "nobody"}),  # fails alone
            lambda: client.delete(f"{URL}/{plan['OR']}"),
            lambda: client.post(URL, json={"name": "AZ", "states": ["AZ"], "priority": 0}),
        ],
    )  # fmt: skip
    assert first.status_code == 200, first.text
    assert [r.status_code for r in rest] == [200, 200, 200, 404, 204, 201], [r.text for r in rest]
    # Two batches: the one that was running, then the six queued (/metrics shows them).
    assert _sample("territory_edit_batch_edits_count") == batches + 2
    assert _sample("territory_edit_batch_edits_sum") == edited + 7
    assert rest[3].headers["content-type"] == "application/problem+json"
    assert rest[2].json()["properties"]["owner"] == "Ann"  # each answered as committed
    assert rest[2].json()["properties"]["priority"] == 3
    assert rest[5].headers["location"].endswith(f"{URL}/{rest[5].json()['id']}")
    # The six queued edits went in one transaction (one now() for all of them), after the one
    # that was running.
    changed = [plan["NV"], plan["box"], plan["CA"], rest[5].json()["id"]]
    stamps = _stamps(session, changed)
    assert len(stamps) == 4 and len(set(stamps.values())) == 1
    assert plan["OR"] not in _stamps(session, [plan["OR"]])
    # Every customer any of them moved is where PostGIS puts it now.
    _assert_assignments_match_postgis(session)
    # And this worker's index has them all: NV (0) over the moved box (1), AZ new (0).
    for (lon, lat), name in (((-114.5, 37.5), "NV"), ((-111.5, 34.5), "AZ"), ((-119, 37), "box")):
        found = client.get("/lookup", params={"lon": lon, "lat": lat, "layer": LAYER}).json()
        assert found["owner"]["name"] == name, (lon, lat)


def test_a_batch_that_fails_saves_none_of_its_edits(
    client: TestClient,
    engine: Engine,
    session: Session,
    plan: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = session.execute(text("SELECT id, priority, owner FROM territories ORDER BY id")).all()
    layer_id = session.scalar(text("SELECT id FROM layers WHERE name = :n"), {"n": LAYER})
    owners = session.execute(
        text("SELECT customer_id, territory_id FROM assignments WHERE layer_id = :l ORDER BY 1"),
        {"l": layer_id},
    ).all()
    session.rollback()
    real = app.edits.after_changes

    def fails_after_writing(*args: Any, **kwargs: Any) -> int:
        written = real(*args, **kwargs)  # the assignments are written, then the batch fails
        assert written > 0
        # The connection lost after the re-assignment was written, before the commit.
        raise OperationalError("COMMIT", None, Exception("a fault after the re-assignment"))

    monkeypatch.setattr(app.edits, "after_changes", fails_after_writing)
    first, rest = _queued_behind_a_held_lock(
        client, engine,
        lambda: client.patch(f"{URL}/{plan['CA']}", json={"priority": 0}),
        [
            lambda: client.patch(f"{URL}/{plan['NV']}", json={"priority": 0, "owner": "Bo"}),
            lambda: client.delete(f"{URL}/{plan['OR']}"),
        ],
    )  # fmt: skip
    assert [r.status_code for r in (first, *rest)] == [503, 503, 503]
    assert all(r.headers["retry-after"] for r in (first, *rest))
    assert all("a fault" not in r.text for r in (first, *rest))  # nothing internal leaks
    after = session.execute(text("SELECT id, priority, owner FROM territories ORDER BY id")).all()
    assert after == before
    assert (
        owners
        == session.execute(
            text(
                "SELECT customer_id, territory_id FROM assignments WHERE layer_id = :l ORDER BY 1"
            ),
            {"l": layer_id},
        ).all()
    )
    session.rollback()
    monkeypatch.undo()
    # And the queue goes on: the same edits, again, are saved.
    assert client.patch(f"{URL}/{plan['NV']}", json={"priority": 0}).status_code == 200
    _assert_assignments_match_postgis(session)


def test_a_new_territory_and_its_customers_in_one_answer(
    client: TestClient, session: Session, plan: dict[str, int]
) -> None:
    created = client.post(URL, json=canonical.feature(BOX, name="top", priority=0))
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    assert client.get(created.headers["location"]).json()["id"] == tid
    _assert_assignments_match_postgis(session)


def test_an_edit_failing_in_the_database_is_rolled_back_alone(
    client: TestClient, engine: Engine, session: Session, plan: dict[str, int]
) -> None:
    # An edit whose SQL fails aborts what it did, not the transaction its batch shares.
    edits = client.app.state.edits  # type: ignore[attr-defined]

    def failing(batch: Session, target: Layer) -> int:
        batch.execute(text("UPDATE territories SET owner = 'X' WHERE id = :t"), {"t": plan["OR"]})
        batch.execute(text("SELECT 1 / 0"))
        return plan["OR"]

    def run_failing() -> BaseException | None:
        try:
            edits.run(LAYER, Edit(failing, plan["OR"]))
        except DataError as exc:
            return exc
        return None

    first, rest = _queued_behind_a_held_lock(
        client, engine,
        lambda: client.patch(f"{URL}/{plan['CA']}", json={"priority": 0}),
        [
            lambda: client.patch(f"{URL}/{plan['NV']}", json={"owner": "Cy"}),
            run_failing,
            lambda: client.patch(f"{URL}/{plan['box']}", json={"owner": "Di"}),
        ],
    )  # fmt: skip
    assert first.status_code == rest[0].status_code == rest[2].status_code == 200
    assert "division by zero" in str(rest[1])
    stamps = _stamps(session, [plan["NV"], plan["box"], plan["OR"]])
    assert stamps[plan["NV"]] == stamps[plan["box"]] != stamps[plan["OR"]]  # saved together
    owner = session.scalar(text("SELECT owner FROM territories WHERE id = :t"), {"t": plan["OR"]})
    assert owner != "X"
