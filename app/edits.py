"""Group commit of territory edits: a layer's edits waiting in one worker share a transaction.

A layer's edits run one at a time (its row lock), and each paid the same fixed work besides its
own change: the lock, the layer's new version, the next index, re-assigning the customers it
affects, NOTIFY and the commit. At 10 edits/s of one layer they queued without end
(bench/RESULTS.md, "Load"). Here the edits of a layer that arrive while a batch of them runs
wait, holding no database connection; the next batch applies them all in arrival order, each in
a savepoint of its own (one that fails is rolled back alone and answered its own error), then
does the fixed work once, re-assigning every customer any of them affects in one pass, and
commits. Each edit is answered only after its batch is committed: an answer still means saved,
and a batch that fails saves none of its edits and answers each the error.

The more edits wait, the more share a batch: the fixed work per edit falls as the load grows.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.assign import Before, after_changes, before_change
from app.indexes import IndexRegistry
from app.models import Layer
from app.repositories import layers
from app.repositories import territories as repo

MAX_BATCH = 32  # edits per transaction at most: a batch holds the layer's lock while it runs


@dataclass(eq=False)
class Edit:
    """One territory edit waiting for its batch.

    ``apply`` makes the change in the batch's session and returns the id of the territory to
    answer with (None: it was deleted); ``territory_id`` is the territory it changes (None: a
    new one). The batch sets ``answer`` (the territory's row as committed) or ``error``.
    """

    apply: Callable[[Session, Layer], int | None]
    territory_id: int | None
    answer: dict[str, Any] | None = None
    error: BaseException | None = None
    done: bool = False


class EditQueue:
    """The territory edits of one worker, batched per layer (``run``)."""

    def __init__(self, sessions: sessionmaker[Session], registry: IndexRegistry) -> None:
        self._sessions = sessions  # batches only: at most one per layer at once
        self._registry = registry
        self._cond = threading.Condition()
        self._pending: defaultdict[str, list[Edit]] = defaultdict(list)
        self._busy: set[str] = set()  # layers with a batch running in this worker

    def run(self, layer: str, edit: Edit) -> dict[str, Any] | None:
        """Apply ``edit`` to ``layer`` in the next batch; its answer once committed, or its error.

        The calling thread waits for a batch to take its edit; when none is running it runs
        the next one itself (its own edit and any waiting behind it).
        """
        with self._cond:
            self._pending[layer].append(edit)
        while batch := self._next_batch(layer, edit):
            try:
                self._apply(layer, batch)
            finally:
                self._finish(layer, batch)
        if edit.error is not None:
            raise edit.error
        return edit.answer

    def waiting(self, layer: str) -> int:
        """How many edits of the layer wait for a batch in this worker now."""
        with self._cond:
            return len(self._pending.get(layer, ()))

    def _next_batch(self, layer: str, edit: Edit) -> list[Edit]:
        """Wait until ``edit`` is done (``[]``) or no batch of the layer runs: then the next
        one, for the caller to run."""
        with self._cond:
            while not edit.done and layer in self._busy:
                self._cond.wait()
            if edit.done:
                return []
            self._busy.add(layer)
            queue = self._pending[layer]
            batch = queue[:MAX_BATCH]
            del queue[:MAX_BATCH]
            if not queue:
                del self._pending[layer]
            return batch

    def _finish(self, layer: str, batch: list[Edit]) -> None:
        """Mark the batch's edits done and let the next batch of the layer start."""
        with self._cond:
            for edit in batch:
                edit.done = True
            self._busy.discard(layer)
            self._cond.notify_all()

    def _apply(self, layer: str, batch: list[Edit]) -> None:
        """One transaction for the batch; a failure of the whole is every edit's error."""
        metrics.EDIT_BATCH_EDITS.observe(len(batch))
        try:
            with metrics.EDIT_BATCH_SECONDS.time(), self._sessions() as session:
                self._apply_in(session, layer, batch)
        except Exception as exc:  # handed to each edit's request, mapped to HTTP there
            for edit in batch:
                if edit.error is None:
                    edit.answer, edit.error = None, exc

    def _apply_in(self, session: Session, layer: str, batch: list[Edit]) -> None:
        """Lock the layer, apply each edit in a savepoint, then the shared work, and commit."""
        target = layers.get_by_name(session, name=layer, for_change=True)
        applied: list[tuple[Edit, int | None, Before | None]] = []
        for edit in batch:
            try:
                with session.begin_nested():
                    before = None
                    if edit.territory_id is not None:
                        before = before_change(
                            session, layer=target, territory_id=edit.territory_id
                        )
                    territory_id = edit.apply(session, target)
            except Exception as exc:  # this edit's own error; the batch goes on
                edit.error = exc
                continue
            applied.append((edit, territory_id, before))
        if not applied:
            return
        layers.touch(session, layer=target)  # first: the version the staged index carries
        entry = self._registry.stage(session, target)
        after_changes(
            session,
            layer=target,
            changes=[(territory_id, before) for _, territory_id, before in applied],
            index=entry.index,
        )
        for edit, territory_id, _ in applied:
            if territory_id is not None:
                edit.answer = repo.get_feature(
                    session, layer_id=target.id, territory_id=territory_id
                )
        session.commit()
        self._registry.install(entry)


def get_edits(request: Request) -> EditQueue:
    """The app's territory edit queue."""
    edits: EditQueue = request.app.state.edits
    return edits


EditsDep = Annotated[EditQueue, Depends(get_edits)]
