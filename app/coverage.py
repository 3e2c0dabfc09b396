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
from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy.orm import Session

from app.cache import LruCache
from app.errors import InputError
from app.indexes import LayerIndex
from app.models import Layer
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
    key = repr((layer.id, layer.updated_at.isoformat(), assignment_version, options))
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


@dataclass(frozen=True, eq=False)
class _Shapes:
    """A layer version's territories as GeoJSON text at one tolerance, with their colours."""

    geojson: list[str]
    color: np.ndarray


def shapes(cache: LruCache, entry: LayerIndex, tolerance_m: float) -> _Shapes:
    """The layer's shapes at ``tolerance_m`` (cached per index version and tolerance)."""

    def make() -> _Shapes:
        geoms = entry.index.territories.geoms
        color = cache.get_or_make(
            ("colors", entry.layer_id, entry.version), lambda: engine.colors(geoms)
        )
        simple = geoms  # full resolution: the shapes as stored
        if tolerance_m:
            clean = cache.get_or_make(
                ("cleaned", entry.layer_id, entry.version), lambda: engine.cleaned(geoms)
            )
            simple = engine.simplify(clean, tolerance_m=tolerance_m)
        # RFC 7946: exterior rings counter-clockwise, holes clockwise.
        text = shapely.to_geojson(shapely.orient_polygons(simple)).tolist()
        return _Shapes(text, color)

    return cache.get_or_make(("shapes", entry.layer_id, entry.version, tolerance_m), make)


def coverage_map(
    session: Session, *, cache: LruCache, entry: LayerIndex, options: CoverageOptions
) -> bytes:
    """The coverage map as GeoJSON bytes (a FeatureCollection, lon/lat degrees)."""
    territories = entry.index.territories
    count, value = repo.territory_stats(
        session, layer_id=entry.layer_id, territory_ids=territories.ids
    )
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
    session: Session, *, cache: LruCache, entry: LayerIndex, tolerance_m: float
) -> bytes:
    """Balance of the layer as GeoJSON: each territory's metrics and the spread of each."""
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
        "balance": {name: _spread_json(entry, s) for name, s in spreads.items()},
        "features": features,
    }
    return orjson.dumps(body)


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
