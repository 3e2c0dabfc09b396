"""Feeding the engine from PostGIS, and the per-layer indexes a worker keeps in memory.

An index is built from the stored territories and then answers look-ups without the database.
Each layer's entry is replaced whole when the layer changes (its ``updated_at`` moves), so a
reader sees either the old index or the new one, never half of a change.

A change does not rebuild the whole index: the layer's territories are read again (ids, WKB,
priority, area: about 20 ms for the 3,230 counties), compared with what the held index was
built from, and only what differs goes to ``TerritoryIndex.with_changes``, which rebuilds the
cells those territories touch. When most territories differ, a full build is as quick.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.errors import NotFoundError
from app.models import Layer
from app.repositories import assignments
from app.repositories import layers as layer_repo
from spatial.index import Territories, TerritoryIndex

log = logging.getLogger(__name__)

OWN_EDIT_S = 5.0  # a NOTIFY this soon after this worker staged that version is its own edit's
How = Literal["built", "updated", "kept"]  # whole index / changed cells only / same index


@dataclass(frozen=True, eq=False)
class Source:
    """What an index was built from, territory by territory, to find what a change changed."""

    ids: np.ndarray  # int64
    digests: np.ndarray  # (n, 2) uint64: BLAKE2b-128 of each WKB, so a new shape shows
    priority: np.ndarray
    area_m2: np.ndarray

    @classmethod
    def of(cls, found: dict[str, Any]) -> Source:
        """The fingerprint of ``assignments.engine_input``'s answer."""
        digests = b"".join(hashlib.blake2b(wkb, digest_size=16).digest() for wkb in found["wkb"])
        words = np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)
        return cls(found["ids"], words, found["priority"], found["area_m2"])

    def changes(self, newer: Source) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``newer`` of added or changed territories, and the ids removed since."""
        removed = np.setdiff1d(self.ids, newer.ids)
        if not self.ids.size:
            return np.arange(newer.ids.size), removed
        order = np.argsort(self.ids)
        at = order[np.minimum(np.searchsorted(self.ids, newer.ids, sorter=order), order.size - 1)]
        same = (
            (self.ids[at] == newer.ids)
            & (self.priority[at] == newer.priority)
            & (self.area_m2[at] == newer.area_m2)
            & (self.digests[at] == newer.digests).all(axis=1)
        )
        return np.flatnonzero(~same), removed

    def same_shapes(self, newer: Source, at: np.ndarray) -> np.ndarray:
        """For each position ``at`` in ``newer``: was that territory here, with the same shape?"""
        if not self.ids.size:
            return np.zeros(at.size, dtype=bool)
        order = np.argsort(self.ids)
        ids = newer.ids[at]
        old = order[np.minimum(np.searchsorted(self.ids, ids, sorter=order), order.size - 1)]
        return (self.ids[old] == ids) & (self.digests[old] == newer.digests[at]).all(axis=1)


@dataclass(frozen=True, eq=False)
class LayerIndex:
    """A layer's index and what look-ups show of its territories, as of ``version``."""

    layer_id: int
    layer: str
    version: datetime
    index: TerritoryIndex
    refs: dict[int, dict[str, Any]]  # territory id -> its id, name and owner, built once
    source: Source  # what the index was built from, to apply the next change
    how: How = "built"  # how this version was made from the one before
    seconds: float = 0.0  # reading the territories and making the index

    @functools.cached_property
    def shapes_key(self) -> str:
        """A digest of the index's territories' ids and shapes, in the index's order.

        What is drawn from the shapes alone (colours, simplified outlines) is the same for
        every version with this key: a new name, owner or priority keeps it.
        """
        ids = self.index.territories.ids
        at = np.searchsorted(self.source.ids, ids)  # the source is by id (engine_input)
        digest = hashlib.blake2b(ids.tobytes(), digest_size=16)
        digest.update(np.ascontiguousarray(self.source.digests[at]).tobytes())
        return digest.hexdigest()

    def describe(self, territory_id: int) -> dict[str, Any]:
        """Id, name and owner of one territory of the layer (shared: do not modify)."""
        return self.refs[territory_id]


def build_index(session: Session, *, layer_id: int) -> TerritoryIndex:
    """A new index over the layer's territories as stored now."""
    return _build(assignments.engine_input(session, layer_id=layer_id))


def _territories(found: dict[str, Any], at: np.ndarray | None = None) -> Territories:
    """Engine input from ``engine_input``'s answer: every territory, or those at ``at``."""
    pick = np.arange(found["ids"].size) if at is None else at
    wkb = [found["wkb"][i] for i in pick.tolist()]
    return Territories(
        ids=found["ids"][pick],
        geoms=np.asarray(shapely.from_wkb(wkb), dtype=object).reshape(-1),
        priority=found["priority"][pick],
        area_m2=found["area_m2"][pick],
    )


def _build(found: dict[str, Any]) -> TerritoryIndex:
    """A full build over every territory found."""
    return TerritoryIndex.build(_territories(found))


def _next_index(
    base: LayerIndex | None, found: dict[str, Any], source: Source
) -> tuple[TerritoryIndex, How]:
    """The index of the layer as ``found``: the base's with the changes applied, if it helps."""
    if base is None:
        return _build(found), "built"
    changed, removed = base.source.changes(source)
    if changed.size + removed.size == 0:
        return base.index, "kept"  # names or owners changed: the index is the same
    # A new priority (or area) alone moves no border: only the owners of overlaps change.
    reshaped = changed[~base.source.same_shapes(source, changed)]
    n_changes = reshaped.size + removed.size
    if 2 * n_changes > max(source.ids.size, base.source.ids.size):
        return _build(found), "built"  # most territories changed: a full build is as quick
    index = base.index
    if n_changes:
        index = index.with_changes(_territories(found, reshaped), removed)
        if index.rebuilt_roots == index.root_cells:
            return index, "built"  # the engine built whole: left the root grid or most of it
    if reshaped.size < changed.size:
        at = np.searchsorted(source.ids, index.territories.ids)  # source: by id (engine_input)
        index = index.with_ranking(source.priority[at], source.area_m2[at])
    return index, "updated"


class IndexRegistry:
    """The indexes of one worker, built on first use and replaced whole when a layer changes."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._entries: dict[str, LayerIndex] = {}
        # Entries no longer answered from (their layer changed here) but kept as the base the
        # next version is made from: a change to apply costs far less than a build.
        self._stale: dict[str, LayerIndex] = {}
        self._lock = threading.Lock()  # one build at a time: builds are CPU-bound anyway
        # Versions staged by this worker's edits (``stage``), about to be installed: the NOTIFY
        # of such a commit need not make the same index again (it reached the listener before
        # the request installed it, and the refresh doubled an edit's work here).
        self._staged: dict[str, tuple[datetime, float]] = {}  # version, when (monotonic s)

    def current(self, layer: Layer) -> LayerIndex:
        """The index of ``layer`` as just read from the database: refreshed if this worker's is
        older (its NOTIFY may not have arrived yet). For analyses, which must not lag an edit."""
        entry = self.get(layer.name)
        return entry if entry.version >= layer.updated_at else self.refresh(layer.name)

    def held(self, layer: str) -> LayerIndex | None:
        """The layer's index if this worker holds one now; never waits, never reads the database."""
        return self._entries.get(layer)

    def get(self, layer: str) -> LayerIndex:
        """The layer's index; built (from the database) only if this worker has none yet."""
        entry = self._entries.get(layer)
        return entry if entry is not None else self.refresh(layer)

    def refresh(self, layer: str, *, heard: bool = False) -> LayerIndex:
        """Bring the layer's index up to the stored layer, if that is newer than the one held.

        ``heard``: called for a NOTIFY; a version this worker's own edit staged a moment ago
        is left to that edit's ``install``.
        """
        with self._lock, self._factory() as session:
            # One snapshot for the layer's version and its territories, so the label a version
            # carries is the state it holds (READ COMMITTED would read each at its own moment).
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            try:
                current = layer_repo.get_by_name(session, name=layer)
            except NotFoundError:
                self._drop(layer)
                raise
            # A forgotten entry may be current already: this thread heard of the change and
            # refreshed before the request that made it let go of the entry it held.
            held = self._entries.get(layer) or self._stale.get(layer)
            if heard and held is not None and self._own(layer, current.updated_at):
                return held  # this worker's own edit's version, installed at its commit
            if held is not None and held.version >= current.updated_at:
                entry = held
            else:
                entry = self._load(session, current, held)
            self._entries[layer] = entry  # one assignment: readers see old or new, whole
            self._stale.pop(layer, None)
            return entry

    def warm(self) -> list[str]:
        """Build every layer's index now; returns the layers built."""
        with self._factory() as session:
            names = [layer.name for layer in layer_repo.all_layers(session)]
        for name in names:
            self.get(name)
        return names

    def forget(self, layer: str) -> None:
        """Stop answering from the layer's index (changed or deleted here).

        The next look-up brings it up to date, from the old index when the layer still exists.
        Taken under the build lock: a refresh that began before this worker's commit (and so
        holds the old state) finishes first and is then set aside, so this worker never answers
        the state it has just changed after the request that changed it returns.
        """
        with self._lock:
            entry = self._entries.pop(layer, None)
            if entry is not None:
                self._stale[layer] = entry

    def stage(self, session: Session, layer: Layer) -> LayerIndex:
        """The layer's next index as ``session`` sees it, its own uncommitted change included.

        Made from the index held (the changed cells only), labelled with the version the
        session's ``layers.touch`` gave the layer: the session holds the layer's row lock, so
        no other change can land in between and that label is what the commit stores. The
        caller re-assigns customers with it and, once committed, ``install``s it.
        """
        version = layer_repo.version_of(session, layer_id=layer.id)
        base = self._entries.get(layer.name) or self._stale.get(layer.name)
        entry = self._load(session, layer, base, version=version)
        # Unique per commit (the clock under the layer's row lock): a rolled-back staging can
        # never match a committed version, so it can never make a refresh skip one.
        self._staged[layer.name] = (version, time.monotonic())
        return entry

    def install(self, entry: LayerIndex) -> None:
        """Answer from ``entry`` (``stage``'s, committed) unless a newer one is held already."""
        with self._lock:
            held = self._entries.get(entry.layer) or self._stale.get(entry.layer)
            if held is None or held.version < entry.version:
                self._entries[entry.layer] = entry
                self._stale.pop(entry.layer, None)
                metrics.observe_index(entry)
            if self._own(entry.layer, entry.version):
                del self._staged[entry.layer]

    def _own(self, layer: str, version: datetime) -> bool:
        """Did this worker's edit stage ``version`` of the layer in the last few seconds?

        Bounded in time: should the install never come (the commit's answer lost after the
        commit), a NOTIFY after OWN_EDIT_S seconds, or any ``current``, does the work after all.
        """
        staged = self._staged.get(layer)
        if staged is None or staged[0] != version:
            return False
        return time.monotonic() - staged[1] < OWN_EDIT_S

    def changed(self, layer: str) -> None:
        """A layer changed somewhere: update the index this worker holds, or drop it if gone."""
        if layer not in self._entries and layer not in self._stale:
            return  # never used here: built on first use, as it is now
        with contextlib.suppress(NotFoundError):  # gone: refresh dropped it
            self.refresh(layer, heard=True)

    def version(self, layer: str) -> datetime | None:
        """The version of the layer's index held now (None: none held)."""
        entry = self._entries.get(layer)
        return entry.version if entry else None

    def _drop(self, layer: str) -> None:
        """Forget the layer altogether (it is gone)."""
        self._entries.pop(layer, None)
        self._stale.pop(layer, None)
        metrics.forget_index(layer)

    @staticmethod
    def _load(
        session: Session, layer: Layer, base: LayerIndex | None, *, version: datetime | None = None
    ) -> LayerIndex:
        """The layer's entry as ``session`` sees it, made from ``base`` when there is one;
        labelled ``version`` (the layer's ``updated_at`` by default)."""
        started = time.perf_counter()
        found = assignments.engine_input(session, layer_id=layer.id)
        source = Source.of(found)
        index, how = _next_index(base, found, source)
        ids = found["ids"].tolist()
        entry = LayerIndex(
            layer_id=layer.id,
            layer=layer.name,
            version=version or layer.updated_at,
            index=index,
            # Built once per index: a batch of 100,000 look-ups reuses them, not rebuilds them.
            refs={
                tid: {"id": tid, "name": name, "owner": owner}
                for tid, name, owner in zip(ids, found["name"], found["owner"], strict=True)
            },
            source=source,
            how=how,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "layer %r: index %s in %.3f s (%d territories, %d root cells built)",
            layer.name,
            how,
            entry.seconds,
            len(index),
            index.rebuilt_roots if how != "kept" else 0,
        )
        if version is None:  # a staged entry counts once installed
            metrics.observe_index(entry)
        return entry


def get_registry(request: Request) -> IndexRegistry:
    """The app's index registry."""
    registry: IndexRegistry = request.app.state.indexes
    return registry


IndexDep = Annotated[IndexRegistry, Depends(get_registry)]
