"""Overlaps (channel conflicts) between a layer's territories, as GeoJSON."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Annotated, Any, Literal, Union

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.auth import READ
from app.cache import LruCache
from app.db import SessionDep
from app.geojson import GeoJSONResponse, page_links
from app.indexes import IndexDep, IndexRegistry
from app.models import Layer
from app.repositories import assignments, layers
from app.repositories import overlaps as repo
from app.routes.params import MAX_LIMIT, PROBLEMS, TerritoryId, geojson
from app.schemas import OverlapCollectionPublic
from spatial.overlap import DEFAULT_MIN_AREA_KM2, Overlaps, contested_points, find_overlaps

router = APIRouter(tags=["analysis"], responses=PROBLEMS, dependencies=[READ])

GEOJSON_DIGITS = 7  # decimal places of degrees (about 1 cm), as the territories' GeoJSON
MinAreaQuery = Annotated[
    float,
    Query(ge=0, le=1e9, description="Smallest overlap reported, km² (smaller: digitising noise)"),
]
DetailsQuery = Annotated[bool, Query(description="List the contested customers' ids")]
SeverityQuery = Annotated[
    Literal["conflict", "shared"] | None,
    Query(description="Only conflicts (either territory exclusive) or only shared overlaps"),
]


def with_dry_run(model: type[BaseModel], code: int = 200) -> dict[int | str, Any]:
    """OpenAPI ``responses`` of a territory write that takes ``dry_run``: its own answer, or
    (dry run, status 200) the overlaps the change would make."""
    preview = "with dry_run=true: the overlaps the change would make (nothing saved)"
    if code != 200:
        return {
            code: {"description": "GeoJSON (RFC 7946)", "model": model},
            200: {"description": f"GeoJSON, {preview}", "model": OverlapCollectionPublic},
        }
    either = Union[model, OverlapCollectionPublic]  # type: ignore[valid-type]  # noqa: UP007 (a value)
    return {200: {"description": f"GeoJSON (RFC 7946); {preview}", "model": either}}


LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="Overlaps per page (largest first is not implied)")
]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000, description="Overlaps to skip")]
DryRunQuery = Annotated[
    bool,
    Query(
        description="Save nothing: answer the overlaps (FeatureCollection) the change would make"
    ),
]


@router.get(
    "/layers/{layer}/overlaps",
    response_class=GeoJSONResponse,
    responses=geojson(OverlapCollectionPublic),
)
def layer_overlaps(
    *,
    layer: str,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    min_area_km2: MinAreaQuery = DEFAULT_MIN_AREA_KM2,
    details: DetailsQuery = False,
    severity: SeverityQuery = None,
    limit: LimitQuery = 1000,
    offset: OffsetQuery = 0,
) -> GeoJSONResponse:
    """Every pair of the layer's territories whose interiors overlap, the overlap as geometry.

    Paged by (a id, b id), with ``next``/``prev`` links; the pairs are found once per layer
    version and tolerance, so every page of one layer version comes from the same answer.
    """
    target = layers.get_by_name(session, name=layer)
    cache: LruCache = request.app.state.cache
    found, geoms = cache.get_or_make(
        ("overlaps", target.id, target.updated_at, min_area_km2),
        lambda: _find(session, registry, target, min_area_km2),
    )
    refs = repo.refs(session, layer_id=target.id, ids=np.unique(found.ids).tolist())
    kept = np.flatnonzero(_severities(found, refs) == severity) if severity else None
    matched = len(found) if kept is None else kept.size
    page = np.arange(offset, min(offset + limit, matched))
    body = collection(
        session,
        found=_take(found, page if kept is None else kept[page]),
        geoms=geoms,
        refs=refs,
        min_area_km2=min_area_km2,
        details=details,
    )
    body["numberMatched"] = matched
    body["links"] = page_links(request, offset=offset, limit=limit, matched=matched)
    return GeoJSONResponse(body)


def _find(
    session: Session, registry: IndexRegistry, target: Layer, min_area_km2: float
) -> tuple[Overlaps, np.ndarray]:
    """The layer's overlaps and the territory geometries they index into."""
    _, ids, geoms, area_m2 = _territories(session, registry, target)
    return find_overlaps(ids, geoms, min_area_km2=min_area_km2, areas_km2=area_m2 / 1e6), geoms


def _severities(found: Overlaps, refs: dict[int, dict[str, Any]]) -> np.ndarray:
    """Per overlap: 'conflict' when either territory is exclusive, else 'shared'."""
    exclusive = {tid: ref["exclusive"] for tid, ref in refs.items()}
    either = [exclusive.get(a, False) or exclusive.get(b, False) for a, b in found.ids.tolist()]
    return np.where(np.array(either, dtype=bool), "conflict", "shared")


def _take(found: Overlaps, at: np.ndarray) -> Overlaps:
    """The overlaps at positions ``at`` (a page), still indexing the same territories."""
    return Overlaps(**{f.name: getattr(found, f.name)[at] for f in dataclasses.fields(found)})


def _territories(
    session: Session, registry: IndexRegistry, target: Layer
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Layer id, territory ids, geometries and areas (m²): from the held index if there is one.

    Without one, read them (0.2 s for 5,000 territories) rather than build the look-up index
    (seconds, or far more for a layer of heavily overlapping territories) only to read them.
    """
    entry = registry.held(target.name)
    if entry is not None and entry.version >= target.updated_at:  # held and not behind an edit
        held = entry.index.territories
        return entry.layer_id, held.ids, held.geoms, held.area_m2
    found = assignments.engine_input(session, layer_id=target.id)
    return target.id, found["ids"], shapely.from_wkb(found["wkb"]), found["area_m2"]


@router.get(
    "/layers/{layer}/territories/{territory_id}/overlaps",
    response_class=GeoJSONResponse,
    responses=geojson(OverlapCollectionPublic),
)
def territory_overlaps(
    layer: str,
    territory_id: TerritoryId,
    session: SessionDep,
    min_area_km2: MinAreaQuery = DEFAULT_MIN_AREA_KM2,
    details: DetailsQuery = False,
) -> GeoJSONResponse:
    """The overlaps of one territory with the others of its layer."""
    target = layers.get_by_name(session, name=layer)
    return GeoJSONResponse(
        overlaps_of(
            session,
            layer_id=target.id,
            territory_id=territory_id,
            min_area_km2=min_area_km2,
            details=details,
        )
    )


def preview(session: Session, *, layer_id: int, territory_id: int) -> GeoJSONResponse:
    """``dry_run``: the territory's overlaps as the session's uncommitted change made them.

    The change is then rolled back: nothing is saved, no assignment moves, no index changes.
    """
    body = overlaps_of(
        session,
        layer_id=layer_id,
        territory_id=territory_id,
        min_area_km2=DEFAULT_MIN_AREA_KM2,
        details=False,
    )
    session.rollback()
    return GeoJSONResponse(body)


def overlaps_of(
    session: Session, *, layer_id: int, territory_id: int, min_area_km2: float, details: bool
) -> dict[str, Any]:
    """One territory's overlaps, from the database as this session sees it."""
    near = repo.neighbourhood(session, layer_id=layer_id, territory_id=territory_id)
    geoms = shapely.from_wkb(near["wkb"])
    found = find_overlaps(
        near["ids"],
        geoms,
        min_area_km2=min_area_km2,
        areas_km2=near["area_m2"] / 1e6,
        among=[0],  # the territory itself comes first
    )
    refs = repo.refs(session, layer_id=layer_id, ids=np.unique(found.ids).tolist())
    return collection(
        session, found=found, geoms=geoms, refs=refs, min_area_km2=min_area_km2, details=details
    )


def collection(
    session: Session,
    *,
    found: Overlaps,
    geoms: np.ndarray,
    refs: dict[int, dict[str, Any]],
    min_area_km2: float,
    details: bool,
) -> dict[str, Any]:
    """The overlaps as a FeatureCollection, with both territories and the contested customers.

    ``geoms`` are the territories ``found`` indexes into (for the exact customer tests);
    ``refs`` are the territories' id, name, owner and exclusive flag, by id.
    """
    pairs = found.ids.tolist()
    contested = _contested(session, found, geoms, details=details)
    geometries = _geojson(found.geoms)
    features = []
    for k, (a, b) in enumerate(pairs):
        if a not in refs or b not in refs:
            continue  # deleted since the layer's index was read
        sides = refs[a], refs[b]
        properties = {
            "a": sides[0],
            "b": sides[1],
            "area_km2": round(float(found.area_km2[k]), 6),
            "percent_a": round(float(found.percent[k, 0]), 4),
            "percent_b": round(float(found.percent[k, 1]), 4),
            "severity": "conflict" if sides[0]["exclusive"] or sides[1]["exclusive"] else "shared",
            "contested": contested[k],
        }
        features.append(
            {
                "type": "Feature",
                "id": f"{a}-{b}",
                "geometry": geometries[k],
                "properties": properties,
            }
        )
    return {
        "type": "FeatureCollection",
        "numberMatched": len(features),
        "numberReturned": len(features),
        "min_area_km2": min_area_km2,
        "features": features,
    }


def _contested(
    session: Session, found: Overlaps, geoms: np.ndarray, *, details: bool
) -> list[dict[str, Any]]:
    """Per overlap: count, total value (and ids, with ``details``) of the customers inside."""
    if not len(found):
        return []
    bounds = shapely.bounds(found.geoms)
    low, high = bounds[:, :2].min(axis=0), bounds[:, 2:].max(axis=0)
    near = repo.customers_in(session, bbox=(low[0], low[1], high[0], high[1]))
    pair, point = contested_points(found, geoms, near["x"], near["y"])
    count = np.bincount(pair, minlength=len(found))
    value = np.bincount(pair, weights=near["value"][point], minlength=len(found))
    out = [
        {"count": int(n), "value": round(float(v), 2)} for n, v in zip(count, value, strict=True)
    ]
    if details:
        # By pair then point, and points are by id: each pair's ids come out ascending.
        per_pair = np.split(near["ids"][point], np.cumsum(count)[:-1])
        for entry, ids in zip(out, per_pair, strict=True):
            entry["customer_ids"] = ids.tolist()
    return out


def _geojson(geoms: np.ndarray) -> list[orjson.Fragment]:
    """RFC 7946 geometry text of each overlap: exteriors counter-clockwise, 7 decimals.

    Written by orjson straight from NumPy ring arrays (one ragged array of every coordinate):
    GEOS's GeoJSON writer took 2 s for 24,000 overlaps, Python float lists 1.9 s.
    """
    if not geoms.size:
        return []
    oriented = shapely.orient_polygons(geoms, exterior_cw=False)
    kind, coords, offsets = shapely.to_ragged_array(oriented)
    coords = np.round(coords, GEOJSON_DIGITS)
    if kind == shapely.GeometryType.POLYGON:  # no MultiPolygon at all: one part each
        offsets = (*offsets, np.arange(geoms.size + 1))
    ring_at, part_at, geom_at = (o.tolist() for o in offsets)
    rings = [coords[i:j] for i, j in itertools.pairwise(ring_at)]
    parts = [rings[i:j] for i, j in itertools.pairwise(part_at)]
    return [
        orjson.Fragment(
            orjson.dumps(
                {"type": "Polygon", "coordinates": parts[i]}
                if j - i == 1
                else {"type": "MultiPolygon", "coordinates": parts[i:j]},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        )
        for i, j in itertools.pairwise(geom_at)
    ]
