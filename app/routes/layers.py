"""Layers: one territory plan each."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.auth import ADMIN, READ, ReadDep
from app.db import SessionDep
from app.indexes import IndexDep
from app.repositories import layers as repo
from app.routes.params import PROBLEMS, problem
from app.schemas import LayerCreate, LayerList, LayerPublic

router = APIRouter(prefix="/layers", tags=["layers"], responses=PROBLEMS, dependencies=[READ])


def _public(request: Request, summary: dict[str, Any]) -> LayerPublic:
    layer = summary["layer"]
    base = str(request.url_for("get_layer", layer=layer.name))
    return LayerPublic(
        name=layer.name,
        title=layer.title,
        description=layer.description,
        territory_count=summary["territory_count"],
        bbox=summary["bbox"],
        created_at=layer.created_at,
        updated_at=layer.updated_at,
        links=[
            {"rel": "self", "href": base},
            {"rel": "items", "href": f"{base}/territories", "type": "application/geo+json"},
        ],
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=LayerPublic,
    responses=problem(409, "A layer of that name exists"),
    dependencies=[ADMIN],
)
def create_layer(
    body: LayerCreate, request: Request, session: SessionDep, response: Response
) -> LayerPublic:
    """Create a layer."""
    repo.create(session, name=body.name, title=body.title, description=body.description)
    session.commit()
    out = _public(request, repo.summaries(session, name=body.name)[0])
    response.headers["Location"] = out.links[0]["href"]
    return out


@router.get("", response_model=LayerList)
def list_layers(request: Request, session: SessionDep, principal: ReadDep) -> LayerList:
    """Every layer the key sees, with its territory count and extent."""
    summaries = [s for s in repo.summaries(session) if principal.sees(s["layer"].name)]
    return LayerList(layers=[_public(request, s) for s in summaries])


@router.get("/{layer}", response_model=LayerPublic)
def get_layer(layer: str, request: Request, session: SessionDep) -> LayerPublic:
    """One layer."""
    return _public(request, repo.summaries(session, name=layer)[0])


@router.delete("/{layer}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[ADMIN])
def delete_layer(layer: str, session: SessionDep, registry: IndexDep) -> Response:
    """Delete a layer with its territories and assignments."""
    repo.remove(session, name=layer)
    session.commit()
    registry.forget(layer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
