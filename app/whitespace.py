"""White space as a service: the engine fed from PostGIS, and what a worker keeps between asks.

What is kept, per worker, and what moves it on:

* answers, as the bytes sent, per (layer version, market, reference version, customers'
  version, h3_res, top): a repeat on an unchanged layer is one look-up and two cheap probes
  (a new customer shows at once; a moved or revalued one within ``CUSTOMERS_RECHECK_S``);
* the union of a layer's territories, per layer version (the costly step, reused by every
  market), brought along an edit instead of made anew: for a layer that tiles its ground
  (counties, states), whose union is quick to make edge to edge and worth keeping. A layer
  whose territories overlap much (``spatial.whitespace.overlapping``) keeps none: its white
  space is the market less every territory at once (``uncovered_by``), about as quick as
  the difference with a kept union alone (12 against 10-11 ms for 500 territories and the
  nation: bench/RESULTS.md), with no union to make, keep or bring along;
* market shapes and the counties of the breakdown, per version of the reference boundaries
  (``repositories.whitespace.reference_version``), so ``territory boundaries load`` shows at
  the next ask, without a restart.

Customers: in a layer kept assigned (``layers.assigned_at``), only those with no assignment
there or a pin are read (the others lie in the territory they are assigned to); in any other
layer, every customer. Either way the layer's index says who is covered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from app.cache import LruCache
from app.indexes import LayerIndex, Source
from app.models import Layer
from app.repositories import whitespace as repo
from spatial.index import Territories
from spatial.measure import geodesic_area_km2
from spatial.whitespace import (
    Uncovered,
    WhiteSpace,
    cell_polygons,
    covered_union,
    overlapping,
    uncovered_by,
    uncovered_parts,
    updated_union,
    white_space,
)

RESULTS_KEPT = 64  # answers kept (bytes), least recently used dropped first
MARKETS_KEPT = 64  # market shapes kept
LOCAL_SHARE = 10  # a market meeting under 1/10 of a layer's territories unions those alone
# Customers' version (count, largest id, latest write) reads the whole table: 250 ms for a
# million. A new customer (a larger id: one index probe) is seen at once; a moved or revalued
# one at the next full check, at most this many seconds later.
CUSTOMERS_RECHECK_S = 5.0

Kind = Literal["nation", "states", "counties", "geometry"]
# How the union of the layer was had; "none": not made (the territories taken at once).
Union = Literal["kept", "updated", "built", "local", "none"]


@dataclass(frozen=True)
class Market:
    """A market: its cache key, what the request named, and its shape (lon/lat degrees)."""

    key: tuple[Hashable, ...]
    kind: Kind
    codes: list[str]
    geom: BaseGeometry


@dataclass(frozen=True, eq=False)
class Counties:
    """The reference counties, as the breakdown needs them."""

    fips: list[str]
    name: list[str]
    state_code: list[str]
    geoms: np.ndarray
    km2: np.ndarray  # geodesic area of each (a county the white space covers takes it whole)


@dataclass(frozen=True, eq=False)
class _Held:
    """A layer's union as of one version, and what it was made from."""

    version: Any
    union: BaseGeometry
    territories: Territories
    source: Source


def _update(held: _Held, entry: LayerIndex) -> BaseGeometry | None:
    """The held union brought to the entry's version; None when most of the layer changed."""
    changed, removed = held.source.changes(entry.source)
    if LOCAL_SHARE * (changed.size + removed.size) > max(len(entry.index.territories), 1):
        return None
    now = entry.index.territories
    changed_ids = entry.source.ids[changed]
    before = held.territories
    gone = before.geoms[np.isin(before.ids, np.union1d(changed_ids, removed))]
    added = now.geoms[np.isin(now.ids, changed_ids)]
    return updated_union(held.union, gone=gone, added=added, current=now.geoms)


class WhiteSpaceService:
    """What white space answers reuse in one worker: answers, unions, markets, counties."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unions: dict[int, _Held] = {}  # layer id -> its union as of one version
        self._answers = LruCache(RESULTS_KEPT)
        self._markets = LruCache(MARKETS_KEPT)  # (reference version, kind, codes) -> shape
        self._counties = LruCache(2)  # reference version -> Counties
        self._customers: tuple[float, int, tuple[Hashable, ...]] | None = None  # at, top, version

    def named_market(self, session: Session, *, kind: Kind, codes: list[str]) -> Market:
        """The nation, some states or some counties, as the reference boundaries hold them now."""
        key: tuple[Hashable, ...] = (kind, tuple(sorted(set(codes))))

        def make() -> BaseGeometry:
            if kind == "nation":
                wkb = repo.nation_wkb(session)
            else:
                wkb = repo.market_wkb(
                    session,
                    states=codes if kind == "states" else [],
                    counties=codes if kind == "counties" else [],
                )
            return shapely.union_all(shapely.from_wkb(wkb))

        geom = self._markets.get_or_make((repo.reference_version(session), *key), make)
        return Market(key, kind, codes, geom)

    def answer(
        self, session: Session, *, layer: Layer, entry: LayerIndex, market: Market, h3_res: int,
        top: int,
    ) -> tuple[bytes, bool]:  # fmt: skip
        """The white space document of the market in the layer, and whether it was kept."""
        reference = repo.reference_version(session)
        key = (
            entry.layer_id, entry.version, market.key, reference, self._customers_version(session),
            h3_res, top,
        )  # fmt: skip
        made = False

        def make() -> bytes:
            nonlocal made
            made = True
            return self._work_out(session, layer, entry, market, (reference, h3_res, top))

        body: bytes = self._answers.get_or_make(key, make)
        return body, not made

    def _work_out(
        self,
        session: Session,
        layer: Layer,
        entry: LayerIndex,
        market: Market,
        options: tuple[Hashable, int, int],
    ) -> bytes:
        """Work the answer out: uncovered parts, customers, engine, document."""
        reference, h3_res, top = options
        started = time.perf_counter()
        parts, union_how = self.uncovered(entry, market.geom)
        counties = self._counties.get_or_make(reference, lambda: _read_counties(session))
        # A layer kept assigned: only the customers no territory was found to cover, or pinned.
        kept = layer.assigned_at is not None
        lon, lat, value = repo.customer_values(
            session, uncovered_in=entry.layer_id if kept else None
        )
        owner = entry.index.owners(lon, lat).owner
        result = white_space(
            market.geom, parts, lon=lon, lat=lat, value=value, owner=owner,
            regions=counties.geoms, region_km2=counties.km2, h3_res=h3_res,
        )  # fmt: skip
        document = _document(entry=entry, market=market, result=result, counties=counties, top=top)
        document["summary"]["union"] = union_how
        document["summary"]["seconds"] = round(time.perf_counter() - started, 4)
        return orjson.dumps(document)

    def uncovered(self, entry: LayerIndex, market: BaseGeometry) -> tuple[Uncovered, Union]:
        """The market's uncovered polygons in the layer as of the entry, and how the layer's
        union was had for them ("none" when the territories overlap much: not made)."""
        geoms = entry.index.territories.geoms
        if overlapping(geoms):  # a sample of 64 points: ~0.2 ms for 500 territories
            return uncovered_by(market, geoms), "none"
        covered, how = self.union(entry, market)
        return Uncovered.measured(uncovered_parts(market, covered)), how

    def union(self, entry: LayerIndex, market: BaseGeometry) -> tuple[BaseGeometry, Union]:
        """The union of the layer's territories that the market needs, as of the entry.

        The whole layer's union is kept per version, and made from the one kept before when
        few territories changed since. While none is kept, a market meeting under a tenth of
        the territories (a state of the counties layer: 58 of 3,230) gets the union of those
        alone, which costs a fraction of the whole layer's.
        """
        with self._lock:
            held = self._unions.get(entry.layer_id)
        if held is not None and held.version == entry.version:
            return held.union, "kept"
        territories = entry.index.territories
        how: Union
        if held is not None and (update := _update(held, entry)) is not None:
            union, how = update, "updated"
        else:
            meeting = shapely.STRtree(territories.geoms).query(market, predicate="intersects")
            if LOCAL_SHARE * meeting.size < len(territories):
                return covered_union(territories.geoms[meeting]), "local"
            union, how = covered_union(territories.geoms), "built"
        # Kept unprepared: asks on other threads use it at once, and a prepared geometry
        # builds its indexes on first use, which is not thread-safe (the engine relates to
        # copies of its own).
        with self._lock:
            self._unions[entry.layer_id] = _Held(entry.version, union, territories, entry.source)
        return union, how

    def _customers_version(self, session: Session) -> tuple[Hashable, ...]:
        """The customers' version: checked whole when a new id shows or every few seconds."""
        top = repo.customers_top_id(session)
        now = time.monotonic()
        with self._lock:
            held = self._customers
        if held is not None and held[1] == top and now - held[0] < CUSTOMERS_RECHECK_S:
            return held[2]
        version = repo.customers_version(session)
        with self._lock:
            self._customers = (now, top, version)
        return version


def _read_counties(session: Session) -> Counties:
    """The reference counties as stored now."""
    found = repo.counties(session)
    geoms = np.asarray(shapely.from_wkb(found["wkb"]), dtype=object).reshape(-1)
    return Counties(
        found["fips"], found["name"], found["state_code"], geoms, geodesic_area_km2(geoms)
    )


# --- the document -----------------------------------------------------------------------------


def _parts(result: WhiteSpace) -> list[dict[str, Any]]:
    shapes = shapely.to_geojson(result.parts).tolist()
    return [
        {
            "type": "Feature",
            "id": i + 1,
            "geometry": orjson.Fragment(shape),
            "properties": {"area_km2": float(km2)},
        }
        for i, (shape, km2) in enumerate(zip(shapes, result.part_km2.tolist(), strict=True))
    ]


def _county_features(result: WhiteSpace, counties: Counties, top: int) -> dict[str, Any]:
    regions = result.regions
    shown = regions.position[:top]
    shapes = shapely.to_geojson(counties.geoms[shown]).tolist()
    features = [
        {
            "type": "Feature",
            "id": counties.fips[c],
            "geometry": orjson.Fragment(shape),
            "properties": {
                "rank": rank + 1,
                "fips": counties.fips[c],
                "name": counties.name[c],
                "state_code": counties.state_code[c],
                "uncovered_km2": float(regions.area_km2[rank]),
                "customers": int(regions.customers[rank]),
                "value": float(regions.value[rank]),
            },
        }
        for rank, (c, shape) in enumerate(zip(shown.tolist(), shapes, strict=True))
    ]
    return _collection(features, matched=int(regions.position.size))


def _hexagon_features(result: WhiteSpace, top: int) -> dict[str, Any]:
    hexagons = result.hexagons
    shapes = shapely.to_geojson(cell_polygons(hexagons.cells[:top])).tolist()
    features = [
        {
            "type": "Feature",
            "id": cell,
            "geometry": orjson.Fragment(shape),
            "properties": {
                "rank": rank + 1,
                "h3": cell,
                "resolution": hexagons.res,
                "customers": int(hexagons.customers[rank]),
                "value": float(hexagons.value[rank]),
            },
        }
        for rank, (cell, shape) in enumerate(zip(hexagons.cells[:top], shapes, strict=True))
    ]
    return _collection(features, matched=len(hexagons.cells))


def _collection(features: list[dict[str, Any]], *, matched: int) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(features),
        "features": features,
    }


def _document(
    *, entry: LayerIndex, market: Market, result: WhiteSpace, counties: Counties, top: int
) -> dict[str, Any]:
    parts = _parts(result)
    return {
        "type": "FeatureCollection",
        "numberMatched": len(parts),
        "numberReturned": len(parts),
        "features": parts,
        "summary": {
            "layer": entry.layer,
            "layer_version": entry.version.isoformat(),
            "market": {"kind": market.kind, "codes": market.codes, "area_km2": result.market_km2},
            "uncovered_km2": result.area_km2,
            "uncovered_percent": result.percent,
            "parts": len(parts),
            "customers": {"count": int(result.customers.size), "value": result.value},
            "h3_res": result.hexagons.res,
        },
        "counties": _county_features(result, counties, top),
        "hexagons": _hexagon_features(result, top),
    }
