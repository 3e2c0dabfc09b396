"""SQL of the OGC API - Features collections: layers' territories, customers, US boundaries.

Every collection is one table narrowed by a fixed condition (a layer, a boundary level). Pages
are keyset pages (``id > after ORDER BY id``, the primary key's index), so page 1,000 costs what
page 1 does; ``numberMatched`` is one count over the same filters. Identifiers come from the
fixed ``Source`` definitions below, never from the request; every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import NotFoundError

GEOJSON_DIGITS = 7  # decimal places of degrees (about 1 cm)
Bbox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Source:
    """Where one kind of collection's features live (fixed SQL, never request text)."""

    table: str
    scope: str  # condition with bound parameters, e.g. "layer_id = :layer_id"
    id_column: str
    id_type: type  # int or str: how a feature id from a URL is read
    properties: tuple[tuple[str, str], ...]  # (property name, SQL expression)
    filters: tuple[str, ...]  # properties a query may filter on by equality
    temporal: str | None  # column the datetime parameter applies to


TERRITORIES = Source(
    table="territories",
    scope="layer_id = :layer_id",
    id_column="id",
    id_type=int,
    properties=(
        ("name", "name"),
        ("owner", "owner"),
        ("code", "code"),
        ("kind", "kind"),
        ("priority", "priority"),
        ("exclusive", "exclusive"),
        ("area_km2", "round((area_m2 / 1e6)::numeric, 6)::float8"),
        ("updated_at", "updated_at"),
    ),
    filters=("name", "owner", "code", "kind"),
    temporal="updated_at",
)
CUSTOMERS = Source(
    table="customers",
    scope="TRUE",
    id_column="id",
    id_type=int,
    properties=(
        ("external_id", "external_id"),
        ("name", "name"),
        ("value", "value::float8"),
        ("updated_at", "updated_at"),
    ),
    filters=("external_id", "name"),
    temporal="updated_at",
)
BOUNDARIES = Source(
    table="boundaries",
    scope="level = :level",
    id_column="fips",
    id_type=str,
    properties=(("name", "name"), ("fips", "fips"), ("state_code", "state_code")),
    filters=("name", "state_code", "fips"),
    temporal=None,
)


@dataclass(frozen=True)
class ItemQuery:
    """What a page of items is filtered by (validated by the route)."""

    bbox: Bbox | None = None
    after: Any = None  # the last id of the page before (keyset)
    limit: int = 10
    equals: tuple[tuple[str, str], ...] = ()  # (property, value): property in Source.filters
    start: datetime | None = None  # datetime interval, either end open (None)
    end: datetime | None = None


def _where(source: Source, query: ItemQuery, params: dict[str, Any]) -> str:
    """The page's WHERE clause (without the keyset) and its parameters, added to ``params``."""
    clauses = [source.scope]
    if query.bbox is not None:
        clauses.append(_bbox_clause(query.bbox, params))
    columns = dict(source.properties)
    for k, (name, value) in enumerate(query.equals):
        assert name in source.filters  # the route refuses any other
        clauses.append(f"{columns[name]} = :eq{k}")
        params[f"eq{k}"] = value
    if source.temporal and query.start is not None:
        clauses.append(f"{source.temporal} >= :start")
        params["start"] = query.start
    if source.temporal and query.end is not None:
        clauses.append(f"{source.temporal} <= :end")
        params["end"] = query.end
    return " AND ".join(clauses)


def _bbox_clause(bbox: Bbox, params: dict[str, Any]) -> str:
    """``geom`` meets the box (GiST); a box whose west edge is east of its east edge crosses
    the antimeridian (OGC API - Features 1, 7.15.3) and is two boxes."""
    west, south, east, north = bbox
    params.update(west=west, south=south, east=east, north=north)
    if west <= east:
        return "ST_Intersects(geom, ST_MakeEnvelope(:west, :south, :east, :north, 4326))"
    return (
        "(ST_Intersects(geom, ST_MakeEnvelope(:west, :south, 180, :north, 4326)) OR "
        "ST_Intersects(geom, ST_MakeEnvelope(-180, :south, :east, :north, 4326)))"
    )


def _select(source: Source) -> str:
    props = ", ".join(f"{expr} AS {name}" for name, expr in source.properties)
    return (
        f"SELECT {source.id_column} AS fid, ST_AsGeoJSON(geom, {GEOJSON_DIGITS}) AS geometry, "
        f"{props} FROM {source.table}"
    )


def items(
    session: Session, *, source: Source, scope: dict[str, Any], query: ItemQuery
) -> tuple[list[dict[str, Any]], bool]:
    """One page of features (rows: fid, geometry GeoJSON text, properties) and whether more
    follow. ``scope`` holds the source's own parameters (the layer id, the level)."""
    params: dict[str, Any] = {**scope, "limit": query.limit + 1}
    where = _where(source, query, params)
    if query.after is not None:
        where += f" AND {source.id_column} > :after"
        params["after"] = query.after
    sql = f"{_select(source)} WHERE {where} ORDER BY {source.id_column} LIMIT :limit"
    rows = [dict(r._mapping) for r in session.execute(text(sql), params)]
    return rows[: query.limit], len(rows) > query.limit


def matched(session: Session, *, source: Source, scope: dict[str, Any], query: ItemQuery) -> int:
    """How many features the filters match, over every page."""
    params: dict[str, Any] = dict(scope)
    where = _where(source, query, params)
    return int(session.scalar(text(f"SELECT count(*) FROM {source.table} WHERE {where}"), params))


def item(session: Session, *, source: Source, scope: dict[str, Any], fid: Any) -> dict[str, Any]:
    """One feature by id; NotFoundError when the collection has none by that id."""
    sql = f"{_select(source)} WHERE {source.scope} AND {source.id_column} = :fid"
    row = session.execute(text(sql), {**scope, "fid": fid}).first()
    if row is None:
        raise NotFoundError(f"no feature {fid!r} in this collection", field="featureId")
    return dict(row._mapping)


def extent(
    session: Session, *, source: Source, scope: dict[str, Any]
) -> tuple[Bbox | None, tuple[datetime | None, datetime | None]]:
    """The collection's bounding box (degrees) and, if it has one, its time span."""
    if source is CUSTOMERS:
        # A million points: the planner's estimate (from ANALYZE) instead of a full scan.
        box = session.execute(
            text(
                "SELECT ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n "
                "FROM (SELECT ST_EstimatedExtent('public', 'customers', 'geom') AS e) x"
            )
        ).one()
        times = session.execute(
            text("SELECT min(updated_at) AS a, max(updated_at) AS b FROM customers")
        ).one()
    else:
        temporal = source.temporal or "NULL::timestamptz"
        sql = (
            "SELECT ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n, a, b "
            f"FROM (SELECT ST_Extent(geom) AS e, min({temporal}) AS a, max({temporal}) AS b "
            f"FROM {source.table} WHERE {source.scope}) x"
        )
        box = times = session.execute(text(sql), scope).one()
    bbox = None if box.w is None else (float(box.w), float(box.s), float(box.e), float(box.n))
    return bbox, (times.a, times.b)
