"""Coverage maps: a layer's territories with their customers, value, area, share and colour.

Shapes come from the worker's in-memory index (the layer as stored), simplified for the zoom
with the shared borders kept shared (``spatial.coverage``); counts and values from the layer's
assignments in PostGIS. A whole response is cached per worker under its ETag, which names the
layer's version, its assignments' version and the request's options, so it changes exactly
when one of them does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy.orm import Session

from app.cache import LruCache
from app.errors import InputError
from app.indexes import IndexRegistry, LayerIndex
from app.models import Layer
from app.repositories import assignments
from app.repositories import coverage as repo
from spatial import coverage as engine
from spatial.balance import Spread, spread

MAX_CUSTOMER_POINTS = 100_000  # include_customers: more than this needs a bbox


@dataclass(frozen=True)
class CoverageOptions:
    """What a coverage map request asks for."""

    bbox: tuple[float, float, float, float] | None = None
    tolerance_m: float = 0.0  # 0: full resolution
    include_customers: bool = False


def etag(layer: Layer, assignment_version: int, options: CoverageOptions) -> str:
    """A strong ETag: the layer's version, its assignments' version and the options."""
    return _etag(layer.id, layer.updated_at, assignment_version, options)


def _etag(layer_id: int, version: datetime, assignment_version: int, options: object) -> str:
    key = repr((layer_id, version.isoformat(), assignment_version, options))
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


# Colours and simplified shapes, by the shapes they are drawn from (LayerIndex.shapes_key), not
# by the layer's version: an edit of a name, owner or priority keeps them, and they are
# content-addressed, so one cache serves every app of the process. Apart from the app's cache
# of answers, so that a stream of edits of one layer (new maps and tiles, each an entry) does
# not push out another layer's shapes: the counties' cost 1.1 s to clean and 0.2-0.5 s per
# zoom to simplify, and they were evicted and rebuilt again and again under load.
_SHAPES = LruCache(max_entries=48)


@dataclass(frozen=True, eq=False)
class _Shapes:
    """A layer version's territories as GeoJSON text at one tolerance, with their colours."""

    geojson: list[str]
    color: np.ndarray


def colors(entry: LayerIndex) -> np.ndarray:
    """Each territory's colour (0-5, by index position), never shared by touching ones."""
    geoms = entry.index.territories.geoms
    found: np.ndarray = _SHAPES.get_or_make(
        ("colors", entry.shapes_key), lambda: engine.colors(geoms)
    )
    return found


def shapes(cache: LruCache, entry: LayerIndex, tolerance_m: float) -> _Shapes:
    """The layer's shapes at ``tolerance_m`` (kept per set of shapes and tolerance).

    ``cache``: unused (the shapes have a cache of their own, ``_SHAPES``); kept for callers.
    """
    del cache

    def make() -> _Shapes:
        geoms = entry.index.territories.geoms
        simple = geoms  # full resolution: the shapes as stored
        if tolerance_m:
            clean = _SHAPES.get_or_make(
                ("cleaned", entry.shapes_key), lambda: engine.cleaned(geoms)
            )
            simple = engine.simplify(clean, tolerance_m=tolerance_m)
        # RFC 7946: exterior rings counter-clockwise, holes clockwise.
        text = shapely.to_geojson(shapely.orient_polygons(simple)).tolist()
        return _Shapes(text, colors(entry))

    found: _Shapes = _SHAPES.get_or_make(("shapes", entry.shapes_key, tolerance_m), make)
    return found


# Zooms whose shapes a worker makes at start (``warm``): whole-country to regional views, where a
# map opens. The counties' cost 0.8 s to clean and ~0.15 s per zoom to simplify: made on the
# first map reads instead, they held every heavy slot for seconds after a start, and map reads
# queued behind them were shed (bench/RESULTS.md, "Load", warm-up). Deeper zooms: on first use.
WARM_ZOOMS = range(11)


def warm(cache: LruCache, registry: IndexRegistry, layers: list[str]) -> None:
    """Make the colours and the shapes at ``WARM_ZOOMS`` of the layers whose index is held."""
    for name in layers:
        entry = registry.held(name)
        if entry is None:
            continue
        colors(entry)
        for zoom in WARM_ZOOMS:
            shapes(cache, entry, engine.tolerance_for_zoom(zoom))


@dataclass(frozen=True, eq=False)
class Stats:
    """Customer count and value per territory (by index position), as of ``version``."""

    version: int  # the layer's assignment version the counts are of
    count: np.ndarray
    value: np.ndarray


def stats(cache: LruCache, session: Session, entry: LayerIndex, version: int) -> Stats:
    """The territories' customer counts and values, read once per assignments version.

    ``version``: the assignments' version the caller read. The counts may be of a later one
    (written since): ``Stats.version`` says which, and an answer made from them is labelled
    with it, so a body always matches its ETag.
    """
    ids = entry.index.territories.ids

    def read() -> Stats:
        found, count, value = repo.versioned_stats(
            session, layer_id=entry.layer_id, territory_ids=ids
        )
        return Stats(found, count, value)

    got: Stats = cache.get_or_make(("stats", entry.layer_id, entry.shapes_key, version), read)
    return got


@dataclass(frozen=True)
class Answer:
    """A coverage map answer: its status (200 or 304), body (empty for 304) and ETag."""

    status: int
    body: bytes
    tag: str


def answer(
    session: Session,
    *,
    cache: LruCache,
    registry: IndexRegistry,
    layer: Layer,
    options: CoverageOptions,
    if_none_match: str | None,
) -> Answer:
    """GET /layers/{layer}/coverage: 304 when ``if_none_match`` is current, else the map.

    The ETag names the layer's version and its assignments' version; the map is made once
    per ETag and worker (concurrent misses wait for the one being made). When the layer or
    its assignments moved on between reading their versions and making the map, the answer
    is labelled with the versions it was made from.
    """
    version = assignments.version(session, layer_id=layer.id)
    tag = etag(layer, version, options)
    if matches(if_none_match, tag):
        return Answer(304, b"", tag)
    entry = registry.current(layer)
    counts = stats(cache, session, entry, version)
    if counts.version != version or entry.version != layer.updated_at:
        tag = _etag(entry.layer_id, entry.version, counts.version, options)
    body: bytes = cache.get_or_make(
        ("coverage", tag),
        lambda: coverage_map(
            session,
            cache=cache,
            entry=entry,
            options=options,
            stats=counts,
            assigned_at=layer.assigned_at,
        ),
    )
    return Answer(200, body, tag)


def matches(if_none_match: str | None, tag: str) -> bool:
    """Does an If-None-Match header name ``tag`` (weak or strong), or ``*``?"""
    if not if_none_match:
        return False
    names = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return tag in names or "*" in names


def coverage_map(
    session: Session,
    *,
    cache: LruCache,
    entry: LayerIndex,
    options: CoverageOptions,
    stats: Stats | None = None,
    assigned_at: datetime | None,
) -> bytes:
    """The coverage map as GeoJSON bytes (a FeatureCollection, lon/lat degrees).

    Customer counts and values are of the layer's stored assignments; ``assigned_at`` (when
    the layer was last bulk-assigned, None if never: every count is then 0) says so.
    """
    territories = entry.index.territories
    if stats is None:
        count, value = repo.territory_stats(
            session, layer_id=entry.layer_id, territory_ids=territories.ids
        )
    else:
        count, value = stats.count, stats.value
    drawn = shapes(cache, entry, options.tolerance_m)
    keep = _in_bbox(territories.geoms, options.bbox)
    total_n, total_value = int(count.sum()), float(value.sum())
    features = [
        _territory_feature(
            entry, int(i), drawn, count=count, value=value, totals=(total_n, total_value)
        )
        for i in keep.tolist()
    ]
    if options.include_customers:
        features += _customer_features(session, entry, options.bbox)
    body = {
        "type": "FeatureCollection",
        "layer": entry.layer,
        "summary": {
            "territories": len(territories),
            "customer_count": total_n,
            "customer_value": round(total_value, 2),
            "area_km2": round(float(territories.area_m2.sum()) / 1e6, 3),
            "assigned_at": _iso(assigned_at),
        },
        "features": features,
    }
    return orjson.dumps(body)


def _in_bbox(geoms: np.ndarray, bbox: tuple[float, float, float, float] | None) -> np.ndarray:
    if bbox is None:
        return np.arange(len(geoms))
    return np.sort(shapely.STRtree(geoms).query(shapely.box(*bbox), predicate="intersects"))


def _territory_feature(
    entry: LayerIndex,
    i: int,
    drawn: _Shapes,
    *,
    count: np.ndarray,
    value: np.ndarray,
    totals: tuple[int, float],
) -> dict[str, Any]:
    territories = entry.index.territories
    tid = int(territories.ids[i])
    ref = entry.describe(tid)
    n, v = int(count[i]), float(value[i])
    return {
        "type": "Feature",
        "id": tid,
        "geometry": orjson.Fragment(drawn.geojson[i]),
        "properties": {
            "name": ref["name"],
            "owner": ref["owner"],
            "customer_count": n,
            "customer_value": round(v, 2),
            "area_km2": round(float(territories.area_m2[i]) / 1e6, 3),
            "customer_share": round(n / totals[0], 6) if totals[0] else 0.0,
            "value_share": round(v / totals[1], 6) if totals[1] else 0.0,
            "color": int(drawn.color[i]),
        },
    }


def _customer_features(
    session: Session, entry: LayerIndex, bbox: tuple[float, float, float, float] | None
) -> list[dict[str, Any]]:
    rows = repo.assigned_customers(
        session, layer_id=entry.layer_id, bbox=bbox, limit=MAX_CUSTOMER_POINTS + 1
    )
    if len(rows) > MAX_CUSTOMER_POINTS:
        raise InputError(
            f"more than {MAX_CUSTOMER_POINTS:,} assigned customers to include; narrow the map "
            "with bbox=minlon,minlat,maxlon,maxlat",
            field="include_customers",
        )
    return [
        {
            "type": "Feature",
            "id": f"customer-{r.id}",
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "properties": {
                "kind": "customer",
                "customer_id": r.id,
                "territory_id": r.territory_id,
                "value": float(r.value),
            },
        }
        for r in rows
    ]


METRICS = ("customer_count", "customer_value", "area_km2")


def balance_report(
    session: Session,
    *,
    cache: LruCache,
    entry: LayerIndex,
    tolerance_m: float,
    assigned_at: datetime | None,
) -> bytes:
    """Balance of the layer as GeoJSON: each territory's metrics and the spread of each.

    Customer counts and values are of the stored assignments, as of ``assigned_at`` (None:
    the layer was never assigned, and has none).
    """
    territories = entry.index.territories
    count, value = repo.territory_stats(
        session, layer_id=entry.layer_id, territory_ids=territories.ids
    )
    metrics = {
        "customer_count": count.astype(np.float64),
        "customer_value": value,
        "area_km2": territories.area_m2 / 1e6,
    }
    spreads = {name: spread(territories.ids, x) for name, x in metrics.items()}
    drawn = shapes(cache, entry, tolerance_m)
    features = []
    for i, tid in enumerate(territories.ids.tolist()):
        props: dict[str, Any] = {**entry.describe(tid)}
        props.pop("id")
        for name, x in metrics.items():
            mean = spreads[name].mean
            props[name] = round(float(x[i]), 3)
            props[f"{name}_vs_mean"] = round(float(x[i]) / mean, 4) if mean else None
        props["color"] = int(drawn.color[i])
        features.append(
            {"type": "Feature", "id": tid, "geometry": orjson.Fragment(drawn.geojson[i]),
             "properties": props}
        )  # fmt: skip
    body = {
        "type": "FeatureCollection",
        "layer": entry.layer,
        "assigned_at": _iso(assigned_at),
        "balance": {name: _spread_json(entry, s) for name, s in spreads.items()},
        "features": features,
    }
    return orjson.dumps(body)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _spread_json(entry: LayerIndex, s: Spread) -> dict[str, Any]:
    def named(pairs: list[tuple[int, float]]) -> list[dict[str, Any]]:
        return [{**entry.describe(t), "value": round(v, 3)} for t, v in pairs]

    return {
        "mean": round(s.mean, 3),
        "cv": round(s.cv, 4),
        "gini": round(s.gini, 4),
        "max_min_ratio": None if s.max_min_ratio is None else round(s.max_min_ratio, 3),
        "above_mean": named(s.above),
        "below_mean": named(s.below),
    }
