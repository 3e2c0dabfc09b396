"""Overlaps (channel conflicts) between a layer's territories, as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.db import SessionDep
from app.geojson import GeoJSONResponse
from app.indexes import IndexDep
from app.repositories import layers
from app.repositories import overlaps as repo
from app.routes.params import PROBLEMS, TerritoryId, geojson
from app.schemas import OverlapCollectionPublic
from spatial.overlap import DEFAULT_MIN_AREA_KM2, Overlaps, find_overlaps

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
    entry = registry.get(layer)  # the layer's territories in memory, as look-ups use them
    held = entry.index.territories
    found = find_overlaps(
        held.ids, held.geoms, min_area_km2=min_area_km2, areas_km2=held.area_m2 / 1e6
    )
    return GeoJSONResponse(
        collection(
            session,
            layer_id=entry.layer_id,
            found=found,
            min_area_km2=min_area_km2,
            details=details,
        )
    )


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
    found = find_overlaps(
        near["ids"],
        shapely.from_wkb(near["wkb"]),
        min_area_km2=min_area_km2,
        areas_km2=near["area_m2"] / 1e6,
        among=[0],  # the territory itself comes first
    )
    return collection(
        session, layer_id=layer_id, found=found, min_area_km2=min_area_km2, details=details
    )


def collection(
    session: Session, *, layer_id: int, found: Overlaps, min_area_km2: float, details: bool
) -> dict[str, Any]:
    """The overlaps as a FeatureCollection, with both territories and the contested customers."""
    pairs = found.ids.tolist()
    refs = repo.refs(session, layer_id=layer_id, ids=np.unique(found.ids).tolist())
    contested = repo.contested(session, first=[a for a, _ in pairs], second=[b for _, b in pairs])
    geometries = _geojson(found.geoms)
    features = []
    for k, (a, b) in enumerate(pairs):
        if a not in refs or b not in refs:
            continue  # deleted since the layer's index was read
        count, value, customer_ids = contested[k]
        sides = refs[a], refs[b]
        properties = {
            "a": sides[0],
            "b": sides[1],
            "area_km2": round(float(found.area_km2[k]), 6),
            "percent_a": round(float(found.percent[k, 0]), 4),
            "percent_b": round(float(found.percent[k, 1]), 4),
            "severity": "conflict" if sides[0]["exclusive"] or sides[1]["exclusive"] else "shared",
            "contested": {"count": count, "value": value}
            | ({"customer_ids": customer_ids} if details else {}),
        }
        features.append(
            {
                "type": "Feature",
                "id": f"{a}-{b}",
                "geometry": orjson.Fragment(geometries[k]),
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


def _geojson(geoms: np.ndarray) -> list[str]:
    """RFC 7946 GeoJSON text of each overlap: exteriors counter-clockwise, 7 decimals."""
    if not geoms.size:
        return []
    oriented = shapely.orient_polygons(geoms, exterior_cw=False)
    rounded = shapely.transform(oriented, lambda xy: np.round(xy, GEOJSON_DIGITS))
    return list(shapely.to_geojson(rounded))
