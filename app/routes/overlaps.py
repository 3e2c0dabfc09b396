"""Overlaps (channel conflicts) between a layer's territories, as GeoJSON."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.db import SessionDep
from app.geojson import GeoJSONResponse
from app.indexes import IndexDep, IndexRegistry
from app.repositories import assignments, layers
from app.repositories import overlaps as repo
from app.routes.params import PROBLEMS, TerritoryId, geojson
from app.schemas import OverlapCollectionPublic
from spatial.overlap import DEFAULT_MIN_AREA_KM2, Overlaps, contested_points, find_overlaps

router = APIRouter(tags=["analysis"], responses=PROBLEMS)

GEOJSON_DIGITS = 7  # decimal places of degrees (about 1 cm), as the territories' GeoJSON
MinAreaQuery = Annotated[
    float,
    Query(ge=0, le=1e9, description="Smallest overlap reported, km² (smaller: digitising noise)"),
]
DetailsQuery = Annotated[bool, Query(description="List the contested customers' ids")]
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
    layer: str,
    session: SessionDep,
    registry: IndexDep,
    min_area_km2: MinAreaQuery = DEFAULT_MIN_AREA_KM2,
    details: DetailsQuery = False,
) -> GeoJSONResponse:
    """Every pair of the layer's territories whose interiors overlap, the overlap as geometry."""
    layer_id, ids, geoms, area_m2 = _territories(session, registry, layer)
    found = find_overlaps(ids, geoms, min_area_km2=min_area_km2, areas_km2=area_m2 / 1e6)
    return GeoJSONResponse(
        collection(
            session,
            layer_id=layer_id,
            found=found,
            geoms=geoms,
            min_area_km2=min_area_km2,
            details=details,
        )
    )


def _territories(
    session: Session, registry: IndexRegistry, layer: str
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Layer id, territory ids, geometries and areas (m²): from the held index if there is one.

    Without one, read them (0.2 s for 5,000 territories) rather than build the look-up index
    (seconds, or far more for a layer of heavily overlapping territories) only to read them.
    """
    target = layers.get_by_name(session, name=layer)
    entry = registry.held(layer)
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
    return collection(
        session,
        layer_id=layer_id,
        found=found,
        geoms=geoms,
        min_area_km2=min_area_km2,
        details=details,
    )


def collection(
    session: Session,
    *,
    layer_id: int,
    found: Overlaps,
    geoms: np.ndarray,
    min_area_km2: float,
    details: bool,
) -> dict[str, Any]:
    """The overlaps as a FeatureCollection, with both territories and the contested customers.

    ``geoms`` are the territories ``found`` indexes into (for the exact customer tests).
    """
    pairs = found.ids.tolist()
    refs = repo.refs(session, layer_id=layer_id, ids=np.unique(found.ids).tolist())
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
