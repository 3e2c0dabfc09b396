"""White space: the uncovered part of a market, and where its neglected potential lies.

The answer is kept per (layer version, market, customers' version, h3_res, top) as the bytes
sent, so a repeat on an unchanged layer is a dictionary look-up and one primary-key probe (a
new customer shows at once; a moved or revalued one within ``CUSTOMERS_RECHECK_S``). The
union of the layer's territories (the costly step, reused by every market) is kept per layer
version, and market shapes per market. Counties (the breakdown) are read once per app: the
reference boundaries change only with ``territory boundaries load``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import Response
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from app.db import SessionDep
from app.errors import InputError
from app.geojson import GEOJSON, GeoJSONResponse
from app.indexes import IndexDep, LayerIndex, Source
from app.repositories import layers
from app.repositories import whitespace as repo
from app.routes.params import PROBLEMS, RepairQuery, geojson
from app.schemas import WhiteSpacePublic
from spatial.geometry import polygonal_from_geojson
from spatial.index import Territories
from spatial.whitespace import (
    MAX_H3_RES,
    WhiteSpace,
    cell_polygons,
    covered_union,
    updated_union,
    white_space,
)

router = APIRouter(prefix="/layers/{layer}/whitespace", tags=["analysis"], responses=PROBLEMS)

RESULTS_KEPT = 64  # answers kept (bytes), least recently used dropped first
MARKETS_KEPT = 64  # market shapes kept
LOCAL_SHARE = 10  # a market meeting under 1/10 of a layer's territories unions those alone
# Customers' version (count, largest id, latest write) reads the whole table: 250 ms for a
# million. A new customer (a larger id: one index probe) is seen at once; a moved or revalued
# one at the next full check, at most this many seconds later.
CUSTOMERS_RECHECK_S = 5.0

H3Res = Annotated[
    int, Query(ge=0, le=MAX_H3_RES, description="H3 resolution of the hexagon breakdown")
]
Top = Annotated[int, Query(ge=1, le=10_000, description="Counties and hexagons listed (best)")]


@dataclass(frozen=True)
class Market:
    """A market: its cache key, what the request named, and its shape (lon/lat degrees)."""

    key: tuple[Hashable, ...]
    kind: Literal["nation", "states", "counties", "geometry"]
    codes: list[str]
    geom: BaseGeometry


@dataclass(frozen=True, eq=False)
class Counties:
    """The reference counties, as the breakdown needs them."""

    fips: list[str]
    name: list[str]
    state_code: list[str]
    geoms: np.ndarray


Union = Literal["kept", "updated", "built", "local"]  # how the union of the layer was had


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


class WhiteSpaceCache:
    """What white space answers reuse: unions per layer version, markets, answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unions: dict[int, _Held] = {}  # layer id -> its union as of one version
        self._markets: OrderedDict[tuple[Hashable, ...], BaseGeometry] = OrderedDict()
        self._answers: OrderedDict[tuple[Hashable, ...], bytes] = OrderedDict()
        self._counties: Counties | None = None
        self._customers: tuple[float, int, tuple[Hashable, ...]] | None = None  # at, top, version

    def answer(self, key: tuple[Hashable, ...]) -> bytes | None:
        """A kept answer, if any (marked as recently used)."""
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
            return found

    def keep(self, key: tuple[Hashable, ...], body: bytes) -> None:
        """Keep an answer; the least recently used goes beyond RESULTS_KEPT."""
        with self._lock:
            self._answers[key] = body
            while len(self._answers) > RESULTS_KEPT:
                self._answers.popitem(last=False)

    def market(self, key: tuple[Hashable, ...]) -> BaseGeometry | None:
        """A kept market shape, if any."""
        with self._lock:
            return self._markets.get(key)

    def keep_market(self, key: tuple[Hashable, ...], geom: BaseGeometry) -> None:
        """Keep a market shape; the oldest goes beyond MARKETS_KEPT."""
        with self._lock:
            self._markets[key] = geom
            while len(self._markets) > MARKETS_KEPT:
                self._markets.popitem(last=False)

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
        shapely.prepare(union)
        with self._lock:
            self._unions[entry.layer_id] = _Held(entry.version, union, territories, entry.source)
        return union, how

    def customers(self, session: Session) -> tuple[Hashable, ...]:
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

    def counties(self, session: Session) -> Counties:
        """The reference counties (read once)."""
        if self._counties is None:
            found = repo.counties(session)
            geoms = np.asarray(shapely.from_wkb(found["wkb"]), dtype=object).reshape(-1)
            self._counties = Counties(found["fips"], found["name"], found["state_code"], geoms)
        return self._counties


_CREATE_LOCK = threading.Lock()


def cache_of(app: FastAPI) -> WhiteSpaceCache:
    """The app's white space cache, made on first use."""
    with _CREATE_LOCK:
        cache = getattr(app.state, "whitespace_cache", None)
        if cache is None:
            cache = WhiteSpaceCache()
            app.state.whitespace_cache = cache
        return cache


def _codes(raw: str, field: str) -> list[str]:
    codes = [c.strip().upper() for c in raw.split(",") if c.strip()]
    if not codes:
        raise InputError(f"{field} needs at least one code, comma-separated", field=field)
    return codes


def _named_market(
    session: Session,
    cache: WhiteSpaceCache,
    *,
    market: str | None,
    states: str | None,
    counties: str | None,
) -> Market:
    """The market a GET names: the nation, some states or some counties."""
    given = [name for name, v in (("market", market), ("states", states), ("counties", counties))
             if v is not None]  # fmt: skip
    if len(given) > 1:
        raise InputError(
            f"give one market, not {' and '.join(given)}: market=nation, states=CA,NV "
            "or counties=06001,06075",
            field=given[1],
        )
    if states is not None or counties is not None:
        kind: Literal["states", "counties"] = "states" if states is not None else "counties"
        codes = _codes(states if states is not None else counties or "", kind)
        key: tuple[Hashable, ...] = (kind, tuple(sorted(set(codes))))
        geom = cache.market(key)
        if geom is None:
            wkb = repo.market_wkb(
                session,
                states=codes if kind == "states" else [],
                counties=codes if kind == "counties" else [],
            )
            geom = _kept(cache, key, wkb)
        return Market(key, kind, codes, geom)
    geom = cache.market(("nation",))
    if geom is None:
        geom = _kept(cache, ("nation",), repo.nation_wkb(session))
    return Market(("nation",), "nation", [], geom)


def _kept(cache: WhiteSpaceCache, key: tuple[Hashable, ...], wkb: list[bytes]) -> BaseGeometry:
    """The union of the boundaries, kept as the market's shape."""
    geom = shapely.union_all(shapely.from_wkb(wkb))
    cache.keep_market(key, geom)
    return geom


def _drawn_market(body: dict[str, Any], *, repair: bool) -> Market:
    """The market a POST sends: a GeoJSON Polygon, MultiPolygon or Feature of one."""
    field = "body"
    geometry: Any = body
    if body.get("type") == "Feature":
        geometry, field = body.get("geometry"), "geometry"
    geom = polygonal_from_geojson(geometry, repair=repair, field=field)
    digest = hashlib.blake2b(shapely.to_wkb(geom), digest_size=16).hexdigest()
    return Market(("geometry", digest), "geometry", [], geom)


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


def _answer(
    request: Request,
    session: Session,
    entry: LayerIndex,
    market: Market,
    *,
    h3_res: int,
    top: int,
) -> Response:
    """The white space of the market in the layer: kept, or worked out and kept."""
    cache = cache_of(request.app)
    key = (entry.layer_id, entry.version, market.key, cache.customers(session), h3_res, top)
    body = cache.answer(key)
    if body is not None:
        return Response(body, media_type=GEOJSON, headers={"X-Cache": "hit"})
    started = time.perf_counter()
    covered, union_how = cache.union(entry, market.geom)
    counties = cache.counties(session)
    lon, lat, value = repo.customer_values(session)
    owner = entry.index.owners(lon, lat).owner
    result = white_space(
        market.geom, covered, lon=lon, lat=lat, value=value, owner=owner,
        regions=counties.geoms, h3_res=h3_res,
    )  # fmt: skip
    document = _document(entry=entry, market=market, result=result, counties=counties, top=top)
    document["summary"]["union"] = union_how
    document["summary"]["seconds"] = round(time.perf_counter() - started, 4)
    body = orjson.dumps(document)
    cache.keep(key, body)
    return Response(body, media_type=GEOJSON, headers={"X-Cache": "miss"})


@router.get("", response_class=GeoJSONResponse, responses=geojson(WhiteSpacePublic))
def get_whitespace(
    *,
    layer: str,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    market: Annotated[
        Literal["nation"] | None, Query(description="nation (default): every state")
    ] = None,
    states: Annotated[
        str | None, Query(description="States, comma-separated (postal or FIPS)")
    ] = None,
    counties: Annotated[str | None, Query(description="County FIPS, comma-separated")] = None,
    h3_res: H3Res = 5,
    top: Top = 100,
) -> Response:
    """The part of a market no territory of the layer covers, its customers, by county and H3."""
    entry = registry.current(layers.get_by_name(session, name=layer))
    named = _named_market(
        session, cache_of(request.app), market=market, states=states, counties=counties
    )
    return _answer(request, session, entry, named, h3_res=h3_res, top=top)


@router.post("", response_class=GeoJSONResponse, responses=geojson(WhiteSpacePublic))
def post_whitespace(
    *,
    layer: str,
    body: Annotated[
        dict[str, Any], Body(description="GeoJSON Polygon, MultiPolygon or a Feature of one")
    ],
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    repair: RepairQuery = False,
    h3_res: H3Res = 5,
    top: Top = 100,
) -> Response:
    """White space of a drawn market (GeoJSON) in the layer; as GET otherwise."""
    entry = registry.current(layers.get_by_name(session, name=layer))
    drawn = _drawn_market(body, repair=repair)
    return _answer(request, session, entry, drawn, h3_res=h3_res, top=top)
