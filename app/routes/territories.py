"""Territories of a layer, as GeoJSON Features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import Discriminator, Tag
from sqlalchemy.orm import Session

from app.assign import Before, after_change, before_change
from app.auth import READ, WRITE
from app.db import SessionDep
from app.geojson import GeoJSONResponse, feature, feature_collection
from app.indexes import IndexDep, IndexRegistry
from app.models import Layer
from app.repositories import layers
from app.repositories import territories as repo
from app.routes import overlaps
from app.routes.params import (
    PROBLEMS,
    BboxDep,
    PageDep,
    RepairQuery,
    TerritoryId,
    geojson,
)
from app.schemas import (
    FeatureCollectionPublic,
    FeaturePublic,
    TerritoryCompose,
    TerritoryFeature,
    TerritoryUpdate,
)

router = APIRouter(
    prefix="/layers/{layer}/territories",
    tags=["territories"],
    responses=PROBLEMS,
    dependencies=[READ],
)


def _form(body: Any) -> str:
    return "feature" if isinstance(body, dict) and body.get("type") == "Feature" else "compose"


TerritoryBody = Annotated[
    Annotated[TerritoryFeature, Tag("feature")] | Annotated[TerritoryCompose, Tag("compose")],
    Discriminator(_form),
    Body(
        openapi_examples={
            "feature": {
                "summary": "A drawn polygon (GeoJSON Feature)",
                "value": {
                    "type": "Feature",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [
                            [
                                [-122.6, 37.2],
                                [-121.7, 37.2],
                                [-121.7, 38.0],
                                [-122.6, 38.0],
                                [-122.6, 37.2],
                            ]
                        ],
                    },
                    "properties": {"name": "Bay Area", "owner": "Acme Partners", "priority": 1},
                },
            },
            "composed": {
                "summary": "Composed from counties and states",
                "value": {
                    "name": "Sierra",
                    "counties": ["06003", "06017"],
                    "states": ["NV"],
                    "owner": "Jane Doe",
                    "exclusive": True,
                },
            },
        }
    ),
]


def territory_feature(row: dict[str, Any]) -> dict[str, Any]:
    """A territory row (with GeoJSON geometry text) as a Feature; user properties flattened."""
    props: dict[str, Any] = dict(row["properties"] or {})
    props.update(
        name=row["name"],
        layer=row["layer"],
        kind=row["kind"],
        code=row["code"],
        owner=row["owner"],
        priority=row["priority"],
        exclusive=row["exclusive"],
        parts=row["parts"],
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
    )
    return feature(row["id"], row["geometry"], props)


def _commit(
    session: Session,
    registry: IndexRegistry,
    layer: Layer,
    *,
    territory_id: int | None,
    before: Before | None,
) -> None:
    """The request's one commit, with the customers the change affects re-assigned.

    This worker's next index of the layer is made here (only the root cells the change
    touches), re-assigns those customers and replaces the one held at the commit; look-ups
    go on from the one held until then. Other workers hear of the change by NOTIFY.
    """
    layers.touch(session, layer=layer)  # first: the version the staged index carries
    entry = registry.stage(session, layer)
    after_change(session, layer=layer, territory_id=territory_id, before=before, index=entry.index)
    session.commit()
    registry.install(entry)


def _edit(
    session: Session,
    registry: IndexRegistry,
    layer: str,
    territory_id: int,
    change: Callable[..., None],
    *,
    dry_run: bool = False,
) -> GeoJSONResponse:
    """Apply ``change`` (repo.replace or repo.patch) to one territory, commit, answer it."""
    target = layers.get_by_name(session, name=layer, for_change=True)
    if dry_run:
        change(session=session, layer_id=target.id, territory_id=territory_id)
        return overlaps.preview(session, layer_id=target.id, territory_id=territory_id)
    old = before_change(session, layer=target, territory_id=territory_id)
    change(session=session, layer_id=target.id, territory_id=territory_id)
    _commit(session, registry, target, territory_id=territory_id, before=old)
    return _respond(session, target.id, territory_id)


def _respond(
    session: SessionDep, layer_id: int, territory_id: int, code: int = 200
) -> GeoJSONResponse:
    row = repo.get_feature(session, layer_id=layer_id, territory_id=territory_id)
    return GeoJSONResponse(territory_feature(row), status_code=code)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_class=GeoJSONResponse,
    responses=overlaps.with_dry_run(FeaturePublic, 201),
    dependencies=[WRITE],
)
def create_territory(
    *,
    layer: str,
    body: TerritoryBody,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    repair: RepairQuery = False,
    dry_run: overlaps.DryRunQuery = False,
) -> GeoJSONResponse:
    """Create a territory from a GeoJSON Feature, or composed from counties and/or states."""
    target = layers.get_by_name(session, name=layer, for_change=True)
    draft = body.to_draft(repair=repair)
    territory_id = repo.create(session, layer_id=target.id, draft=draft)
    if dry_run:
        return overlaps.preview(session, layer_id=target.id, territory_id=territory_id)
    _commit(session, registry, target, territory_id=territory_id, before=None)
    out = _respond(session, target.id, territory_id, status.HTTP_201_CREATED)
    out.headers["Location"] = str(
        request.url_for("get_territory", layer=layer, territory_id=territory_id)
    )
    return out


@router.get("", response_class=GeoJSONResponse, responses=geojson(FeatureCollectionPublic))
def list_territories(
    layer: str, request: Request, session: SessionDep, bbox: BboxDep, page: PageDep
) -> GeoJSONResponse:
    """The layer's territories as a paged FeatureCollection (``next`` link, counts)."""
    target = layers.get_by_name(session, name=layer)
    rows, matched = repo.list_features(
        session, layer_id=target.id, bbox=bbox, limit=page.limit, offset=page.offset
    )
    features = [territory_feature(r) for r in rows]
    return GeoJSONResponse(
        feature_collection(request, features, offset=page.offset, limit=page.limit, matched=matched)
    )


@router.get("/{territory_id}", response_class=GeoJSONResponse, responses=geojson(FeaturePublic))
def get_territory(layer: str, territory_id: TerritoryId, session: SessionDep) -> GeoJSONResponse:
    """One territory as a Feature."""
    target = layers.get_by_name(session, name=layer)
    return _respond(session, target.id, territory_id)


@router.put(
    "/{territory_id}",
    response_class=GeoJSONResponse,
    responses=overlaps.with_dry_run(FeaturePublic),
    dependencies=[WRITE],
)
def replace_territory(
    *,
    layer: str,
    territory_id: TerritoryId,
    body: TerritoryBody,
    session: SessionDep,
    registry: IndexDep,
    repair: RepairQuery = False,
    dry_run: overlaps.DryRunQuery = False,
) -> GeoJSONResponse:
    """Replace a territory whole (fields not given take their defaults)."""
    draft = body.to_draft(repair=repair)
    return _edit(
        session,
        registry,
        layer,
        territory_id,
        lambda **kw: repo.replace(**kw, draft=draft),
        dry_run=dry_run,
    )


@router.patch(
    "/{territory_id}",
    response_class=GeoJSONResponse,
    responses=overlaps.with_dry_run(FeaturePublic),
    dependencies=[WRITE],
)
def patch_territory(
    *,
    layer: str,
    territory_id: TerritoryId,
    body: TerritoryUpdate,
    session: SessionDep,
    registry: IndexDep,
    repair: RepairQuery = False,
    dry_run: overlaps.DryRunQuery = False,
) -> GeoJSONResponse:
    """Change some fields of a territory; a geometry or counties/states replace its shape."""
    draft = body.to_draft(repair=repair)
    return _edit(
        session,
        registry,
        layer,
        territory_id,
        lambda **kw: repo.patch(**kw, draft=draft),
        dry_run=dry_run,
    )


@router.delete("/{territory_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WRITE])
def delete_territory(
    layer: str, territory_id: TerritoryId, session: SessionDep, registry: IndexDep
) -> Response:
    """Delete a territory."""
    target = layers.get_by_name(session, name=layer, for_change=True)
    old = before_change(session, layer=target, territory_id=territory_id)
    repo.remove(session, layer_id=target.id, territory_id=territory_id)
    _commit(session, registry, target, territory_id=None, before=old)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
