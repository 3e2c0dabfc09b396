"""Territories of a layer, as GeoJSON Features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import Discriminator, Tag
from sqlalchemy.orm import Session

from app.auth import READ, WRITE
from app.db import SessionDep
from app.edits import Edit, EditQueue, EditsDep
from app.geojson import GeoJSONResponse, feature, feature_collection
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


def _edit(
    session: Session,
    edits: EditQueue,
    layer: str,
    territory_id: int,
    change: Callable[..., None],
    *,
    dry_run: bool = False,
) -> GeoJSONResponse:
    """Apply ``change`` (repo.replace or repo.patch) to one territory, commit, answer it."""
    if dry_run:
        target = layers.get_by_name(session, name=layer, for_change=True)
        change(session=session, layer_id=target.id, territory_id=territory_id)
        return overlaps.preview(session, layer_id=target.id, territory_id=territory_id)

    def apply(batch: Session, target: Layer) -> int:
        change(session=batch, layer_id=target.id, territory_id=territory_id)
        return territory_id

    row = edits.run(layer, Edit(apply, territory_id))
    assert row is not None
    return GeoJSONResponse(territory_feature(row))


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
    edits: EditsDep,
    repair: RepairQuery = False,
    dry_run: overlaps.DryRunQuery = False,
) -> GeoJSONResponse:
    """Create a territory from a GeoJSON Feature, or composed from counties and/or states."""
    draft = body.to_draft(repair=repair)
    if dry_run:
        target = layers.get_by_name(session, name=layer, for_change=True)
        territory_id = repo.create(session, layer_id=target.id, draft=draft)
        return overlaps.preview(session, layer_id=target.id, territory_id=territory_id)

    def apply(batch: Session, target: Layer) -> int:
        return repo.create(batch, layer_id=target.id, draft=draft)

    row = edits.run(layer, Edit(apply, None))
    assert row is not None
    out = GeoJSONResponse(territory_feature(row), status_code=status.HTTP_201_CREATED)
    url = request.url_for("get_territory", layer=layer, territory_id=row["id"])
    out.headers["Location"] = str(url)
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
    edits: EditsDep,
    repair: RepairQuery = False,
    dry_run: overlaps.DryRunQuery = False,
) -> GeoJSONResponse:
    """Replace a territory whole (fields not given take their defaults)."""
    draft = body.to_draft(repair=repair)
    return _edit(
        session,
        edits,
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
    edits: EditsDep,
    repair: RepairQuery = False,
    dry_run: overlaps.DryRunQuery = False,
) -> GeoJSONResponse:
    """Change some fields of a territory; a geometry or counties/states replace its shape."""
    draft = body.to_draft(repair=repair)
    return _edit(
        session,
        edits,
        layer,
        territory_id,
        lambda **kw: repo.patch(**kw, draft=draft),
        dry_run=dry_run,
    )


@router.delete("/{territory_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WRITE])
def delete_territory(layer: str, territory_id: TerritoryId, edits: EditsDep) -> Response:
    """Delete a territory."""

    def apply(batch: Session, target: Layer) -> None:
        repo.remove(batch, layer_id=target.id, territory_id=territory_id)

    edits.run(layer, Edit(apply, territory_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
