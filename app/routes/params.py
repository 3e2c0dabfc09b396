"""Query parameters shared by the routes, as ``Annotated`` dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query

from app.geojson import parse_bbox

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
