"""Territory files in and out: import a layer's territories from a file, export a layer.

Import reads GeoJSON, GeoPackage, a zipped Shapefile, GeoParquet, KML/KMZ and CSV with a WKT
column. Every feature goes through the very checks of ``POST /layers/{layer}/territories``
(``TerritoryFeature.to_draft``) after its coordinates are reprojected to EPSG:4326; every
problem is collected and one ``InputError`` lists them (feature position, name, reason), and
nothing is written. A file that declares no coordinate reference system is refused unless the
caller names one (``crs``); GeoJSON, KML and CSV are WGS 84 longitude/latitude by definition.

Export writes a layer's territories with their stats (customer count and value, area in km²),
or its assignments, as GeoJSON, GeoPackage, CSV (geometry as WKT) or GeoParquet. What export
writes, import reads back as the same territories: the stats and ids are left out again.
"""

from __future__ import annotations

import io
import math
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import orjson
import shapely
from shapely.geometry import mapping
from sqlalchemy.orm import Session

from app.assign import assign_all
from app.customer_files import (
    MAX_ERRORS,
    _Errors,
    _gc_paused,
    _jsonable,
    _parse_json,
    _pick,
    _python_values,
)
from app.errors import InputError, NotFoundError, PayloadTooLargeError, UnsupportedMediaError
from app.indexes import build_index
from app.models import Layer
from app.repositories import assignments, coverage, exports, layers
from app.repositories import territories as territory_repo
from app.schemas import TERRITORY_FIELDS, TerritoryDraft, TerritoryFeature
from spatial.errors import SpatialError

ImportMode = Literal["append", "replace"]
ExportFormat = Literal["geojson", "gpkg", "csv", "parquet"]
ExportWhat = Literal["territories", "assignments"]

# Columns an export adds that are not the territory's own: import leaves them out again.
EXPORT_ONLY = ("territory_id", "customer_count", "customer_value", "area_km2")
# Bookkeeping columns GDAL's LIBKML driver adds to every placemark (the name is "Name").
_KML_COLUMNS = frozenset(
    {"id", "timestamp", "begin", "end", "altitudeMode", "tessellate", "extrude"}
    | {"visibility", "drawOrder", "icon", "snippet"}
)
_WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "wkt_geom")
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_SHOWN = 3  # errors quoted in the message itself
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})

_BY_EXTENSION = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".zip": "zip",
    ".shz": "zip",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".kml": "kml",
    ".kmz": "kml",
    ".csv": "csv",
}
_BY_CONTENT_TYPE = {
    "application/geo+json": "geojson",
    "application/json": "geojson",
    "application/geopackage+sqlite3": "gpkg",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.google-earth.kml+xml": "kml",
    "application/vnd.google-earth.kmz": "kml",
    "text/csv": "csv",
}
_MAGIC = ((b"SQLite format 3\x00", "gpkg"), (b"PK\x03\x04", "zip"), (b"PAR1", "parquet"))
SUPPORTED = (
    "GeoJSON (.geojson, .json), GeoPackage (.gpkg), a zipped Shapefile (.zip), "
    "GeoParquet (.parquet), KML (.kml, .kmz) or CSV with a WKT column (.csv)"
)

_EXPORTS: dict[str, tuple[str, str]] = {  # format -> (media type, file extension)
    "geojson": ("application/geo+json", "geojson"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    """How to read a territory file."""

    repair: bool = False  # make_valid invalid polygons instead of refusing them
    crs: str | None = None  # the CRS of a file that declares none (e.g. "EPSG:5070")
    source_layer: str | None = None  # the layer (or .shp) to read from a file with several
    max_unzipped_bytes: int = 1 << 30  # a zip may hold at most this much (zip bombs)


@dataclass
class _Features:
    """Features as read: GeoJSON geometry (or None) and raw properties, in file order."""

    source: str
    geometries: list[Any] = field(default_factory=list)
    properties: list[dict[str, Any]] = field(default_factory=list)
    tabular: bool = False  # one column per attribute: an empty cell means "absent"
    errors: _Errors = field(default_factory=_Errors)


def read_territories(
    filename: str,
    content: bytes,
    content_type: str | None = None,
    *,
    options: ImportOptions | None = None,
) -> list[TerritoryDraft]:
    """Validated territory drafts from an uploaded file; InputError listing every bad feature."""
    options = options or ImportOptions()
    source = filename or "file"
    kind = detect_format(filename, content, content_type)
    with _gc_paused():
        if kind == "geojson":
            found = _geojson_features(content, source, options)
        else:
            found = _frame_features(_read_frame(kind, content, source, options), source, kind)
        return _drafts(found, options.repair)


def detect_format(filename: str, content: bytes, content_type: str | None = None) -> str:
    """geojson, gpkg, zip, parquet, kml or csv: by magic bytes, then name, then media type."""
    for magic, kind in _MAGIC:
        if content.startswith(magic):
            return kind
    extension = PurePosixPath(filename.replace("\\", "/")).suffix.lower() if filename else ""
    if extension in _BY_EXTENSION:
        return _BY_EXTENSION[extension]
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in _BY_CONTENT_TYPE:
        return _BY_CONTENT_TYPE[media_type]
    head = content[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return "geojson"
    if head.startswith(b"<") and b"<kml" in content[:4096]:
        return "kml"
    what = f"'{extension}' files" if extension else f"{media_type or 'this'} content"
    raise UnsupportedMediaError(
        f"cannot read {what} ({filename or 'no file name'}); send {SUPPORTED}",
        field=filename or "file",
    )


def _drafts(found: _Features, repair: bool) -> list[TerritoryDraft]:
    """Every feature through the territory route's own checks; all errors, or all drafts."""
    if not found.properties:
        raise InputError(f"no territories in {found.source!r}", field=found.source)
    drafts: list[TerritoryDraft] = []
    names: list[str | None] = []
    for position, (geometry, raw) in enumerate(
        zip(found.geometries, found.properties, strict=True)
    ):
        props = _territory_properties(raw, tabular=found.tabular)
        name = props.get("name")
        names.append(name if isinstance(name, str) else None)
        if position in found.errors.bad_rows:
            continue
        feature = TerritoryFeature(type="Feature", geometry=geometry, properties=props)
        try:
            drafts.append(feature.to_draft(repair=repair))
        except (InputError, SpatialError) as exc:
            found.errors.add(position, getattr(exc, "field", None) or "feature", _reason(exc))
    if found.errors.bad_rows:
        raise _input_error(found, names)
    return drafts


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)


def _input_error(found: _Features, names: list[str | None]) -> InputError:
    entries = [
        {"feature": position, "name": names[position], "field": name, "message": message}
        for position, name, message in found.errors.first()
    ]
    count = len(found.errors.bad_rows)
    noun = "feature has" if count == 1 else "features have"
    quoted = "; ".join(
        f"feature {e['feature']}{_named(e['name'])} ({e['field']}): {e['message']}"
        for e in entries[:_SHOWN]
    )
    more = "; ..." if count > _SHOWN or len(entries) > _SHOWN else ""
    message = f"{count} {noun} errors in {found.source!r}; nothing was imported: {quoted}{more}"
    return InputError(message, field=found.source, errors=entries[:MAX_ERRORS])


def _named(name: Any) -> str:
    return f" {name!r}" if name else ""


def _territory_properties(raw: Mapping[str, Any], *, tabular: bool) -> dict[str, Any]:
    """Properties with the territory fields under their own names (any case) and usable types.

    File formats are loosely typed (a shapefile has no booleans, KML and CSV only text), so
    ``priority`` "2" or 2.0 is 2 and ``exclusive`` 1 or "yes" is true. The columns an export
    adds are left out; in a table an empty cell is an absent value, not a null or empty one.
    """
    keys = _pick(raw, {name: (name,) for name in TERRITORY_FIELDS})
    props: dict[str, Any] = {}
    for key, value in raw.items():
        if key in keys.values() or key in EXPORT_ONLY or (tabular and value in (None, "")):
            continue
        props[key] = value
    for name, key in keys.items():
        if not (tabular and raw[key] in (None, "")):
            props[name] = _coerce(name, raw[key])
    return props


def _coerce(name: str, value: Any) -> Any:
    """A territory field's value as the territory route expects it, where it is clear how."""
    if isinstance(value, float) and value.is_integer() and name != "exclusive":
        value = int(value)
    if name in ("name", "owner") and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if name == "priority" and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    if name == "exclusive" and not isinstance(value, bool):
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    return value


# --- GeoJSON: parsed as JSON, so nested properties stay nested --------------------------------


def _geojson_features(content: bytes, source: str, options: ImportOptions) -> _Features:
    body = _parse_json(content, source)
    if isinstance(body, Mapping) and body.get("type") == "Feature":
        items: Any = [body]
    elif isinstance(body, Mapping) and body.get("type") == "FeatureCollection":
        items = body.get("features")
        if not isinstance(items, list):
            raise InputError(f"{source!r}: a FeatureCollection needs a 'features' array")
    else:
        raise InputError(
            f"{source!r} is JSON but not a GeoJSON FeatureCollection or Feature", field=source
        )
    declared = _declared_geojson_crs(body, source)
    to_wgs84 = _transformer(_crs_to_use(declared, options.crs, source, default="EPSG:4326"))
    found = _Features(source)
    for position, item in enumerate(items):
        properties = item.get("properties") if isinstance(item, Mapping) else None
        if not isinstance(item, Mapping) or item.get("type") != "Feature":
            found.errors.add(position, "feature", "expected a GeoJSON Feature object")
            properties = {}
        elif properties is not None and not isinstance(properties, Mapping):
            found.errors.add(position, "properties", "properties must be an object or null")
            properties = {}
        geometry = item.get("geometry") if isinstance(item, Mapping) else None
        found.geometries.append(_reprojected(geometry, to_wgs84))
        found.properties.append(dict(properties or {}))
    return found


def _declared_geojson_crs(body: Mapping[str, Any], source: str) -> str | None:
    """The CRS a pre-RFC 7946 GeoJSON names in its "crs" member, if any."""
    crs = body.get("crs")
    if crs is None:
        return None
    name = crs.get("properties", {}).get("name") if isinstance(crs, Mapping) else None
    if not isinstance(name, str):
        raise InputError(
            f"{source!r}: the 'crs' member must name a CRS ({{'type': 'name', 'properties': "
            "{'name': 'EPSG:4326'}}); RFC 7946 GeoJSON leaves it out",
            field="crs",
        )
    return name


def _reprojected(geometry: Any, to_wgs84: Callable[[Any], Any] | None) -> Any:
    """A GeoJSON geometry in EPSG:4326; left as is when it cannot be read (reported later)."""
    if to_wgs84 is None or not isinstance(geometry, Mapping):
        return geometry
    try:
        return mapping(to_wgs84(shapely.geometry.shape(geometry)))
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        shapely.errors.ShapelyError,
    ):
        return geometry  # the territory checks name what is wrong with it


# --- coordinate reference systems -------------------------------------------------------------


def _parse_crs(text: str, what: str) -> Any:
    import pyproj  # noqa: PLC0415  (heavy: only imports need it)

    try:
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise InputError(
            f"{what} {text!r} is not a coordinate reference system pyproj knows "
            "(use e.g. 'EPSG:5070')",
            field="crs",
        ) from exc


def _crs_to_use(declared: Any, given: str | None, source: str, *, default: str | None) -> Any:
    """The CRS of a file's coordinates: what it declares, else ``given``, else the default."""
    declared_crs = (
        _parse_crs(declared, f"{source!r} declares a CRS,")
        if isinstance(declared, str)
        else declared
    )
    given_crs = _parse_crs(given, "crs") if given else None
    if declared_crs is not None:
        if given_crs is not None and not given_crs.equals(declared_crs, ignore_axis_order=True):
            raise InputError(
                f"{source!r} declares its CRS as {_crs_name(declared_crs)}, but crs="
                f"{given!r} was given; leave crs out for a file that declares its own",
                field="crs",
            )
        return declared_crs
    if given_crs is not None:
        return given_crs
    return _parse_crs(default, "default") if default else None


def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else str(crs.name)


def _is_wgs84(crs: Any) -> bool:
    return bool(crs.equals("EPSG:4326", ignore_axis_order=True) or crs.equals("OGC:CRS84"))


def _transformer(crs: Any) -> Callable[[Any], Any] | None:
    """A function reprojecting shapely geometries from ``crs`` to lon/lat; None if it is that."""
    if crs is None or _is_wgs84(crs):
        return None
    import pyproj  # noqa: PLC0415

    transformer = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def transform(geom: Any) -> Any:
        return shapely.transform(
            geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )

    return transform


# --- GDAL and GeoParquet formats: one GeoDataFrame ------------------------------------------


def _read_frame(kind: str, content: bytes, source: str, options: ImportOptions) -> Any:
    """The file as a GeoDataFrame in EPSG:4326."""
    if kind == "parquet":
        frame, default = _read_parquet(content, source), None
    elif kind == "csv":
        frame, default = _read_csv(content, source), "EPSG:4326"
    else:
        if kind == "zip":
            content, kind = _unzipped(content, source, options)
        frame = _read_gdal(content, source, kind, options.source_layer)
        # KML is WGS 84 by definition; a shapefile without .prj or a GeoPackage layer with an
        # undefined SRS says nothing, and guessing lon/lat would put metres on the map.
        default = "EPSG:4326" if kind == "kml" else None
    crs = _crs_to_use(frame.crs, options.crs, source, default=default)
    if crs is None:
        raise InputError(_missing_crs(source, kind), field="crs")
    if frame.crs is None:
        frame = frame.set_crs(crs)
    return frame if _is_wgs84(crs) else frame.to_crs("EPSG:4326")


def _missing_crs(source: str, kind: str) -> str:
    where = "the shapefile has no .prj file" if kind == "shapefile" else "it declares none"
    return (
        f"{source!r} does not say which coordinate reference system its coordinates are in "
        f"({where}); add it, or name it with ?crs= (e.g. crs=EPSG:4326 for longitude/latitude)"
    )


def _read_parquet(content: bytes, source: str) -> Any:
    import geopandas  # noqa: PLC0415  (heavy: ~120 MB a worker that never reads a file)
    import pyarrow  # noqa: PLC0415

    try:
        return geopandas.read_parquet(io.BytesIO(content))
    except pyarrow.ArrowException as exc:
        raise InputError(f"{source!r} is not a readable Parquet file", field=source) from exc
    except ValueError as exc:  # "Missing geo metadata": plain Parquet, not GeoParquet
        raise InputError(
            f"{source!r} is Parquet but not GeoParquet (no 'geo' metadata): {exc}".split("\n")[0],
            field=source,
        ) from exc


def _read_csv(content: bytes, source: str) -> Any:
    """A CSV with a WKT geometry column; every other column read as text (no guessing)."""
    import pyogrio  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "territories.csv"  # GDAL's CSV driver goes by the extension
        path.write_bytes(content)
        try:
            frame = pyogrio.read_dataframe(
                path,
                GEOM_POSSIBLE_NAMES=",".join(_WKT_NAMES),
                KEEP_GEOM_COLUMNS="NO",
            )
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise InputError(f"{source!r} is not a readable CSV file", field=source) from exc
    if "geometry" not in frame or frame.geometry.isna().all():
        raise InputError(
            f"{source!r} has no geometry column with WKT in it; accepted names (any case): "
            + ", ".join(_WKT_NAMES),
            field="columns",
        )
    return frame


def _read_gdal(content: bytes, source: str, kind: str, source_layer: str | None) -> Any:
    """A GeoPackage, Shapefile or KML layer (every KML folder, unless one is chosen)."""
    import pandas  # noqa: PLC0415
    import pyogrio  # noqa: PLC0415

    label = {"gpkg": "GeoPackage", "kml": "KML file", "shapefile": "zipped Shapefile"}[kind]
    with warnings.catch_warnings():
        # GDAL warns that the in-memory copy's name does not end in .gpkg; it does not matter.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            names = _layers_to_read(pyogrio.list_layers(io.BytesIO(content)), source, kind,
                                    source_layer)  # fmt: skip
            frames = [pyogrio.read_dataframe(io.BytesIO(content), layer=name) for name in names]
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            # GDAL's message names a temporary in-memory path; it would only confuse.
            raise InputError(f"{source!r} is not a readable {label}", field=source) from exc
    frame = frames[0] if len(frames) == 1 else pandas.concat(frames, ignore_index=True)
    if kind == "kml":
        frame = frame.drop(columns=[c for c in frame.columns if c in _KML_COLUMNS])
    return frame


def _layers_to_read(found: Any, source: str, kind: str, source_layer: str | None) -> list[str]:
    names = [str(name) for name, _ in found]
    if not names:
        raise InputError(f"{source!r} has no layers", field=source)
    if source_layer is not None:
        if source_layer not in names:
            raise InputError(
                f"{source!r} has no layer {source_layer!r}; its layers: "
                + ", ".join(map(repr, names)),
                field="source_layer",
            )
        return [source_layer]
    if kind == "kml" or len(names) == 1:
        return names  # KML folders are layers: a user means all the placemarks
    polygonal = [str(n) for n, g in found if g and "polygon" in str(g).lower()]
    if len(polygonal) == 1:
        return polygonal
    raise InputError(
        f"{source!r} has {len(names)} layers ({', '.join(map(repr, names))}); "
        "choose one with ?source_layer=",
        field="source_layer",
    )


def _unzipped(content: bytes, source: str, options: ImportOptions) -> tuple[bytes, str]:
    """A zipped Shapefile re-zipped flat (GDAL reads it only at the root), or a KMZ as is."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [
                info
                for info in archive.infolist()
                if not info.is_dir() and not info.filename.startswith("__MACOSX/")
                and not PurePosixPath(info.filename).name.startswith(".")
            ]  # fmt: skip
            shp = _the_shapefile(members, source, options.source_layer)
            if shp is None:
                return content, "kml"
            parts = _shapefile_parts(members, shp, source)
            size = sum(info.file_size for info in parts)
            if size > options.max_unzipped_bytes:
                raise PayloadTooLargeError(
                    f"{source!r} unzips to {size} bytes, more than the "
                    f"{options.max_unzipped_bytes} bytes allowed",
                    field=source,
                )
            flat = io.BytesIO()
            with zipfile.ZipFile(flat, "w", zipfile.ZIP_STORED) as out:
                for info in parts:
                    extension = PurePosixPath(info.filename).suffix.lower()
                    out.writestr(f"layer{extension}", archive.read(info))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise InputError(f"{source!r} is not a readable zip file: {exc}", field=source) from exc
    return flat.getvalue(), "shapefile"


def _the_shapefile(
    members: list[zipfile.ZipInfo], source: str, source_layer: str | None
) -> zipfile.ZipInfo | None:
    """The one .shp in the zip (None for a KMZ); InputError when there is none or several."""
    shps = [info for info in members if info.filename.lower().endswith(".shp")]
    if source_layer is not None:
        shps = [info for info in shps if PurePosixPath(info.filename).stem == source_layer]
    if len(shps) == 1:
        return shps[0]
    if not shps and any(info.filename.lower().endswith(".kml") for info in members):
        return None
    if not shps:
        listed = ", ".join(repr(info.filename) for info in members[:10]) or "nothing"
        chosen = f" called {source_layer!r}" if source_layer else ""
        raise InputError(
            f"{source!r} holds no Shapefile{chosen} (.shp); it holds {listed}", field=source
        )
    raise InputError(
        f"{source!r} holds {len(shps)} Shapefiles ("
        + ", ".join(repr(info.filename) for info in shps)
        + "); choose one with ?source_layer=<its name without .shp>",
        field="source_layer",
    )


def _shapefile_parts(
    members: list[zipfile.ZipInfo], shp: zipfile.ZipInfo, source: str
) -> list[zipfile.ZipInfo]:
    """The .shp and its sidecar files (same folder and name, any case of the extension)."""
    stem = str(PurePosixPath(shp.filename).with_suffix("")).lower()
    parts = {
        PurePosixPath(info.filename).suffix.lower(): info
        for info in members
        if str(PurePosixPath(info.filename).with_suffix("")).lower() == stem
        and PurePosixPath(info.filename).suffix.lower() in _SHAPEFILE_PARTS
    }
    missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
    if missing:
        raise InputError(
            f"{source!r}: {shp.filename!r} needs its {' and '.join(missing)} file beside it "
            "in the zip",
            field=source,
        )
    return list(parts.values())


def _frame_features(frame: Any, source: str, kind: str) -> _Features:
    """Features of a GeoDataFrame (EPSG:4326): GeoJSON geometries and per-row properties."""
    found = _Features(source, tabular=True)
    geometries = np.asarray(frame.geometry.values)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    values = [_python_values(frame[name]) for name in columns]
    for position, row in enumerate(zip(*values, strict=True) if values else [()] * len(frame)):
        props: dict[str, Any] = {}
        for name, item in zip(columns, row, strict=True):
            try:
                props[str(name)] = _jsonable(item)
            except TypeError as exc:
                found.errors.add(position, str(name), f"{name} {exc}")
        found.properties.append(props)
        found.geometries.append(_geometry_mapping(geometries[position], kind))
    return found


def _geometry_mapping(geom: Any, kind: str) -> Any:
    """A shapely geometry as GeoJSON; KML's MultiGeometry of polygons as a MultiPolygon."""
    if geom is None:
        return None
    if kind == "kml" and geom.geom_type == "GeometryCollection" and not geom.is_empty:
        parts = shapely.get_parts(geom)
        if all(part.geom_type in ("Polygon", "MultiPolygon") for part in parts):
            geom = shapely.MultiPolygon(list(shapely.get_parts(shapely.get_parts(parts))))
    return mapping(geom)


# --- writing the import ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    layer: str
    mode: str
    imported: int
    removed: int  # territories the replace mode deleted
    territory_ids: list[int]
    assigned: int | None  # customers assigned afterwards (None: the layer is not kept assigned)
    seconds: float


def import_territories(
    session: Session,
    *,
    layer: str,
    drafts: list[TerritoryDraft],
    mode: ImportMode = "append",
    progress: Callable[[int], None] | None = None,
    reassigning: Callable[[], None] | None = None,
) -> ImportResult:
    """Write the drafts to the layer (``replace``: instead of its territories); no commit.

    A layer kept assigned is assigned again whole, in the same transaction, and the layer is
    touched so every worker refreshes its index on commit.
    """
    started = time.perf_counter()
    target: Layer = layers.get_by_name(session, name=layer, for_change=True)
    kept = target.assigned_at is not None
    if kept:  # the lock order of every writer: layer row, customers, territories, assignments
        assignments.lock_for_bulk(session, layer_id=target.id)
    removed = exports.clear_territories(session, layer_id=target.id) if mode == "replace" else 0
    ids: list[int] = []
    for draft in drafts:
        ids.append(territory_repo.create(session, layer_id=target.id, draft=draft))
        if progress is not None:
            progress(1)
    assigned = None
    if kept:
        if reassigning is not None:
            reassigning()
        assigned = _reassign(session, target)
    layers.touch(session, layer=target)
    return ImportResult(
        layer=layer,
        mode=mode,
        imported=len(ids),
        removed=removed,
        territory_ids=ids,
        assigned=assigned,
        seconds=round(time.perf_counter() - started, 3),
    )


def _reassign(session: Session, layer: Layer) -> int:
    """Every customer assigned again, from an index of the layer as this transaction sees it.

    ``app.assign.assign_layer`` takes its index from the registry, which reads committed
    territories only; the imported ones are not committed yet.
    """
    index = build_index(session, layer_id=layer.id)
    return assign_all(session, layer_id=layer.id, index=index)["assigned"]


# --- export ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFile:
    """An exported file, ready to send or save."""

    content: bytes
    media_type: str
    filename: str
    rows: int


def export_size(session: Session, *, layer: str, what: ExportWhat = "territories") -> int:
    """How many rows an export of the layer will have (for progress bars)."""
    target = layers.get_by_name(session, name=layer)
    return exports.count(session, layer_id=target.id, what=what)


def export_layer(
    session: Session,
    *,
    layer: str,
    what: ExportWhat = "territories",
    fmt: ExportFormat = "geojson",
    progress: Callable[[int], None] | None = None,
) -> ExportFile:
    """The layer's territories with their stats, or its assignments, as a file."""
    if fmt not in _EXPORTS:
        raise InputError(
            f"unknown export format {fmt!r}; use one of {', '.join(_EXPORTS)}", field="format"
        )
    target = layers.get_by_name(session, name=layer)
    if what == "assignments":
        if target.assigned_at is None:
            raise NotFoundError(
                f"layer '{layer}' has never been assigned, so it has no assignments to export; "
                f"assign it first (POST /layers/{layer}/assign or `territory assign {layer}`)",
                field="what",
            )
        content, rows = _assignments_file(session, target, fmt, progress)
    else:
        content, rows = _territories_file(session, target, fmt, progress)
    media_type, extension = _EXPORTS[fmt]
    return ExportFile(content, media_type, f"{layer}-{what}.{extension}", rows)


def _territories_file(
    session: Session, layer: Layer, fmt: str, progress: Callable[[int], None] | None
) -> tuple[bytes, int]:
    rows = exports.territory_rows(session, layer_id=layer.id)
    ids = np.array([r.id for r in rows], dtype=np.int64)
    count, value = coverage.territory_stats(session, layer_id=layer.id, territory_ids=ids)
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.array([], object)
    fixed = [
        {
            "territory_id": r.id,
            "name": r.name,
            "owner": r.owner,
            "priority": r.priority,
            "exclusive": r.exclusive,
            "kind": r.kind,
            "code": r.code,
            "customer_count": int(count[i]),
            "customer_value": float(value[i]),
            "area_km2": float(r.area_m2) / 1e6,
        }
        for i, r in enumerate(rows)
    ]
    properties = [dict(r.properties or {}) for r in rows]
    if fmt == "geojson":
        content = _territories_geojson(layer.name, fixed, properties, geoms)
    else:
        frame = _territories_frame(fixed, properties, geoms)
        content = _write_frame(frame, fmt, geometry_type="MultiPolygon")
    if progress is not None:
        progress(len(rows))
    return content, len(rows)


def _territories_geojson(
    name: str, fixed: list[dict[str, Any]], properties: list[dict[str, Any]], geoms: Any
) -> bytes:
    """RFC 7946 GeoJSON, full precision, user properties as they are (nested ones too)."""
    texts = shapely.to_geojson(geoms) if len(fixed) else []
    features = []
    for fields, props, geometry in zip(fixed, properties, texts, strict=True):
        own = {k: v for k, v in fields.items() if k != "territory_id"}
        own.update((k, v) for k, v in props.items() if k not in own)
        features.append(
            {
                "type": "Feature",
                "id": fields["territory_id"],
                "geometry": orjson.Fragment(geometry),
                "properties": own,
            }
        )
    return orjson.dumps({"type": "FeatureCollection", "name": name, "features": features})


def _territories_frame(
    fixed: list[dict[str, Any]], properties: list[dict[str, Any]], geoms: Any
) -> Any:
    """One column per field, stat and user property (one type per column; JSON text if mixed).

    A property whose name a column already has (any case: GeoPackage columns ignore it) is
    left out of the table.
    """
    import geopandas  # noqa: PLC0415
    import pandas  # noqa: PLC0415

    columns: dict[str, Any] = {
        name: [row[name] for row in fixed]
        for name in (*EXPORT_ONLY[:1], *TERRITORY_FIELDS, "kind", "code", *EXPORT_ONLY[1:])
    }
    taken = {name.lower() for name in columns} | {"geometry", "wkt", "fid"}
    for key in _keys_in_order(properties):
        if key.lower() not in taken:
            taken.add(key.lower())
            columns[key] = _property_column([props.get(key) for props in properties], pandas)
    return geopandas.GeoDataFrame(
        columns, geometry=geopandas.GeoSeries(geoms, crs="EPSG:4326"), crs="EPSG:4326"
    )


def _keys_in_order(properties: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for props in properties:
        seen.update(dict.fromkeys(props))
    return list(seen)


def _property_column(values: list[Any], pandas: Any) -> Any:
    """Values of one property as a typed column; JSON text where types mix or nest."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pandas.array(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pandas.array(values, dtype="Int64")
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return [math.nan if v is None else float(v) for v in values]
    if all(isinstance(v, str) for v in present):
        return pandas.array(values, dtype="string")
    return pandas.array(
        [None if v is None else orjson.dumps(v).decode() for v in values], dtype="string"
    )


def _write_frame(frame: Any, fmt: str, *, geometry_type: str) -> bytes:
    """A GeoDataFrame as GeoPackage, CSV (geometry as WKT), GeoParquet or GeoJSON bytes."""
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    if fmt == "csv":
        table = frame.drop(columns=frame.geometry.name)
        if geometry_type != "Point":  # points have lon and lat columns already
            table.insert(0, "WKT", shapely.to_wkt(frame.geometry.values, rounding_precision=-1))
        return str(table.to_csv(index=False, lineterminator="\n")).encode()
    import pyogrio  # noqa: PLC0415

    driver = "GPKG" if fmt == "gpkg" else "GeoJSON"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the in-memory file's name
        pyogrio.write_dataframe(
            frame, buffer, driver=driver, layer="territories" if geometry_type != "Point"
            else "assignments", geometry_type=geometry_type,
        )  # fmt: skip
    return buffer.getvalue()


def _assignments_file(
    session: Session, layer: Layer, fmt: str, progress: Callable[[int], None] | None
) -> tuple[bytes, int]:
    import geopandas  # noqa: PLC0415

    table = exports.assignment_table(session, layer_id=layer.id, progress=progress)
    if fmt == "csv":
        return str(table.to_csv(index=False, lineterminator="\n")).encode(), len(table)
    points = geopandas.points_from_xy(table["lon"], table["lat"], crs="EPSG:4326")
    frame = geopandas.GeoDataFrame(table, geometry=points, crs="EPSG:4326")
    return _write_frame(frame, fmt, geometry_type="Point"), len(table)
