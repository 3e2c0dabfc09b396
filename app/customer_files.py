"""Customer input (an uploaded file or a JSON body) as one normalised, validated batch.

Every reader turns its input into the same column-wise ``_Raw`` form (raw values, one entry
per row), and ``_validate`` checks all of it at once: every problem is collected, and if there
is any, one ``InputError`` lists them and nothing is returned. An import is all or nothing.
"""

from __future__ import annotations

import csv
import gc
import io
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely

from app.errors import InputError, UnsupportedMediaError
from spatial.geometry import invalid_lonlat

MAX_ERRORS = 100  # entries in InputError.errors; the message still counts every bad row
MAX_ID_LENGTH = 256  # characters: an external_id is a key, and btree index entries are bounded
MAX_VALUE = 1e15  # customers.value is NUMERIC(18, 2): 16 digits before the point, keep a margin
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # what JSON serialisers and JSONB round-trip
_SHOWN = 3  # errors quoted in the message itself

# Accepted spellings of each known field, best first; matched after strip() and lower().
_ID_NAMES = ("external_id", "id")
_LON_NAMES = ("lon", "lng", "longitude", "x")
_LAT_NAMES = ("lat", "latitude", "y")
_FIELDS_WITHOUT_COORDS: dict[str, tuple[str, ...]] = {
    "external_id": _ID_NAMES,
    "name": ("name",),
    "value": ("value",),
}
_FIELDS = {**_FIELDS_WITHOUT_COORDS, "lon": _LON_NAMES, "lat": _LAT_NAMES}
# Errors of one row are listed in this order; attribute errors (keyed by their name) last.
_ERROR_ORDER = (
    *("record", "feature", "properties", "geometry", "row"),
    *("external_id", "name", "lon", "lat", "value"),
)
_FIELD_ORDER = {name: rank for rank, name in enumerate(_ERROR_ORDER)}

_FORMATS_BY_EXTENSION = {
    ".csv": "csv",
    ".txt": "csv",
    ".geojson": "json",
    ".json": "json",
    ".gpkg": "gpkg",
}
_FORMATS_BY_CONTENT_TYPE = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/plain": "csv",
    "application/geo+json": "json",
    "application/json": "json",
    "application/geopackage+sqlite3": "gpkg",
}
_SUPPORTED = "CSV (.csv), GeoJSON (.geojson or .json) or GeoPackage (.gpkg)"
# "3 items have errors" but "appears in indexes 0 and 2": each reads as English does.
_COUNT_NOUNS = {"row": "rows", "feature": "features", "index": "items"}
_POSITION_NOUNS = {"row": "rows", "feature": "features", "index": "indexes"}
_COORDINATE_NOUNS = {"lon": "longitude", "lat": "latitude"}
_COLUMN_NOUNS = {"external_id": "external_id", **_COORDINATE_NOUNS}


class _Skip:
    """Marks a value that must not be checked: its row already has an error that explains it."""


_SKIP: Any = _Skip()


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value
class CustomerBatch:
    """Customers ready to store: lon/lat in degrees (EPSG:4326), one entry per customer."""

    external_id: list[str]
    name: list[str | None]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]
    attributes: list[dict[str, Any]]

    def __post_init__(self) -> None:
        sizes = {len(column) for column in (self.name, self.lon, self.lat, self.value)}
        if sizes | {len(self.attributes)} != {len(self.external_id)}:
            raise ValueError("all columns of a CustomerBatch must have the same length")
        for array in (self.lon, self.lat, self.value):
            array.flags.writeable = False  # frozen means frozen, arrays included

    def __len__(self) -> int:
        return len(self.external_id)


# --- public entry points -------------------------------------------------------------------


def batch_from_records(
    records: Sequence[Mapping[str, Any]], *, label: str = "row", first_number: int = 0
) -> CustomerBatch:
    """A batch from mappings: external_id, name, value, lon/lat (aliases); the rest attributes."""
    with _gc_paused():
        return _validate(_raw_from_records(records, label, first_number), source="body")


def batch_from_json_body(body: Any) -> CustomerBatch:
    """A batch from a parsed JSON body: an array of records or a FeatureCollection of Points."""
    with _gc_paused():
        return _validate(_raw_from_json(body, source="body"), source="body")


def batch_from_file(
    filename: str, content: bytes, content_type: str | None = None
) -> CustomerBatch:
    """A batch from an uploaded CSV, GeoJSON/JSON or GeoPackage file."""
    source = filename or "file"
    kind = _format(filename, content_type)
    with _gc_paused():
        if kind == "csv":
            raw = _raw_from_csv(_decode(content, source), source)
        elif kind == "json":
            raw = _raw_from_json(_parse_json(content, source), source)
        else:
            raw = _raw_from_geopackage(content, source)
        return _validate(raw, source)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Without the cycle collector: a big file creates millions of lists and dicts (no cycles),
    and the collections they trigger, each walking every live object, doubled the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- the common raw form and its validation --------------------------------------------------


class _Errors:
    """Problems found so far, by row position; keeps the first MAX_ERRORS of each field."""

    def __init__(self) -> None:
        self.bad_rows: set[int] = set()
        self._found: dict[str, list[tuple[int, str]]] = {}

    def add(self, position: int, field_name: str, message: str) -> None:
        self.bad_rows.add(position)
        found = self._found.setdefault(field_name, [])
        # Each field is checked in row order, so its first MAX_ERRORS contain every entry of
        # the overall first MAX_ERRORS; keeping more would only cost memory on a bad big file.
        if len(found) < MAX_ERRORS:
            found.append((position, message))

    def first(self) -> list[tuple[int, str, str]]:
        entries = [
            (position, name, message)
            for name, found in self._found.items()
            for position, message in found
        ]
        entries.sort(key=lambda e: (e[0], _FIELD_ORDER.get(e[1], len(_FIELD_ORDER)), e[1]))
        return entries[:MAX_ERRORS]


@dataclass
class _Raw:
    """Input as columns of unchecked values; ``numbers`` is what the user calls each row."""

    label: str
    text_cells: bool = False  # every value is a str (CSV): allows a faster number parser
    numbers: list[int] = field(default_factory=list)
    external_id: list[Any] = field(default_factory=list)
    name: list[Any] = field(default_factory=list)
    lon: list[Any] = field(default_factory=list)
    lat: list[Any] = field(default_factory=list)
    value: list[Any] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    errors: _Errors = field(default_factory=_Errors)

    def add(self, number: int, values: Mapping[str, Any], attributes: dict[str, Any]) -> int:
        """Append one row (missing fields are None); return its position."""
        self.numbers.append(number)
        for name in _FIELDS:
            getattr(self, name).append(values.get(name))
        self.attributes.append(attributes)
        return len(self.numbers) - 1

    def add_skipped(self, number: int, field_name: str, message: str) -> None:
        """Append a row that cannot be read at all, with the error that says why."""
        position = self.add(number, dict.fromkeys(_FIELDS, _SKIP), {})
        self.errors.add(position, field_name, message)


def _validate(raw: _Raw, source: str) -> CustomerBatch:
    if not raw.numbers:
        where = "the request body" if source == "body" else repr(source)
        raise InputError(f"no customers in {where}", field=source)
    errors = raw.errors
    external_ids = _external_ids(raw, errors)
    names = _texts(raw.name, "name", errors)
    lon, lon_ok = _floats(raw.lon, "lon", errors, default=None, text_cells=raw.text_cells)
    lat, lat_ok = _floats(raw.lat, "lat", errors, default=None, text_cells=raw.text_cells)
    _check_lonlat(lon, lat, lon_ok & lat_ok, errors)
    value, value_ok = _floats(raw.value, "value", errors, default=0.0, text_cells=raw.text_cells)
    _check_values(value, value_ok, errors)
    if errors.bad_rows:
        raise _input_error(raw, source)
    return CustomerBatch(external_ids, names, lon, lat, value, raw.attributes)


def _input_error(raw: _Raw, source: str) -> InputError:
    label = raw.label
    entries = [
        {label: raw.numbers[position], "field": name, "message": message}
        for position, name, message in raw.errors.first()
    ]
    count = len(raw.errors.bad_rows)
    noun = label if count == 1 else _COUNT_NOUNS.get(label, f"{label}s")
    quoted = "; ".join(
        f"{label} {e[label]} ({e['field']}): {e['message']}" for e in entries[:_SHOWN]
    )
    more = "; ..." if count > _SHOWN or len(entries) > _SHOWN else ""
    verb = "has" if count == 1 else "have"
    message = f"{count} {noun} {verb} errors; nothing was imported: {quoted}{more}"
    return InputError(message, field=source, errors=entries)


def _external_ids(raw: _Raw, errors: _Errors) -> list[str]:
    ids = _texts(raw.external_id, "external_id", errors, required=True)
    present = [text for text in ids if text is not None]
    if len(set(present)) < len(present):  # cheap test first; naming the rows takes a loop
        _report_duplicates(raw, ids, errors)
    return [text or "" for text in ids]


def _report_duplicates(raw: _Raw, ids: list[str | None], errors: _Errors) -> None:
    first_seen: dict[str, int] = {}
    for position, text in enumerate(ids):
        if text is None:
            continue
        seen = first_seen.setdefault(text, position)
        if seen != position:
            both = _both(raw.label, raw.numbers[seen], raw.numbers[position])
            errors.add(position, "external_id", f"external_id {text!r} appears in {both}")


def _both(label: str, first: int, second: int) -> str:
    plural = _POSITION_NOUNS.get(label, f"{label}s")
    return f"{plural} {first} and {second}"


def _texts(
    raw: list[Any], field_name: str, errors: _Errors, *, required: bool = False
) -> list[str | None]:
    """Stripped strings (numbers as their digits); None where missing, empty or unusable."""
    result: list[str | None] = []
    for position, item in enumerate(raw):
        if isinstance(item, str):  # the common case, kept first: CSV has a million of these
            text = item.strip() or None
        else:
            try:
                text = _text(item)
            except ValueError as exc:
                errors.add(position, field_name, f"{field_name} {exc}")
                result.append(None)
                continue
        if text is None and required and item is not _SKIP:
            errors.add(position, field_name, f"{field_name} is missing")
        elif text is not None and (problem := _unstorable(text, field_name)):
            errors.add(position, field_name, f"{field_name} {problem}")
            text = None
        result.append(text)
    return result


def _unstorable(text: str, field_name: str) -> str | None:
    """Why PostgreSQL could not store ``text`` (or index it, for external_id); None if it can."""
    if field_name == "external_id" and len(text) > MAX_ID_LENGTH:
        return f"is {len(text)} characters long; at most {MAX_ID_LENGTH}"
    if "\x00" in text:
        return "contains the NUL character, which PostgreSQL cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate escape such as \\ud800)"
    return None


def _text(item: Any) -> str | None:
    if item is None or item is _SKIP:
        return None
    if isinstance(item, np.generic):
        item = item.item()
    if isinstance(item, bool) or not isinstance(item, int | float | Decimal | str):
        raise ValueError(f"must be text or a number, not {_show(item)}")
    if isinstance(item, float):
        if not math.isfinite(item):
            return None  # a NaN is how pandas and GeoPackage readers spell "no value"
        if item.is_integer():
            return str(int(item))  # an integer column with gaps is read as float: 17.0 -> "17"
    return str(item).strip() or None


def _floats(
    raw: list[Any],
    field_name: str,
    errors: _Errors,
    *,
    default: float | None,
    text_cells: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Numbers (NaN where unusable) and which of them were read; missing -> default or error."""
    if text_cells:
        try:  # numpy parses a list of strings exactly as float() does, ten times faster
            return np.array(raw, dtype=np.float64), np.ones(len(raw), dtype=bool)
        except ValueError:
            pass  # an empty or non-numeric cell: go cell by cell to say which
    numbers: list[float] = []
    unread: list[int] = []
    for position, item in enumerate(raw):
        try:
            number = _number(item)
        except ValueError as exc:
            errors.add(position, field_name, str(exc))
            number = math.nan
            unread.append(position)
        else:
            if number is None:
                if default is None:
                    if item is not _SKIP:
                        noun = _COORDINATE_NOUNS.get(field_name, field_name)
                        errors.add(position, field_name, f"{noun} is missing")
                    number = math.nan
                    unread.append(position)
                else:
                    number = default
        numbers.append(number)
    read = np.ones(len(numbers), dtype=bool)
    read[unread] = False
    return np.array(numbers, dtype=np.float64), read


def _number(item: Any) -> float | None:
    """A float, or None when missing; ValueError says why it is not a number."""
    if isinstance(item, str):
        text = item.strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{_show(item)} is not a number") from None
    if item is None or item is _SKIP:
        return None
    if isinstance(item, bool | np.bool_) or not isinstance(item, int | float | Decimal | np.number):
        raise ValueError(f"{_show(item)} is not a number")
    try:
        return float(item)
    except OverflowError:
        raise ValueError(f"{_show(item)} is too large") from None


def _check_lonlat(
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
    read: npt.NDArray[np.bool_],
    errors: _Errors,
) -> None:
    """Range errors for rows whose lon and lat were both read (the others already have one)."""
    for position in invalid_lonlat(lon, lat):
        if read[position]:
            for field_name, message in _lonlat_problems(float(lon[position]), float(lat[position])):
                errors.add(int(position), field_name, message)


def _lonlat_problems(lon: float, lat: float) -> list[tuple[str, str]]:
    degrees = "lon/lat must be degrees (EPSG:4326), longitude first"
    problems = []
    if not math.isfinite(lon):
        problems.append(("lon", f"longitude {lon} is not a finite number"))
    elif abs(lon) > 180:
        problems.append(("lon", f"longitude {lon} is outside -180..180; {degrees}"))
    if not math.isfinite(lat):
        problems.append(("lat", f"latitude {lat} is not a finite number"))
    elif abs(lat) > 90:
        # Swapped columns put a latitude (|.| <= 90) in lon and a longitude (<= 180) in lat.
        swapped = abs(lat) <= 180 and not abs(lon) > 90
        hint = "are lon and lat swapped?" if swapped else degrees
        problems.append(("lat", f"latitude {lat} is outside -90..90; {hint}"))
    return problems


def _check_values(
    value: npt.NDArray[np.float64], read: npt.NDArray[np.bool_], errors: _Errors
) -> None:
    with np.errstate(invalid="ignore"):
        bad = read & ~(np.abs(value) < MAX_VALUE)  # NaN and inf fail the comparison too
    for position in np.flatnonzero(bad):
        number = float(value[position])
        if math.isfinite(number):
            message = f"value {number:g} is too large; it must be below 1e15 in absolute value"
        else:
            message = f"value {number} is not a finite number"
        errors.add(int(position), "value", message)


def _show(item: Any) -> str:
    """A value as it could appear in an error message: quoted, and not too long."""
    text = repr(item) if isinstance(item, str) else _json_or_repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_or_repr(item: Any) -> str:
    """JSON spelling where there is one (true, null, [1, 2]), else Python's repr."""
    try:
        return orjson.dumps(item).decode()
    except TypeError:
        return repr(item)


# --- records and JSON ----------------------------------------------------------------------


def _raw_from_records(records: Iterable[Any], label: str, first_number: int) -> _Raw:
    raw = _Raw(label)
    for index, record in enumerate(records):
        number = first_number + index
        if not isinstance(record, Mapping):
            raw.add_skipped(number, "record", f"expected an object, got {_show(record)}")
            continue
        keys = _pick(record, _FIELDS)
        values = {name: record[key] for name, key in keys.items()}
        position = raw.add(number, values, {})
        raw.attributes[position] = _attributes(record, set(keys.values()), position, raw.errors)
    return raw


def _pick(keys: Iterable[Any], names: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Which key holds each known field: the first accepted spelling present, in any case."""
    by_spelling: dict[str, Any] = {}
    for key in keys:
        by_spelling.setdefault(str(key).strip().lower(), key)
    found = {}
    for name, spellings in names.items():
        for spelling in spellings:
            if spelling in by_spelling:
                found[name] = by_spelling[spelling]
                break
    return found


def _attributes(
    record: Mapping[Any, Any], used: set[Any], position: int, errors: _Errors
) -> dict[str, Any]:
    """Every other key, as JSON; an explicit "attributes" object is merged in, not nested."""
    # A client that sends back what it read (attributes nested) must not get them nested twice.
    nested = [
        key
        for key in record
        if str(key).strip().lower() == "attributes" and isinstance(record[key], Mapping)
    ]
    pairs = [
        *(pair for key in nested[:1] for pair in record[key].items()),
        *((k, v) for k, v in record.items() if k not in used and k not in nested[:1]),
    ]
    result: dict[str, Any] = {}
    for key, item in pairs:
        try:
            result[_jsonable(str(key))] = _jsonable(item)
        except TypeError as exc:
            errors.add(position, str(key), f"{key!s} {exc}")
    return result


def _json_float(number: float) -> float | None:
    if not math.isfinite(number):
        return None  # JSON (and JSONB) have no NaN
    if abs(number) >= 2**63:
        # jsonb keeps it as a decimal and gives it back as an integer beyond 64 bits (1e20 as
        # 100000000000000000000), which the JSON writers refuse
        raise TypeError(f"has the number {number}, 2**63 or more; send it as a string")
    return number


def _jsonable(item: Any) -> Any:
    """``item`` as plain JSON values; NaN becomes None, dates ISO strings; TypeError if none."""
    if isinstance(item, np.generic):
        item = item.item()  # numpy scalar -> the Python one
    if isinstance(item, str):
        if problem := _unstorable(item, "attribute"):
            raise TypeError(problem)
        return item
    if (
        isinstance(item, int)
        and not isinstance(item, bool)
        and not _INT64_MIN <= item <= _INT64_MAX
    ):
        raise TypeError(f"has the integer {item}, beyond 64 bits; send it as a string")
    if item is None or isinstance(item, bool | int):
        return item
    if isinstance(item, float | Decimal):
        return _json_float(float(item))
    if isinstance(item, datetime | date | time):
        return item.isoformat()
    if isinstance(item, Mapping):
        return {_jsonable(str(k)): _jsonable(v) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [_jsonable(v) for v in item]
    raise TypeError(f"has a value of type {type(item).__name__}, which cannot be stored as JSON")


def _raw_from_json(body: Any, source: str) -> _Raw:
    if isinstance(body, list):
        return _raw_from_records(body, "index", 0)
    if isinstance(body, Mapping) and body.get("type") == "FeatureCollection":
        features = body.get("features")
        if not isinstance(features, list):
            raise InputError("a FeatureCollection needs a 'features' array", field=source)
        return _raw_from_features(features)
    raise InputError(
        "expected a JSON array of customers or a GeoJSON FeatureCollection of Points",
        field=source,
    )


def _raw_from_features(features: list[Any]) -> _Raw:
    raw = _Raw("feature")
    for number, feature in enumerate(features):
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            raw.add_skipped(number, "feature", "expected a GeoJSON Feature object")
            continue
        properties = feature.get("properties") or {}
        if not isinstance(properties, Mapping):
            raw.add_skipped(number, "properties", "properties must be an object or null")
            continue
        keys = _feature_keys(feature, properties)
        values = {name: properties[key] for name, key in keys.items()}
        if "external_id" not in keys:
            values["external_id"] = feature.get("id")
        problem = _point_problem(feature.get("geometry"))
        if problem:
            values.update(lon=_SKIP, lat=_SKIP)
        else:
            values.update(lon=feature["geometry"]["coordinates"][0])
            values.update(lat=feature["geometry"]["coordinates"][1])
        position = raw.add(number, values, {})
        if problem:
            raw.errors.add(position, "geometry", problem)
        used = set(keys.values())
        raw.attributes[position] = _attributes(properties, used, position, raw.errors)
    return raw


def _feature_keys(feature: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Property keys of the known fields; the Feature's own id beats a property called "id"."""
    keys = _pick(properties, _FIELDS_WITHOUT_COORDS)
    id_key = keys.get("external_id")
    taken_by_feature_id = feature.get("id") is not None and id_key is not None
    if taken_by_feature_id and str(id_key).strip().lower() != "external_id":
        del keys["external_id"]  # properties.id stays an attribute
    return keys


def _point_problem(geometry: Any) -> str | None:
    """Why ``geometry`` is not a usable GeoJSON Point, or None if it is."""
    if geometry is None:
        return "geometry is null; a customer needs a Point"
    if not isinstance(geometry, Mapping):
        return "geometry must be a GeoJSON Point object"
    if geometry.get("type") != "Point":
        return f"geometry is a {geometry.get('type')}; a customer needs a Point"
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list | tuple) or len(coordinates) < 2:
        return "a Point needs coordinates [longitude, latitude]"
    return None


def _parse_json(content: bytes, source: str) -> Any:
    try:
        return orjson.loads(_decode(content, source))
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{source!r} is not valid JSON: {exc}", field=source) from exc


# --- files ------------------------------------------------------------------------------------


def _format(filename: str, content_type: str | None) -> str:
    extension = PurePath(filename.replace("\\", "/")).suffix.lower() if filename else ""
    if extension in _FORMATS_BY_EXTENSION:
        return _FORMATS_BY_EXTENSION[extension]
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in _FORMATS_BY_CONTENT_TYPE:
        return _FORMATS_BY_CONTENT_TYPE[media_type]
    what = f"'{extension}' files" if extension else f"{media_type or 'this'} content"
    raise UnsupportedMediaError(
        f"cannot read {what} ({filename!r}); upload {_SUPPORTED}", field=filename or "file"
    )


def _decode(content: bytes, source: str) -> str:
    try:
        return content.decode("utf-8-sig")  # -sig: Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{source!r} must be UTF-8 text; byte 0x{content[exc.start]:02x} on line {line} is "
            'not (save it as "CSV UTF-8" and upload again)',
            field=source,
        ) from exc


def _raw_from_csv(text: str, source: str) -> _Raw:
    if not text.strip():
        raise InputError(f"no customers in {source!r}: the file is empty", field=source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header = [name.strip() for name in next(reader)]
    keys = _csv_columns(header, source)
    raw = _Raw("row", text_cells=True)
    rows: list[list[str]] = []
    width = len(header)
    # Numbered as a spreadsheet shows them (the header is row 1, a quoted multi-line cell is
    # one row). Blank rows are skipped but still counted, so the numbers stay the file's.
    try:
        for number, row in enumerate(reader, start=2):
            if not any(row) or (len(row) != width and not any(cell.strip() for cell in row)):
                continue
            rows.append(row if len(row) == width else _fit(row, width, len(rows), raw.errors))
            raw.numbers.append(number)
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit() characters
        raise InputError(
            f"{source!r}, line {reader.line_num}: {exc}; nothing was imported", field=source
        ) from exc
    _csv_fill(raw, rows, header, keys)
    if "\x00" in text:  # rare: find the rows only then, one cheap test for the whole file
        _report_nul_cells(raw, rows, header)
    return raw


def _report_nul_cells(raw: _Raw, rows: list[list[str]], header: list[str]) -> None:
    for position, row in enumerate(rows):
        for name, cell in zip(header, row, strict=False):
            if "\x00" in cell:
                raw.errors.add(position, name or "cell", f"{name} contains the NUL character")


def _delimiter(text: str) -> str:
    """The header line's most frequent separator: Excel in many locales writes ";"."""
    header = text[: text.find("\n")] if "\n" in text else text
    return max(",;\t|", key=header.count)  # ties go to the comma, which comes first


def _csv_columns(header: list[str], source: str) -> dict[str, int]:
    """Column index of each known field; InputError if a required one is absent."""
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        raise InputError(
            f"{source!r} has more than one column called {', '.join(map(repr, duplicates))}",
            field="columns",
        )
    keys = {
        name: header.index(column)
        for name, column in _pick([n for n in header if n], _FIELDS).items()
    }
    missing = [name for name in ("external_id", "lon", "lat") if name not in keys]
    if missing:
        accepted = {name: ", ".join(_FIELDS[name]) for name in missing}
        raise InputError(
            f"{source!r} has no column for {', '.join(_COLUMN_NOUNS[m] for m in missing)}; "
            f"found columns: {', '.join(repr(n) for n in header if n) or 'none'}; "
            "accepted names (any case): "
            + "; ".join(f"{_COLUMN_NOUNS[m]}: {accepted[m]}" for m in missing),
            field="columns",
            errors=[
                {"field": m, "message": f"no {_COLUMN_NOUNS[m]} column (accepted: {accepted[m]})"}
                for m in missing
            ],
        )
    return keys


def _fit(row: list[str], width: int, position: int, errors: _Errors) -> list[str]:
    """A short row padded with empty cells; a long one cut, with an error if it loses data."""
    if len(row) < width:
        return row + [""] * (width - len(row))
    if any(cell.strip() for cell in row[width:]):
        errors.add(
            position,
            "row",
            f"has {len(row)} cells but the header has {width} columns "
            "(is a value with a comma missing its quotes?)",
        )
    return row[:width]


def _csv_fill(raw: _Raw, rows: list[list[str]], header: list[str], keys: dict[str, int]) -> None:
    """Column lists from the rows; unknown named columns become string attributes."""
    for name in _FIELDS:
        column = keys.get(name)
        values = [row[column] for row in rows] if column is not None else [""] * len(rows)
        setattr(raw, name, values)
    used = set(keys.values())
    extra = [(name, i) for i, name in enumerate(header) if name and i not in used]
    raw.attributes = [{name: row[i] for name, i in extra} for row in rows]


# --- GeoPackage -------------------------------------------------------------------------------


def _raw_from_geopackage(content: bytes, source: str) -> _Raw:
    # Imported here: geopandas and pyogrio add ~120 MB to every worker that never reads a file.
    import geopandas  # noqa: PLC0415

    frame = _read_geopackage(content, source)
    if not isinstance(frame, geopandas.GeoDataFrame):
        raise InputError(f"{source!r}: the layer has no geometry column", field=source)
    if frame.crs is not None and not frame.crs.equals("EPSG:4326", ignore_axis_order=True):
        frame = frame.to_crs("EPSG:4326")
    geometry = np.asarray(frame.geometry.values)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    keys = _pick(columns, _FIELDS_WITHOUT_COORDS)
    if "external_id" not in keys:
        raise InputError(
            f"{source!r} has no external_id column; found columns: "
            f"{', '.join(map(repr, columns)) or 'none'}; accepted names: {', '.join(_ID_NAMES)}",
            field="columns",
        )
    raw = _Raw("feature")
    raw.numbers = list(range(len(frame)))
    values = {name: _python_values(frame[name]) for name in columns}
    for name in _FIELDS_WITHOUT_COORDS:
        setattr(raw, name, values[keys[name]] if name in keys else [None] * len(frame))
    raw.lon, raw.lat = _point_columns(geometry, raw.errors)
    extra = [name for name in columns if name not in keys.values()]
    rows = zip(*(values[name] for name in extra), strict=True) if extra else [()] * len(frame)
    raw.attributes = [
        _attributes(dict(zip(extra, row, strict=True)), set(), position, raw.errors)
        for position, row in enumerate(rows)
    ]
    return raw


def _read_geopackage(content: bytes, source: str) -> Any:
    """The first layer, or the only point layer if there are several layers."""
    import pyogrio  # noqa: PLC0415  (see _raw_from_geopackage)

    with warnings.catch_warnings():
        # GDAL warns that the in-memory copy's name does not end in .gpkg; it does not matter.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            layers = pyogrio.list_layers(io.BytesIO(content))
            points = [name for name, kind in layers if kind and str(kind).startswith("Point")]
            layer = points[0] if len(points) == 1 else layers[0][0] if len(layers) else None
            if layer is None:
                raise InputError(f"{source!r} has no layers", field=source)
            return pyogrio.read_dataframe(io.BytesIO(content), layer=layer)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            # GDAL's message names a temporary in-memory path; it would only confuse.
            raise InputError(f"{source!r} is not a readable GeoPackage", field=source) from exc


def _python_values(series: Any) -> list[Any]:
    """A pandas column as Python values: missing (NaN, NaT) -> None, numpy scalars unwrapped."""
    return [
        _jsonable_or_self(item)
        for item in series.astype(object).where(series.notna(), None).tolist()
    ]


def _jsonable_or_self(item: Any) -> Any:
    try:
        return _jsonable(item)
    except TypeError:
        return item  # reported (with its row) when the attribute is checked


def _point_columns(geometry: Any, errors: _Errors) -> tuple[list[Any], list[Any]]:
    """x and y of each Point; _SKIP (with an error) for anything else."""
    type_ids = shapely.get_type_id(geometry)
    empty = shapely.is_empty(geometry)
    lon: list[Any] = shapely.get_x(geometry).tolist()
    lat: list[Any] = shapely.get_y(geometry).tolist()
    for position in np.flatnonzero((type_ids != 0) | empty):
        shape = geometry[position]
        if shape is None:
            message = "geometry is null; a customer needs a Point"
        elif shape.is_empty:
            message = "geometry is empty; a customer needs a Point"
        else:
            message = f"geometry is a {shape.geom_type}; a customer needs a Point"
        errors.add(int(position), "geometry", message)
        lon[position] = lat[position] = _SKIP
    return lon, lat
