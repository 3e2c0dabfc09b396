"""Layer health: slivers, gaps, non-contiguous territories, holes and invalid shapes."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import shapely
from fastapi import APIRouter, Query

from app.auth import READ
from app.db import SessionDep
from app.errors import InputError
from app.geojson import GeoJSONResponse, feature
from app.repositories import layers
from app.repositories.validate import territory_shapes
from app.routes.params import PROBLEMS, geojson
from app.schemas import LayerHealthPublic
from spatial.health import DEFAULT_GAP_WIDTH_M, KINDS, Problem, check_layer, summary

router = APIRouter(tags=["analysis"], responses=PROBLEMS, dependencies=[READ])

GapWidthQuery = Annotated[
    float,
    Query(
        gt=0,
        # GEOS stops flagging gaps about as wide as the territories themselves: past ~10 km,
        # a county-sized layer would report fewer gaps, not more.
        le=10_000,
        description="Report gaps between territories narrower than this, in metres",
    ),
]
KindsQuery = Annotated[
    list[str] | None,
    Query(
        description=f"Kinds to check (repeat the parameter or separate by commas): {list(KINDS)}; "
        "all when not given",
        examples=["gap,hole"],
    ),
]


def _kinds(raw: list[str] | None) -> list[str]:
    """The kinds asked for, in the engine's order; InputError naming an unknown one."""
    if not raw:
        return list(KINDS)
    asked = {k.strip() for item in raw for k in item.split(",") if k.strip()}
    unknown = sorted(asked - set(KINDS))
    if unknown:
        raise InputError(f"unknown kind '{unknown[0]}'; use any of {list(KINDS)}", field="kinds")
    return [k for k in KINDS if k in asked]


def _feature(fid: int, problem: Problem, names: dict[int, str]) -> dict[str, Any]:
    geometry = None if problem.geometry is None else shapely.to_geojson(problem.geometry)
    properties: dict[str, Any] = {
        "kind": problem.kind,
        "reason": problem.reason,
        "territory_ids": list(problem.territories),
        "territory_names": [names[t] for t in problem.territories],
        **problem.measures,
    }
    return feature(fid, geometry, properties)


@router.get(
    "/layers/{layer}/validate",
    response_class=GeoJSONResponse,
    responses=geojson(LayerHealthPublic),
)
def validate_layer(
    layer: str,
    session: SessionDep,
    gap_width_m: GapWidthQuery = DEFAULT_GAP_WIDTH_M,
    kinds: KindsQuery = None,
) -> GeoJSONResponse:
    """The layer's problems (gaps, non-contiguous, holes, invalid, empty, unmatched edges)."""
    target = layers.get_by_name(session, name=layer)
    wanted = _kinds(kinds)
    found = territory_shapes(session, layer_id=target.id)
    session.rollback()  # a read only: end it before the engine works, without the database
    problems = check_layer(
        found["ids"], found["names"], found["geoms"], gap_width_m=gap_width_m, kinds=wanted
    )
    names = dict(zip(np.asarray(found["ids"]).tolist(), found["names"], strict=True))
    features = [_feature(i, p, names) for i, p in enumerate(problems, start=1)]
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "layer": layer,
            "gap_width_m": gap_width_m,
            "kinds": wanted,
            "summary": summary(problems, wanted),
            "numberReturned": len(features),
            "features": features,
        }
    )
