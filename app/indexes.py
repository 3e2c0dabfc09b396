"""Feeding the engine from PostGIS, and the per-layer indexes a worker keeps in memory.

An index is built from the stored territories and then answers look-ups without the database.
Each layer's entry is replaced whole when the layer changes (its ``updated_at`` moves), so a
reader sees either the old index or the new one, never half of a change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import shapely
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.errors import NotFoundError
from app.models import Layer
from app.repositories import assignments
from app.repositories import layers as layer_repo
from spatial.index import Territories, TerritoryIndex


@dataclass(frozen=True, eq=False)
class LayerIndex:
    """A layer's index and what look-ups show of its territories, as of ``version``."""

    layer_id: int
    layer: str
    version: datetime
    index: TerritoryIndex
    refs: dict[int, dict[str, Any]]  # territory id -> its id, name and owner, built once

    def describe(self, territory_id: int) -> dict[str, Any]:
        """Id, name and owner of one territory of the layer (shared: do not modify)."""
        return self.refs[territory_id]


def build_index(session: Session, *, layer_id: int) -> TerritoryIndex:
    """A new index over the layer's territories as stored now."""
    return _build(assignments.engine_input(session, layer_id=layer_id))


def _build(found: dict[str, Any]) -> TerritoryIndex:
    geoms = np.asarray(shapely.from_wkb(found["wkb"]), dtype=object)
    territories = Territories(
        ids=found["ids"], geoms=geoms, priority=found["priority"], area_m2=found["area_m2"]
    )
    return TerritoryIndex.build(territories)


class IndexRegistry:
    """The indexes of one worker, built on first use and replaced whole when a layer changes."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._entries: dict[str, LayerIndex] = {}
        self._lock = threading.Lock()  # one build at a time: builds are CPU-bound anyway

    def get(self, layer: str) -> LayerIndex:
        """The layer's index; built (from the database) only if this worker has none yet."""
        entry = self._entries.get(layer)
        return entry if entry is not None else self.refresh(layer)

    def refresh(self, layer: str) -> LayerIndex:
        """Rebuild the layer's index if the stored layer is newer than the one held."""
        with self._lock, self._factory() as session:
            current = layer_repo.get_by_name(session, name=layer)
            held = self._entries.get(layer)
            if held is not None and held.version >= current.updated_at:
                return held
            entry = self._load(session, current)
            self._entries[layer] = entry  # one assignment: readers see old or new, whole
            return entry

    def warm(self) -> list[str]:
        """Build every layer's index now; returns the layers built."""
        with self._factory() as session:
            names = [layer.name for layer in layer_repo.all_layers(session)]
        for name in names:
            self.get(name)
        return names

    def forget(self, layer: str) -> None:
        """Drop a layer's index (deleted, or changed): the next look-up builds it again."""
        self._entries.pop(layer, None)

    def changed(self, layer: str) -> None:
        """A layer changed somewhere: rebuild the index this worker holds, or drop it if gone."""
        if layer not in self._entries:
            return  # never used here: built on first use, as it is now
        try:
            self.refresh(layer)
        except NotFoundError:
            self.forget(layer)

    def version(self, layer: str) -> datetime | None:
        """The version of the layer's index held now (None: none held)."""
        entry = self._entries.get(layer)
        return entry.version if entry else None

    @staticmethod
    def _load(session: Session, layer: Layer) -> LayerIndex:
        found = assignments.engine_input(session, layer_id=layer.id)
        ids = found["ids"].tolist()
        return LayerIndex(
            layer_id=layer.id,
            layer=layer.name,
            version=layer.updated_at,
            index=_build(found),
            # Built once per index: a batch of 100,000 look-ups reuses them, not rebuilds them.
            refs={
                tid: {"id": tid, "name": name, "owner": owner}
                for tid, name, owner in zip(ids, found["name"], found["owner"], strict=True)
            },
        )


def get_registry(request: Request) -> IndexRegistry:
    """The app's index registry."""
    registry: IndexRegistry = request.app.state.indexes
    return registry


IndexDep = Annotated[IndexRegistry, Depends(get_registry)]
