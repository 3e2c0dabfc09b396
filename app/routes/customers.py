"""Customers: geocoded points with a value, upserted by external_id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Request, UploadFile

from app.assign import after_customers, before_customers
from app.auth import READ, WRITE_ALL, ReadDep
from app.customer_files import CustomerBatch, batch_from_file, batch_from_json_body
from app.db import SessionDep
from app.geojson import GeoJSONResponse, feature, feature_collection
from app.indexes import IndexDep, IndexRegistry, LayerIndex
from app.repositories import assignments, layers
from app.repositories import customers as repo
from app.routes.params import PROBLEMS, BboxDep, CustomerId, PageDep, geojson, problem
from app.schemas import (
    CountsPublic,
    CustomerTerritoriesPublic,
    FeatureCollectionPublic,
    FeaturePublic,
    OwnershipPublic,
    TerritoryRef,
)

router = APIRouter(prefix="/customers", tags=["customers"], responses=PROBLEMS, dependencies=[READ])

# What batch_from_json_body reads: at least one customer, each with an external_id and a
# longitude and latitude (several spellings each, any case: hence no names required here).
_CUSTOMERS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "minItems": 1, "items": {"type": "object", "minProperties": 3}},
        {
            "type": "object",
            "required": ["type", "features"],
            "properties": {
                "type": {"const": "FeatureCollection"},
                "features": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "geometry"],
                        "properties": {"type": {"const": "Feature"}},
                    },
                },
            },
        },
    ]
}

CustomersBody = Annotated[
    list[dict[str, Any]] | dict[str, Any],
    Body(
        json_schema_extra=_CUSTOMERS_SCHEMA,
        description=(
            "A JSON array of customers, or a GeoJSON FeatureCollection of Points. "
            "Each has external_id (unique; re-sending updates), lon/lat, optional name and value; "
            "any other key is kept as an attribute."
        ),
        openapi_examples={
            "array": {
                "summary": "JSON array",
                "value": [
                    {
                        "external_id": "acme-1",
                        "name": "Acme",
                        "lon": -122.42,
                        "lat": 37.77,
                        "value": 1200,
                    },
                ],
            },
            "geojson": {
                "summary": "GeoJSON FeatureCollection",
                "value": {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "geometry": {"type": "Point", "coordinates": [-73.99, 40.73]},
                            "properties": {"external_id": "acme-2", "value": 800, "segment": "SMB"},
                        }
                    ],
                },
            },
        },
    ),
]


def customer_feature(row: dict[str, Any]) -> dict[str, Any]:
    """A customer row as a Feature; attributes flattened under the fixed fields."""
    props: dict[str, Any] = dict(row["attributes"] or {})
    props.update(
        external_id=row["external_id"],
        name=row["name"],
        value=float(row["value"]),
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
    )
    return feature(row["id"], row["geometry"], props)


@router.post("", response_model=CountsPublic, dependencies=[WRITE_ALL])
def upsert_customers(body: CustomersBody, session: SessionDep, registry: IndexDep) -> CountsPublic:
    """Insert or update customers by external_id, all or nothing."""
    batch = batch_from_json_body(body)
    return _store(session, registry, batch)


@router.post(
    "/import",
    response_model=CountsPublic,
    responses={
        **problem(400, "Malformed multipart body"),
        **problem(415, "Not a format the import reads"),
    },
    dependencies=[WRITE_ALL],
)
def import_customers(
    file: Annotated[
        UploadFile,
        File(description="CSV (lon/lat, longitude/latitude or x/y columns), GeoJSON or GeoPackage"),
    ],
    session: SessionDep,
    registry: IndexDep,
) -> CountsPublic:
    """Import a file of customers, all or nothing: any bad row rejects the whole file."""
    batch = batch_from_file(file.filename or "", file.file.read(), file.content_type)
    return _store(session, registry, batch)


def _store(session: SessionDep, registry: IndexRegistry, batch: CustomerBatch) -> CountsPublic:
    """Upsert the batch and assign its customers in every layer kept assigned; one commit."""
    held = before_customers(session)
    done = repo.upsert(session, batch=batch)
    after_customers(session, held=held, customer_ids=done.ids, registry=registry)
    session.commit()
    return CountsPublic(inserted=done.inserted, updated=done.updated, total=repo.count(session))


@router.get("", response_class=GeoJSONResponse, responses=geojson(FeatureCollectionPublic))
def list_customers(
    request: Request, session: SessionDep, bbox: BboxDep, page: PageDep
) -> GeoJSONResponse:
    """Customers as a paged FeatureCollection."""
    rows, matched = repo.list_features(session, bbox=bbox, limit=page.limit, offset=page.offset)
    features = [customer_feature(r) for r in rows]
    return GeoJSONResponse(
        feature_collection(request, features, offset=page.offset, limit=page.limit, matched=matched)
    )


@router.get("/{customer_id}", response_class=GeoJSONResponse, responses=geojson(FeaturePublic))
def get_customer(customer_id: CustomerId, session: SessionDep) -> GeoJSONResponse:
    """One customer as a Feature."""
    return GeoJSONResponse(customer_feature(repo.get_feature(session, customer_id=customer_id)))


@router.get("/{customer_id}/territories", response_model=CustomerTerritoriesPublic)
def customer_territories(
    customer_id: CustomerId, session: SessionDep, registry: IndexDep, principal: ReadDep
) -> CustomerTerritoriesPublic:
    """The customer's owning territory in every layer the key sees, with the deciding rule."""
    external_id, lon, lat = repo.location(session, customer_id=customer_id)
    pins = assignments.pins_of(session, customer_id=customer_id)
    found = [
        _ownership(registry.get(layer.name), pins.get(layer.id), lon, lat)
        for layer in layers.all_layers(session)
        if principal.sees(layer.name)
    ]
    return CustomerTerritoriesPublic(
        customer_id=customer_id, external_id=external_id, point=[lon, lat], layers=found
    )


def _ownership(entry: LayerIndex, pinned_to: int | None, lon: float, lat: float) -> OwnershipPublic:
    """Owner of a point in one layer: its pin if it has one, else the engine's answer."""
    if pinned_to is not None:
        return OwnershipPublic(
            layer=entry.layer, territory=TerritoryRef(**entry.describe(pinned_to)), rule="pinned"
        )
    owners = entry.index.owners([lon], [lat])
    owner = int(owners.owner[0])
    if owner < 0:
        return OwnershipPublic(layer=entry.layer, territory=None, rule=None)
    ref = TerritoryRef(**entry.describe(owner))
    return OwnershipPublic(layer=entry.layer, territory=ref, rule=owners.rules()[0])
