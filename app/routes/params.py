"""Query parameters shared by the routes, as ``Annotated`` dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query
from pydantic import BaseModel

from app.geojson import parse_bbox
from app.schemas import ProblemPublic

MAX_LIMIT = 10_000


def _bbox(
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat in degrees (WGS 84)",
            examples=["-124.5,32.5,-114.1,42.0"],
        ),
    ] = None,
) -> tuple[float, float, float, float] | None:
    return parse_bbox(bbox)


@dataclass(frozen=True)
class Page:
    """Offset paging: which slice of a collection to return."""

    limit: int
    offset: int


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Features per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Features to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL bigints: larger numbers can name nothing
TerritoryId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Territory id")]
CustomerId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Customer id")]
BboxDep = Annotated[tuple[float, float, float, float] | None, Depends(_bbox)]
PageDep = Annotated[Page, Depends(_page)]
RepairQuery = Annotated[
    bool, Query(description="Repair an invalid polygon with make_valid instead of rejecting it")
]


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ProblemPublic.model_json_schema()}},
    }


PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: _problem("No API key, or one that is not valid (unknown, revoked, mistyped)"),
    403: _problem("The API key's role does not allow this"),
    404: _problem("Unknown layer, territory or customer"),
    413: _problem("Request body too large"),
    422: _problem("Invalid input: the problem names the field, row or coordinate"),
    503: _problem("Database unavailable; retry after the Retry-After delay"),
}


def geojson(model: type[BaseModel], code: int = 200) -> dict[int | str, Any]:
    """OpenAPI ``responses`` documenting a GeoJSON success with ``model``'s schema."""
    return {code: {"description": "GeoJSON (RFC 7946)", "model": model}}


def problem(code: int, description: str) -> dict[int | str, Any]:
    """OpenAPI ``responses`` of a problem one operation answers besides the shared PROBLEMS."""
    return {code: _problem(description)}
