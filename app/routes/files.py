"""Files in and out: territories imported into a layer from a file, a layer exported as one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from app.auth import READ, WRITE
from app.db import SessionDep
from app.errors import InputError
from app.indexes import IndexDep
from app.repositories import layers
from app.routes.params import PROBLEMS, RepairQuery, problem
from app.schemas import ProblemPublic
from app.territory_files import (
    SUPPORTED,
    ExportFormat,
    ExportWhat,
    ImportMode,
    ImportOptions,
    export_layer,
    import_territories,
    read_territories,
)

router = APIRouter(
    prefix="/layers/{layer}", tags=["files"], responses=PROBLEMS, dependencies=[READ]
)


@dataclass(frozen=True)
class Upload:
    """An uploaded file: multipart field ``file``, or the raw request body."""

    filename: str
    content: bytes
    content_type: str | None


async def _upload(
    request: Request,
    filename: Annotated[
        str | None,
        Query(description="Name of a file sent as the raw body (its extension names the format)"),
    ] = None,
) -> Upload:
    media_type = request.headers.get("content-type", "")
    if media_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InputError("send the file in the multipart field 'file'", field="file")
        return Upload(filename or file.filename or "", await file.read(), file.content_type)
    body = await request.body()
    if not body:
        raise InputError(
            "no file: send it as multipart field 'file', or as the body with its Content-Type",
            field="file",
        )
    return Upload(filename or "", body, media_type or None)


UploadDep = Annotated[Upload, Depends(_upload)]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"The file: {SUPPORTED}. Multipart (field 'file') or the raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/geo+json": _BINARY,
            "application/geopackage+sqlite3": _BINARY,
            "application/zip": _BINARY,
            "application/vnd.apache.parquet": _BINARY,
            "application/vnd.google-earth.kml+xml": _BINARY,
            "text/csv": _BINARY,
        },
    }
}


class ImportPublic(BaseModel):
    """What an import did."""

    layer: str
    mode: ImportMode
    imported: int = Field(description="Territories created from the file")
    removed: int = Field(description="Territories the replace mode deleted first")
    territory_ids: list[int] = Field(description="Ids of the new territories, in file order")
    assigned: int | None = Field(
        description="Customers assigned afterwards (the layer is kept assigned); else null"
    )
    seconds: float


_UNSUPPORTED: dict[int | str, dict[str, Any]] = {
    415: {
        "description": "Not a format the import reads",
        "content": {"application/problem+json": {"schema": ProblemPublic.model_json_schema()}},
    }
}


@router.post(
    "/import",
    response_model=ImportPublic,
    responses={**_UNSUPPORTED, **problem(400, "Malformed multipart body")},
    openapi_extra=_UPLOAD_BODY,
    dependencies=[WRITE],
)
def import_file(
    *,
    layer: str,
    upload: UploadDep,
    request: Request,
    session: SessionDep,
    registry: IndexDep,
    mode: Annotated[
        ImportMode,
        Query(description="append: add to the layer; replace: the file's territories only"),
    ] = "append",
    repair: RepairQuery = False,
    crs: Annotated[
        str | None,
        Query(
            description="CRS of a file that declares none (a shapefile without .prj), e.g. "
            "EPSG:5070; a declared CRS is always used",
            examples=["EPSG:5070"],
        ),
    ] = None,
    source_layer: Annotated[
        str | None,
        Query(description="Layer (or .shp name) to read from a file that holds several"),
    ] = None,
) -> ImportPublic:
    """Import territories from a file, all or nothing: every bad feature is listed, none saved.

    GeoJSON, GeoPackage, zipped Shapefile, GeoParquet, KML/KMZ or CSV (WKT column); any
    declared CRS is reprojected to EPSG:4326. Columns name, owner, priority and exclusive (any
    case) are the territory's fields; the others become its properties. A layer kept assigned
    is assigned again in the same transaction.
    """
    layers.get_by_name(session, name=layer)  # 404 before the file is read
    options = ImportOptions(
        repair=repair,
        crs=crs,
        source_layer=source_layer,
        max_unzipped_bytes=request.app.state.settings.api.max_body_bytes,
    )
    drafts = read_territories(upload.filename, upload.content, upload.content_type, options=options)
    result = import_territories(session, layer=layer, drafts=drafts, mode=mode)
    session.commit()
    registry.forget(layer)
    return ImportPublic(
        layer=result.layer,
        mode=mode,
        imported=result.imported,
        removed=result.removed,
        territory_ids=result.territory_ids,
        assigned=result.assigned,
        seconds=result.seconds,
    )


_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, with a Content-Disposition naming it",
        "content": {
            "application/geo+json": {},
            "application/geopackage+sqlite3": {},
            "text/csv": {},
            "application/vnd.apache.parquet": {},
        },
    }
}


@router.get("/export", response_class=Response, responses=_EXPORT_RESPONSES)
def export_file(
    layer: str,
    session: SessionDep,
    format_: Annotated[
        ExportFormat,
        Query(alias="format", description="geojson, gpkg, csv (geometry as WKT) or parquet"),
    ] = "geojson",
    what: Annotated[
        ExportWhat,
        Query(
            description="territories (with customer_count, customer_value, area_km2) or "
            "assignments (a point per customer, with its territory and rule)"
        ),
    ] = "territories",
) -> Response:
    """Export the layer's territories with their stats, or its assignments, as a file."""
    exported = export_layer(session, layer=layer, what=what, fmt=format_)
    return Response(
        exported.content,
        media_type=exported.media_type,
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
    )
