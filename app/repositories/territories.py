"""SQL of the territory aggregate (and its composition from reference boundaries)."""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import ColumnElement, Select, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from app.boundaries import ABSENT_COUNTIES
from app.errors import InputError, NotFoundError
from app.models import Boundary, Layer, Territory
from app.schemas import TerritoryDraft

GEOJSON_DIGITS = 7  # decimal places of degrees: 1e-7 deg is about 1 cm, below the source precision
_DEFAULTS: dict[str, Any] = {"owner": None, "priority": 0, "exclusive": False, "properties": {}}


def _feature_columns() -> list[Any]:
    return [
        Territory.id,
        Territory.name,
        Territory.kind,
        Territory.code,
        Territory.owner,
        Territory.priority,
        Territory.exclusive,
        Territory.properties,
        Territory.parts,
        Territory.created_at,
        Territory.updated_at,
        Layer.name.label("layer"),
        func.ST_AsGeoJSON(Territory.geom, GEOJSON_DIGITS).label("geometry"),
    ]


def _bbox_filter(bbox: tuple[float, float, float, float]) -> ColumnElement[bool]:
    envelope = func.ST_MakeEnvelope(*bbox, 4326)
    return func.ST_Intersects(Territory.geom, envelope)


def _select_features(layer_id: int, bbox: tuple[float, float, float, float] | None) -> Select[Any]:
    stmt = (
        select(*_feature_columns())
        .join(Layer, Layer.id == Territory.layer_id)
        .where(Territory.layer_id == layer_id)
    )
    return stmt.where(_bbox_filter(bbox)) if bbox else stmt


def list_features(
    session: Session,
    *,
    layer_id: int,
    bbox: tuple[float, float, float, float] | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the layer's territories (GeoJSON geometry text) and the number matched."""
    stmt = _select_features(layer_id, bbox).order_by(Territory.id).limit(limit).offset(offset)
    rows = [dict(r._mapping) for r in session.execute(stmt)]
    count = select(func.count()).select_from(Territory).where(Territory.layer_id == layer_id)
    if bbox:
        count = count.where(_bbox_filter(bbox))
    return rows, int(session.scalar(count) or 0)


def _not_found(territory_id: int) -> NotFoundError:
    return NotFoundError(f"territory {territory_id} is not in this layer", field="id")


def get_feature(session: Session, *, layer_id: int, territory_id: int) -> dict[str, Any]:
    """One territory (GeoJSON geometry text); NotFoundError if it is not in the layer."""
    stmt = _select_features(layer_id, None).where(Territory.id == territory_id)
    row = session.execute(stmt).first()
    if row is None:
        raise _not_found(territory_id)
    return dict(row._mapping)


def _resolve_states(session: Session, codes: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    wanted = [c.strip().upper() for c in codes]
    rows = session.execute(
        select(Boundary.fips, Boundary.state_code).where(
            Boundary.level == "state",
            (Boundary.fips.in_(wanted)) | (Boundary.state_code.in_(wanted)),
        )
    ).all()
    by_code = {r.fips: r.fips for r in rows} | {r.state_code: r.fips for r in rows}
    errors = [
        {"field": f"states[{i}]", "message": f"unknown state '{code}' (use 'CA' or FIPS '06')"}
        for i, code in enumerate(wanted)
        if code not in by_code
    ]
    return sorted({by_code[c] for c in wanted if c in by_code}), errors


def _resolve_counties(session: Session, codes: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    wanted = [c.strip() for c in codes]
    known = set(
        session.scalars(
            select(Boundary.fips).where(Boundary.level == "county", Boundary.fips.in_(wanted))
        )
    )
    errors = [
        {
            "field": f"counties[{i}]",
            "message": ABSENT_COUNTIES.get(code)
            or f"unknown county FIPS '{code}' (5 digits, e.g. '06001')",
        }
        for i, code in enumerate(wanted)
        if code not in known
    ]
    return sorted(known), errors


def resolve_parts(session: Session, *, counties: list[str], states: list[str]) -> dict[str, Any]:
    """Normalised parts (county and state FIPS); InputError naming every unknown code."""
    if session.scalar(select(func.count()).select_from(Boundary)) == 0:
        raise InputError(
            "reference boundaries are not loaded; run `territory boundaries load` first",
            field="counties" if counties else "states",
        )
    county_fips, county_errors = _resolve_counties(session, counties)
    state_fips, state_errors = _resolve_states(session, states)
    errors = county_errors + state_errors
    if errors:
        raise InputError(
            f"{len(errors)} unknown code(s): {errors[0]['message']}",
            field=errors[0]["field"],
            errors=errors,
        )
    return {"counties": county_fips, "states": state_fips}


def _shape_values(session: Session, draft: TerritoryDraft) -> dict[str, Any]:
    """Column values for the territory's shape: drawn geometry, or the union of its parts."""
    if draft.composed:
        parts = resolve_parts(session, counties=draft.counties, states=draft.states)
        fips = parts["counties"] + parts["states"]
        # PostGIS unions the parts where they live; boundaries are valid, so is their union.
        union = (
            select(
                func.ST_ForcePolygonCCW(
                    func.ST_Multi(func.ST_CollectionExtract(func.ST_Union(Boundary.geom), 3))
                )
            )
            .where(Boundary.fips.in_(fips))
            .scalar_subquery()
        )
        return {"geom": union, "parts": parts, "kind": "custom"}
    assert draft.geometry is not None
    geom = func.ST_GeomFromWKB(shapely.to_wkb(draft.geometry), 4326)
    # A reshaped state or county becomes custom but keeps its code: where it came from.
    return {"geom": geom, "parts": None, "kind": "custom"}


def _full_values(session: Session, draft: TerritoryDraft) -> dict[str, Any]:
    """Every column from a whole draft: what it does not give takes its default."""
    values = dict(_DEFAULTS)
    values.update({k: v for k in _DEFAULTS if (v := getattr(draft, k)) is not None})
    values.update(_shape_values(session, draft), name=draft.name)
    return values


def create(session: Session, *, layer_id: int, draft: TerritoryDraft) -> int:
    """Insert a territory from a whole draft; returns its id."""
    values = _full_values(session, draft)
    stmt = insert(Territory).values(**values, layer_id=layer_id).returning(Territory.id)
    return int(session.execute(stmt).scalar_one())


def replace(session: Session, *, layer_id: int, territory_id: int, draft: TerritoryDraft) -> None:
    """PUT: every field takes the draft's value or its default."""
    values = _full_values(session, draft)
    _update(session, layer_id=layer_id, territory_id=territory_id, values=values)


def patch(session: Session, *, layer_id: int, territory_id: int, draft: TerritoryDraft) -> None:
    """PATCH: only the fields the draft provides change."""
    fields = ("name", "owner", "priority", "exclusive", "properties")
    values: dict[str, Any] = {k: getattr(draft, k) for k in fields if k in draft.provided}
    if "properties" in values and values["properties"] is None:
        values["properties"] = {}
    if draft.geometry is not None or draft.composed:
        values.update(_shape_values(session, draft))
    _update(session, layer_id=layer_id, territory_id=territory_id, values=values)


def _update(session: Session, *, layer_id: int, territory_id: int, values: dict[str, Any]) -> None:
    stmt = (
        update(Territory)
        .where(Territory.id == territory_id, Territory.layer_id == layer_id)
        .values(**values, updated_at=func.now())
        .returning(literal(1))
    )
    if session.execute(stmt).first() is None:
        raise _not_found(territory_id)


def remove(session: Session, *, layer_id: int, territory_id: int) -> None:
    """Delete a territory (its assignments go with it)."""
    stmt = (
        delete(Territory)
        .where(Territory.id == territory_id, Territory.layer_id == layer_id)
        .returning(Territory.id)
    )
    if session.execute(stmt).first() is None:
        raise _not_found(territory_id)


def ref(session: Session, *, layer_id: int, territory_id: int) -> dict[str, Any]:
    """Id, name and owner of a territory of the layer; NotFoundError if it is not there."""
    row = session.execute(
        select(Territory.id, Territory.name, Territory.owner).where(
            Territory.id == territory_id, Territory.layer_id == layer_id
        )
    ).first()
    if row is None:
        raise _not_found(territory_id)
    return dict(row._mapping)
