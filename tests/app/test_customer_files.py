"""Customer input -> one validated batch: CSV, GeoJSON, JSON arrays and GeoPackage, no database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from app.customer_files import (
    MAX_ERRORS,
    CustomerBatch,
    batch_from_file,
    batch_from_json_body,
    batch_from_records,
)
from app.errors import InputError, UnsupportedMediaError

NULL_GEOMETRY = "geometry is null; a customer needs a Point"


def csv_batch(text: str, filename: str = "customers.csv") -> CustomerBatch:
    return batch_from_file(filename, text.encode("utf-8"))


def csv_error(text: str, filename: str = "customers.csv") -> InputError:
    with pytest.raises(InputError) as caught:
        csv_batch(text, filename)
    return caught.value


def feature(props: dict[str, Any] | None, geometry: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry, **extra}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


# --- CSV ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_col", "lon_col", "lat_col"),
    [
        ("external_id", "lon", "lat"),
        ("id", "lng", "latitude"),
        ("External_ID", "Longitude", "LAT"),
        (" id ", "x", "y"),
    ],
)
def test_csv_accepts_every_column_alias(id_col: str, lon_col: str, lat_col: str) -> None:
    batch = csv_batch(f"{id_col},{lat_col},{lon_col}\nc-1,30.25,-97.75\nc-2,40.5,-74.0\n")

    assert batch.external_id == ["c-1", "c-2"]
    assert batch.lon.tolist() == [-97.75, -74.0]
    assert batch.lat.tolist() == [30.25, 40.5]
    assert batch.value.tolist() == [0.0, 0.0]
    assert batch.name == [None, None]
    assert batch.attributes == [{}, {}]


def test_csv_reads_names_values_and_string_attributes() -> None:
    text = (
        "\ufeffexternal_id,name,lon,lat,value,tier,zip\n"  # Excel's BOM
        'c-1,"Acme, Inc.",-97.7,30.3,1200.50,gold,02134\n'
        "\n"  # a blank row: skipped, still counted
        "  c-2  ,  ,-98,31,,,\n"
    )
    batch = csv_batch(text)

    assert len(batch) == 2
    assert batch.external_id == ["c-1", "c-2"]
    assert batch.name == ["Acme, Inc.", None]
    assert batch.value.tolist() == [1200.5, 0.0]
    assert batch.value.dtype == np.float64
    # CSV attributes stay strings: the leading zero of a ZIP code survives.
    assert batch.attributes == [{"tier": "gold", "zip": "02134"}, {"tier": "", "zip": ""}]


def test_csv_with_semicolons_and_a_txt_name() -> None:
    batch = csv_batch("id;lat;lon;value\nA;45.5;-122.6;7\n", filename="export.TXT")

    assert batch.external_id == ["A"]
    assert (batch.lon[0], batch.lat[0], batch.value[0]) == (-122.6, 45.5, 7.0)


def test_csv_format_from_content_type_when_the_name_has_no_extension() -> None:
    batch = batch_from_file("upload", b"id,lon,lat\nk,1,2\n", "text/csv; charset=utf-8")

    assert batch.external_id == ["k"]
    assert batch.lon.tolist() == [1.0]


def test_csv_bad_rows_are_all_reported_with_spreadsheet_row_numbers() -> None:
    text = (
        "external_id,lon,lat,value\n"  # row 1
        "c-1,-97,30,10\n"  # row 2: fine
        "c-2,-97,abc,10\n"  # row 3
        "\n"  # row 4: blank
        "c-3,,30,x\n"  # row 5
        ",200,123.4,1e16\n"  # row 6
        "c-5,-97,30,nan\n"  # row 7
    )
    error = csv_error(text)

    assert error.field == "customers.csv"
    assert error.errors == [
        {"row": 3, "field": "lat", "message": "'abc' is not a number"},
        {"row": 5, "field": "lon", "message": "longitude is missing"},
        {"row": 5, "field": "value", "message": "'x' is not a number"},
        {"row": 6, "field": "external_id", "message": "external_id is missing"},
        {
            "row": 6,
            "field": "lon",
            "message": "longitude 200.0 is outside -180..180; "
            "lon/lat must be degrees (EPSG:4326), longitude first",
        },
        {
            "row": 6,
            "field": "lat",
            "message": "latitude 123.4 is outside -90..90; "
            "lon/lat must be degrees (EPSG:4326), longitude first",
        },
        {
            "row": 6,
            "field": "value",
            "message": "value 1e+16 is too large; it must be below 1e15 in absolute value",
        },
        {"row": 7, "field": "value", "message": "value nan is not a finite number"},
    ]
    assert error.message == (
        "4 rows have errors; nothing was imported: row 3 (lat): 'abc' is not a number; "
        "row 5 (lon): longitude is missing; row 5 (value): 'x' is not a number; ..."
    )


def test_csv_swapped_coordinates_get_a_hint() -> None:
    error = csv_error("id,lon,lat\nc-1,30.3,-97.7\n")

    assert error.errors == [
        {
            "row": 2,
            "field": "lat",
            "message": "latitude -97.7 is outside -90..90; are lon and lat swapped?",
        }
    ]
    assert error.message.startswith("1 row has errors; nothing was imported: row 2 (lat):")


def test_csv_non_finite_coordinates_are_errors() -> None:
    error = csv_error("id,lon,lat\na,inf,10\nb,10,NaN\n")

    assert error.errors == [
        {"row": 2, "field": "lon", "message": "longitude inf is not a finite number"},
        {"row": 3, "field": "lat", "message": "latitude nan is not a finite number"},
    ]


def test_csv_duplicate_external_ids_name_both_rows() -> None:
    error = csv_error("external_id,lon,lat\nc-1,0,0\nc-2,0,0\nc-3,0,0\n c-1 ,0,0\n")

    assert error.errors == [
        {"row": 5, "field": "external_id", "message": "external_id 'c-1' appears in rows 2 and 5"}
    ]


def test_csv_row_with_more_cells_than_the_header() -> None:
    error = csv_error("id,name,lon,lat\nc-1,Smith, John,-97,30\nc-2,Doe,-97,30,,\n")

    # Row 3's extra cells are empty (trailing commas): harmless. Row 2 lost its quotes.
    assert error.errors == [
        {
            "row": 2,
            "field": "row",
            "message": "has 5 cells but the header has 4 columns "
            "(is a value with a comma missing its quotes?)",
        },
        {"row": 2, "field": "lon", "message": "' John' is not a number"},
    ]


def test_csv_without_coordinate_columns_lists_found_and_accepted_names() -> None:
    error = csv_error("id,name,address\nc-1,Acme,1 Main St\n")

    assert error.field == "columns"
    assert "found columns: 'id', 'name', 'address'" in error.message
    assert "longitude: lon, lng, longitude, x" in error.message
    assert "latitude: lat, latitude, y" in error.message
    assert [e["field"] for e in error.errors] == ["lon", "lat"]


def test_csv_without_an_id_column() -> None:
    error = csv_error("name,lon,lat\nAcme,1,2\n")

    assert error.field == "columns"
    assert error.errors == [
        {"field": "external_id", "message": "no external_id column (accepted: external_id, id)"}
    ]


def test_errors_are_capped_but_every_bad_row_is_counted() -> None:
    rows = "".join(f"c-{i},-97,north\n" for i in range(150))
    error = csv_error("id,lon,lat\n" + rows)

    assert len(error.errors) == MAX_ERRORS == 100
    assert error.errors[0] == {"row": 2, "field": "lat", "message": "'north' is not a number"}
    assert error.errors[-1]["row"] == 101
    assert error.message.startswith("150 rows have errors; nothing was imported: row 2 (lat)")


@pytest.mark.parametrize("content", [b"", b"  \r\n\n"])
def test_empty_csv_file(content: bytes) -> None:
    with pytest.raises(InputError) as caught:
        batch_from_file("empty.csv", content)

    assert caught.value.message == "no customers in 'empty.csv': the file is empty"
    assert caught.value.field == "empty.csv"


def test_csv_with_only_a_header() -> None:
    error = csv_error("external_id,lon,lat\n\n")

    assert error.message == "no customers in 'customers.csv'"


def test_non_utf8_csv() -> None:
    content = "id,name,lon,lat\nc-1,Caf\u00e9,2.35,48.85\n".encode("latin-1")
    with pytest.raises(InputError) as caught:
        batch_from_file("paris.csv", content)

    assert caught.value.field == "paris.csv"
    assert "must be UTF-8" in caught.value.message
    assert "byte 0xe9 on line 2" in caught.value.message


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("customers.xlsx", None), ("customers.shp", "application/octet-stream"), ("blob", None)],
)
def test_unsupported_format(filename: str, content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaError) as caught:
        batch_from_file(filename, b"PK\x03\x04", content_type)

    assert caught.value.field == filename
    assert "CSV (.csv), GeoJSON (.geojson or .json) or GeoPackage (.gpkg)" in caught.value.message


def test_unreadable_geopackage() -> None:
    with pytest.raises(InputError) as caught:
        batch_from_file("broken.gpkg", b"not a database")

    assert caught.value.message == "'broken.gpkg' is not a readable GeoPackage"


def test_invalid_json_file() -> None:
    with pytest.raises(InputError) as caught:
        batch_from_file("c.geojson", b'{"type": "FeatureCollection", ')

    assert caught.value.field == "c.geojson"
    assert caught.value.message.startswith("'c.geojson' is not valid JSON")


# --- GeoJSON and JSON arrays ------------------------------------------------------------------


def test_geojson_feature_collection() -> None:
    body = {
        "type": "FeatureCollection",
        "features": [
            feature({"external_id": "a", "name": "Acme", "value": 12.5, "tier": 1}, point(-97, 30)),
            feature({"name": None, "tags": ["x"]}, point(-74.5, 40.25), id=17),
            feature({"id": "p-3"}, point(0, 0)),
            feature({"external_id": "d", "id": "other"}, point(1, 2), id="ignored"),
        ],
    }
    batch = batch_from_json_body(body)

    assert batch.external_id == ["a", "17", "p-3", "d"]
    assert batch.name == ["Acme", None, None, None]
    assert batch.lon.tolist() == [-97.0, -74.5, 0.0, 1.0]
    assert batch.lat.tolist() == [30.0, 40.25, 0.0, 2.0]
    assert batch.value.tolist() == [12.5, 0.0, 0.0, 0.0]
    assert batch.attributes == [{"tier": 1}, {"tags": ["x"]}, {}, {"id": "other"}]


def test_geojson_file_is_read_like_a_body() -> None:
    content = (
        b'{"type":"FeatureCollection","features":[{"type":"Feature","id":"z",'
        b'"properties":{},"geometry":{"type":"Point","coordinates":[-120.5,38.25]}}]}'
    )
    batch = batch_from_file("c.geojson", content)

    assert batch.external_id == ["z"]
    assert (batch.lon[0], batch.lat[0]) == (-120.5, 38.25)


def test_geojson_bad_features_are_reported_by_index() -> None:
    body = {
        "type": "FeatureCollection",
        "features": [
            feature({"external_id": "ok"}, point(-97, 30)),
            feature({"external_id": "no-geometry"}, None),
            feature({"external_id": "polygon"}, box(0, 0, 1, 1).__geo_interface__),
            feature({"external_id": "ok"}, point(40, -100)),
            {"type": "Point", "coordinates": [0, 0]},
            feature({}, point(1, 1)),
        ],
    }
    with pytest.raises(InputError) as caught:
        batch_from_json_body(body)

    assert caught.value.field == "body"
    assert caught.value.errors == [
        {"feature": 1, "field": "geometry", "message": NULL_GEOMETRY},
        {
            "feature": 2,
            "field": "geometry",
            "message": "geometry is a Polygon; a customer needs a Point",
        },
        {
            "feature": 3,
            "field": "external_id",
            "message": "external_id 'ok' appears in features 0 and 3",
        },
        {
            "feature": 3,
            "field": "lat",
            "message": "latitude -100.0 is outside -90..90; are lon and lat swapped?",
        },
        {"feature": 4, "field": "feature", "message": "expected a GeoJSON Feature object"},
        {"feature": 5, "field": "external_id", "message": "external_id is missing"},
    ]
    assert caught.value.message.startswith("5 features have errors; nothing was imported:")


@pytest.mark.parametrize(
    "body",
    [{"type": "Feature", "geometry": None}, "customers", 42, None, {"features": []}],
)
def test_body_that_is_neither_array_nor_feature_collection(body: Any) -> None:
    with pytest.raises(InputError) as caught:
        batch_from_json_body(body)

    assert caught.value.field == "body"
    assert "JSON array of customers or a GeoJSON FeatureCollection" in caught.value.message


def test_empty_body() -> None:
    with pytest.raises(InputError) as caught:
        batch_from_json_body([])

    assert caught.value.message == "no customers in the request body"
    assert caught.value.field == "body"


def test_json_array_of_records() -> None:
    body = [
        {"external_id": 17, "Lng": -97.5, "Lat": "30.5", "value": "99.90", "vip": True},
        {
            "id": " b ",
            "longitude": -80,
            "latitude": 25,
            "name": "  Bee  ",
            "attributes": {"tier": "gold"},
            "note": "x",
        },
    ]
    batch = batch_from_json_body(body)

    assert batch.external_id == ["17", "b"]
    assert batch.name == [None, "Bee"]
    assert batch.lon.tolist() == [-97.5, -80.0]
    assert batch.lat.tolist() == [30.5, 25.0]
    assert batch.value.tolist() == [99.9, 0.0]
    # An explicit "attributes" object is merged, not nested inside attributes.
    assert batch.attributes == [{"vip": True}, {"tier": "gold", "note": "x"}]


def test_json_array_errors_use_the_index() -> None:
    body = [
        {"external_id": "a", "lon": 1, "lat": 2},
        "not an object",
        {"external_id": "a", "lon": True, "lat": None, "value": float("inf")},
        {"external_id": ["x"], "lon": 1, "lat": 2},
    ]
    with pytest.raises(InputError) as caught:
        batch_from_json_body(body)

    assert caught.value.errors == [
        {"index": 1, "field": "record", "message": "expected an object, got 'not an object'"},
        {
            "index": 2,
            "field": "external_id",
            "message": "external_id 'a' appears in indexes 0 and 2",
        },
        {"index": 2, "field": "lon", "message": "true is not a number"},
        {"index": 2, "field": "lat", "message": "latitude is missing"},
        {"index": 2, "field": "value", "message": "value inf is not a finite number"},
        {
            "index": 3,
            "field": "external_id",
            "message": 'external_id must be text or a number, not ["x"]',
        },
    ]
    assert caught.value.message.startswith("3 items have errors; nothing was imported: index 1")


def test_batch_from_records_numbers_from_first_number() -> None:
    records = [{"id": "a", "x": 1, "y": 2}, {"id": "a", "x": 3, "y": 4}]
    with pytest.raises(InputError) as caught:
        batch_from_records(records, first_number=10)

    assert caught.value.errors == [
        {"row": 11, "field": "external_id", "message": "external_id 'a' appears in rows 10 and 11"}
    ]


def test_batch_is_frozen() -> None:
    batch = batch_from_records([{"id": 1, "lon": 1.5, "lat": 2.5}])

    assert len(batch) == 1
    assert batch.external_id == ["1"]
    with pytest.raises(ValueError, match="read-only"):
        batch.lon[0] = 0.0


# --- GeoPackage -----------------------------------------------------------------------------


def write_gpkg(path: Path, frame: gpd.GeoDataFrame, layer: str = "customers") -> None:
    frame.to_file(path, layer=layer, driver="GPKG")


def test_geopackage_in_degrees(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {
            "external_id": [101, 102],
            "name": ["Acme", None],
            "value": [10.5, 20.0],
            "employees": [12, 40],
            "score": [0.5, np.nan],
            "active": [True, False],
            "since": pd.to_datetime(["2024-03-01 12:30:00", None]),
        },
        geometry=[Point(-97.75, 30.25), Point(-122.5, 37.75)],
        crs="EPSG:4326",
    )
    path = tmp_path / "customers.gpkg"
    write_gpkg(path, frame)

    batch = batch_from_file("customers.gpkg", path.read_bytes())

    assert batch.external_id == ["101", "102"]
    assert batch.name == ["Acme", None]
    assert batch.lon.tolist() == [-97.75, -122.5]
    assert batch.lat.tolist() == [30.25, 37.75]
    assert batch.value.tolist() == [10.5, 20.0]
    assert batch.attributes == [
        {"employees": 12, "score": 0.5, "active": True, "since": "2024-03-01T12:30:00"},
        {"employees": 40, "score": None, "active": False, "since": None},
    ]
    assert all(type(v) in (int, float, bool, str) for v in batch.attributes[0].values())


def test_geopackage_is_reprojected_to_degrees(tmp_path: Path) -> None:
    lonlat = [(-97.7431, 30.2672), (-73.9857, 40.7484)]
    frame = gpd.GeoDataFrame(
        {"id": ["austin", "nyc"]},
        geometry=[Point(lon, lat) for lon, lat in lonlat],
        crs="EPSG:4326",
    ).to_crs("EPSG:3857")
    assert frame.geometry.x.abs().max() > 1e6  # really metres in the file
    path = tmp_path / "mercator.gpkg"
    write_gpkg(path, frame)

    batch = batch_from_file("mercator.gpkg", path.read_bytes())

    assert batch.external_id == ["austin", "nyc"]
    np.testing.assert_allclose(batch.lon, [p[0] for p in lonlat], rtol=0, atol=1e-6)
    np.testing.assert_allclose(batch.lat, [p[1] for p in lonlat], rtol=0, atol=1e-6)


def test_geopackage_uses_the_only_point_layer(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    polygons = gpd.GeoDataFrame({"code": ["T1"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326")
    points = gpd.GeoDataFrame({"id": ["p"]}, geometry=[Point(5, 6)], crs="EPSG:4326")
    write_gpkg(path, polygons, layer="territories")
    write_gpkg(path, points, layer="customers")

    batch = batch_from_file("two.gpkg", path.read_bytes())

    assert batch.external_id == ["p"]
    assert (batch.lon[0], batch.lat[0]) == (5.0, 6.0)


def test_geopackage_bad_geometries(tmp_path: Path) -> None:
    path = tmp_path / "mixed.gpkg"
    frame = gpd.GeoDataFrame(
        {"external_id": ["a", "b", "c"]},
        geometry=[Point(1, 2), box(0, 0, 1, 1), None],
        crs="EPSG:4326",
    )
    write_gpkg(path, frame)

    with pytest.raises(InputError) as caught:
        batch_from_file("mixed.gpkg", path.read_bytes())

    assert caught.value.field == "mixed.gpkg"
    assert caught.value.errors == [
        {
            "feature": 1,
            "field": "geometry",
            "message": "geometry is a Polygon; a customer needs a Point",
        },
        {"feature": 2, "field": "geometry", "message": NULL_GEOMETRY},
    ]


def test_geopackage_without_an_id_column(tmp_path: Path) -> None:
    path = tmp_path / "noid.gpkg"
    write_gpkg(path, gpd.GeoDataFrame({"label": ["a"]}, geometry=[Point(1, 2)], crs=4326))

    with pytest.raises(InputError) as caught:
        batch_from_file("noid.gpkg", path.read_bytes())

    assert caught.value.field == "columns"
    assert "found columns: 'label'" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(17, "17"), (17.0, "17"), (17.5, "17.5"), (np.int64(5), "5"), ("  c 1 ", "c 1")],
)
def test_external_ids_become_stripped_strings(raw: Any, expected: str) -> None:
    batch = batch_from_records([{"external_id": raw, "lon": 0, "lat": 0}])

    assert batch.external_id == [expected]


def test_values_postgres_cannot_store_are_named_by_row() -> None:
    records = [
        {"external_id": "x" * 257, "lon": 0, "lat": 0},
        {"external_id": "ok-1", "lon": 0, "lat": 0, "big": 10**30},
        {"external_id": "s\ud800", "lon": 0, "lat": 0},
        {"external_id": "ok-2", "lon": 0, "lat": 0, "k\ud800": 1},
        {"external_id": "ok-3", "lon": 0, "lat": 0, "note": "a\x00b"},
        {"external_id": "ok-4", "lon": 0, "lat": 0, "fine": 2**63 - 1},
        # jsonb would give 1e20 back as a 21-digit integer, which the JSON writer refuses
        {"external_id": "ok-5", "lon": 0, "lat": 0, "big": {"deep": [1e20]}},
        {"external_id": "ok-6", "lon": 0, "lat": 0, "fine": 9.2e18},
    ]
    with pytest.raises(InputError) as err:
        batch_from_json_body(records)
    assert sorted({e["index"] for e in err.value.errors}) == [0, 1, 2, 3, 4, 6]


def test_nul_and_oversized_csv_cells_are_input_errors() -> None:
    with pytest.raises(InputError) as err:
        batch_from_file("c.csv", b"external_id,lon,lat,note\na,1,1,x\x00y\n")
    assert [(e["row"], e["field"]) for e in err.value.errors] == [(2, "note")]
    huge = b"external_id,lon,lat,note\na,1,1," + b"x" * 200_000 + b"\n"
    with pytest.raises(InputError, match="line"):
        batch_from_file("c.csv", huge)
