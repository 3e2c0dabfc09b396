"""Territory files over HTTP: import from every format (all or nothing), export, round trips.

Every file is built here, with geopandas and pyogrio, as a user's GIS would write it.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import orjson
import pandas as pd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import InputError, PayloadTooLargeError
from app.territory_files import ImportOptions, read_territories
from tests import canonical

LAYER = "plan"
TOLERANCE = 1e-7  # degrees

# Three territories in the Great Plains: a square, one with a hole, a two-part one.
SHAPES = [
    box(-104.05, 37.0, -102.05, 39.0),
    Polygon(
        [(-102.0, 37.0), (-100.0, 37.0), (-100.0, 39.0), (-102.0, 39.0)],
        [[(-101.5, 37.5), (-101.5, 38.5), (-100.5, 38.5), (-100.5, 37.5)]],
    ),
    MultiPolygon([box(-99.9, 37.0, -99.0, 38.0), box(-98.9, 38.123456789, -98.0, 39.0)]),
]
FIELDS = {
    "name": ["North", "Ring", "Islands"],
    "owner": ["Ann", None, "Bo"],
    "priority": [1, 0, 5],
    "exclusive": [True, False, False],
    "tier": ["gold", "silver", "bronze"],
}


@pytest.fixture
def plan(client: TestClient) -> TestClient:
    """A client with an empty layer called 'plan'."""
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    return client


def frame(crs: str = "EPSG:4326", **changes: list[Any]) -> gpd.GeoDataFrame:
    """The three territories (``changes`` replace columns) in ``crs``."""
    data = {**FIELDS, **changes}
    geometry = data.pop("geometry", SHAPES)
    return gpd.GeoDataFrame(data, geometry=geometry, crs="EPSG:4326").to_crs(crs)


def geojson_file(gdf: gpd.GeoDataFrame) -> bytes:
    features = [
        {
            "type": "Feature",
            "geometry": mapping(geom) if geom is not None else None,
            "properties": {k: v for k, v in row.items() if k != "geometry"},
        }
        for geom, (_, row) in zip(gdf.geometry, gdf.iterrows(), strict=True)
    ]
    return orjson.dumps(
        {"type": "FeatureCollection", "features": features}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def ogr_file(gdf: gpd.GeoDataFrame, driver: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pyogrio.write_dataframe(gdf, buffer, driver=driver, layer="territories", **options)
    return buffer.getvalue()


def parquet_file(gdf: gpd.GeoDataFrame) -> bytes:
    buffer = io.BytesIO()
    gdf.to_parquet(buffer)
    return buffer.getvalue()


def shapefile_zip(
    gdf: gpd.GeoDataFrame, tmp_path: Path, *, folder: str = "", prj: bool = True
) -> bytes:
    """The shapefile's parts zipped (under ``folder``), with a macOS resource fork beside."""
    out = tmp_path / "shp"
    out.mkdir(exist_ok=True)
    gdf.to_file(out / "regions.shp")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(out.iterdir()):
            if part.suffix == ".prj" and not prj:
                continue
            archive.write(part, f"{folder}{part.name}")
        archive.writestr(f"__MACOSX/{folder}._regions.shp", b"\x00\x05\x16\x07junk")
    return buffer.getvalue()


def upload(
    client: TestClient,
    filename: str,
    content: bytes,
    *,
    layer: str = LAYER,
    content_type: str = "application/octet-stream",
    **params: Any,
) -> Any:
    return client.post(
        f"/layers/{layer}/import", files={"file": (filename, content, content_type)}, params=params
    )


def stored(session: Session, layer: str = LAYER) -> list[dict[str, Any]]:
    session.rollback()  # a fresh snapshot: see what the requests committed
    rows = session.execute(
        text(
            "SELECT t.id, t.name, t.owner, t.priority, t.exclusive, t.properties, "
            "ST_AsBinary(t.geom) AS wkb FROM territories t JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = :n ORDER BY t.id"
        ),
        {"n": layer},
    ).all()
    session.rollback()
    return [{**row._asdict(), "geom": shapely.from_wkb(bytes(row.wkb))} for row in rows]


def assert_same_shapes(rows: list[dict[str, Any]], shapes: list[Any]) -> None:
    assert len(rows) == len(shapes)
    for row, expected in zip(rows, shapes, strict=True):
        assert row["geom"].geom_type == "MultiPolygon"
        assert shapely.hausdorff_distance(row["geom"], expected) < TOLERANCE, row["name"]
        assert abs(row["geom"].area - expected.area) < TOLERANCE


def assert_three_imported(session: Session, *, layer: str = LAYER) -> None:
    rows = stored(session, layer)
    assert [r["name"] for r in rows] == FIELDS["name"]
    assert [r["owner"] for r in rows] == FIELDS["owner"]
    assert [r["priority"] for r in rows] == FIELDS["priority"]
    assert [r["exclusive"] for r in rows] == FIELDS["exclusive"]
    assert [r["properties"].get("tier") for r in rows] == FIELDS["tier"]
    assert_same_shapes(rows, SHAPES)


# --- import, format by format ------------------------------------------------------------------


BUILDERS: dict[str, tuple[str, Callable[[gpd.GeoDataFrame], bytes]]] = {
    "geojson": ("regions.geojson", geojson_file),
    "gpkg": ("regions.gpkg", lambda g: ogr_file(g, "GPKG")),
    "parquet": ("regions.parquet", parquet_file),
    "kml": ("regions.kml", lambda g: ogr_file(g, "LIBKML")),
    "csv": (
        "regions.csv",
        lambda g: ogr_file(g, "CSV", layer_options={"GEOMETRY": "AS_WKT"}),
    ),
}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_import_each_format(plan: TestClient, session: Session, kind: str) -> None:
    filename, build = BUILDERS[kind]
    response = upload(plan, filename, build(frame()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["imported"] == 3
    assert body["removed"] == 0
    assert body["assigned"] is None
    assert len(body["territory_ids"]) == 3
    assert_three_imported(session)


@pytest.mark.parametrize("folder", ["", "export/regions/"])
def test_import_zipped_shapefile_flat_or_in_a_folder(
    plan: TestClient, session: Session, tmp_path: Path, folder: str
) -> None:
    content = shapefile_zip(frame(), tmp_path, folder=folder)
    response = upload(plan, "regions.zip", content, content_type="application/zip")
    assert response.status_code == 200, response.text
    assert_three_imported(session)


def test_shapefile_in_albers_is_reprojected_like_postgis(
    plan: TestClient, session: Session, tmp_path: Path
) -> None:
    albers = frame("EPSG:5070")
    response = upload(plan, "albers.zip", shapefile_zip(albers, tmp_path))
    assert response.status_code == 200, response.text
    rows = stored(session)
    for row, original in zip(rows, albers.geometry, strict=True):
        distance = session.scalar(
            text(
                "SELECT ST_HausdorffDistance(ST_GeomFromWKB(:got, 4326), "
                "ST_Transform(ST_GeomFromWKB(:src, 5070), 4326))"
            ),
            {"got": shapely.to_wkb(row["geom"]), "src": shapely.to_wkb(original)},
        )
        assert distance is not None and distance < TOLERANCE
    assert_same_shapes(rows, SHAPES)


def test_geojson_with_a_legacy_crs_member_is_reprojected(
    plan: TestClient, session: Session
) -> None:
    body = orjson.loads(geojson_file(frame("EPSG:3857")))
    body["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    response = upload(plan, "mercator.geojson", orjson.dumps(body))
    assert response.status_code == 200, response.text
    assert_same_shapes(stored(session), SHAPES)


def test_shapefile_without_prj_needs_a_crs(
    plan: TestClient, session: Session, tmp_path: Path
) -> None:
    content = shapefile_zip(frame(), tmp_path, prj=False)
    refused = upload(plan, "noprj.zip", content)
    assert refused.status_code == 422
    assert ".prj" in refused.json()["detail"]
    assert "crs=" in refused.json()["detail"]
    assert stored(session) == []

    accepted = upload(plan, "noprj.zip", content, crs="EPSG:4326")
    assert accepted.status_code == 200, accepted.text
    assert_three_imported(session)


def test_a_given_crs_must_agree_with_the_declared_one(plan: TestClient, tmp_path: Path) -> None:
    content = shapefile_zip(frame("EPSG:5070"), tmp_path)
    response = upload(plan, "albers.zip", content, crs="EPSG:4326")
    assert response.status_code == 422
    assert "EPSG:5070" in response.json()["detail"]
    assert upload(plan, "albers.zip", content, crs="nonsense").status_code == 422


def test_kml_folders_are_all_read(plan: TestClient, session: Session) -> None:
    gdf = frame()
    buffer = io.BytesIO()
    pyogrio.write_dataframe(gdf.iloc[:2], buffer, driver="LIBKML", layer="west")
    first = buffer.getvalue()
    # A second folder: the LIBKML writer appends a layer to an existing file only on disk,
    # so the two Documents are put together by hand, as Google Earth nests folders.
    other = io.BytesIO()
    pyogrio.write_dataframe(gdf.iloc[2:], other, driver="LIBKML", layer="east")
    east = other.getvalue().decode()
    inner = east[east.index('<Document id="east">') : east.rindex("</Document>")]
    schema = east[east.index("<Schema") : east.index("</Schema>") + len("</Schema>")]
    merged = first.decode().replace("</Document>\n</kml>", "") + inner + "</Document>\n</kml>"
    merged = merged.replace('<Document id="west">', schema + '<Document id="west">', 1)
    response = upload(plan, "folders.kml", merged.encode())
    assert response.status_code == 200, response.text
    assert sorted(r["name"] for r in stored(session)) == sorted(FIELDS["name"])


def test_kmz_is_read(plan: TestClient, session: Session) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("doc.kml", ogr_file(frame(), "LIBKML"))
    response = upload(plan, "regions.kmz", buffer.getvalue())
    assert response.status_code == 200, response.text
    assert_three_imported(session)


def test_raw_body_with_a_content_type(plan: TestClient, session: Session) -> None:
    response = plan.post(
        f"/layers/{LAYER}/import",
        content=geojson_file(frame()),
        headers={"Content-Type": "application/geo+json"},
    )
    assert response.status_code == 200, response.text
    gpkg = plan.post(
        f"/layers/{LAYER}/import",
        content=ogr_file(frame(), "GPKG"),
        headers={"Content-Type": "application/octet-stream"},  # magic bytes tell
    )
    assert gpkg.status_code == 200, gpkg.text
    assert len(stored(session)) == 6


def test_field_names_in_any_case_and_loose_types(plan: TestClient, session: Session) -> None:
    gdf = frame()
    gdf = gdf.rename(columns={"name": "NAME", "owner": "Owner"})
    gdf["priority"] = ["1", "0", "5"]  # text, as KML and CSV carry it
    gdf["exclusive"] = [1, 0, 0]  # a shapefile has no booleans
    response = upload(plan, "loose.gpkg", ogr_file(gdf, "GPKG"))
    assert response.status_code == 200, response.text
    assert_three_imported(session)


# --- bad files: 4xx naming the feature or the file problem, and nothing written ---------------


def _bad_feature_file(index: int, **column: Any) -> bytes:
    gdf = frame()
    for name, value in column.items():
        values = list(gdf[name]) if name != "geometry" else list(gdf.geometry)
        values[index] = value
        gdf = frame(**{**{k: list(gdf[k]) for k in FIELDS}, name: values})
    return geojson_file(gdf)


BOWTIE = shape(canonical.BOWTIE)


@pytest.mark.parametrize(
    ("filename", "content", "status", "expected"),
    [
        ("bowtie.geojson", _bad_feature_file(1, geometry=BOWTIE), 422, "Self-intersection"),
        ("point.geojson", _bad_feature_file(2, geometry=shapely.Point(1, 2)), 422, "got Point"),
        ("noname.geojson", _bad_feature_file(0, name=None), 422, "properties.name"),
        ("garbage.gpkg", b"\x00garbage" * 100, 422, "not a readable GeoPackage"),
        ("garbage.bin", b"\x00garbage" * 100, 415, "cannot read"),
        ("garbage.parquet", b"\x00garbage" * 100, 422, "not a readable Parquet"),
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [', 422, "not valid JSON"),
        ("plain.parquet", b"", 422, "not GeoParquet"),
        ("nothing.zip", b"", 422, "holds no Shapefile"),
        ("half.zip", b"", 422, "needs its .dbf"),
        ("empty.geojson", b'{"type": "FeatureCollection", "features": []}', 422, "no territories"),
    ],
)
def test_bad_files_write_nothing(  # noqa: PLR0917
    plan: TestClient,
    session: Session,
    tmp_path: Path,
    filename: str,
    content: bytes,
    status: int,
    expected: str,
) -> None:
    if filename == "plain.parquet":
        buffer = io.BytesIO()
        pd.DataFrame({"name": ["a"]}).to_parquet(buffer)
        content = buffer.getvalue()
    elif filename == "nothing.zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("readme.txt", "no shapes here")
        content = buffer.getvalue()
    elif filename == "half.zip":
        full = zipfile.ZipFile(io.BytesIO(shapefile_zip(frame(), tmp_path)))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for info in full.infolist():
                if not info.filename.endswith(".dbf"):
                    archive.writestr(info, full.read(info))
        content = buffer.getvalue()
    assert upload(plan, "before.geojson", geojson_file(frame().iloc[:1])).status_code == 200
    before = stored(session)

    response = upload(plan, filename, content)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert expected in response.json()["detail"]
    assert [r["id"] for r in stored(session)] == [r["id"] for r in before]


def test_every_bad_feature_is_listed_with_its_name(plan: TestClient, session: Session) -> None:
    gdf = frame(
        name=["North", "Ring", None],
        geometry=[SHAPES[0], BOWTIE, shapely.Point(0, 0)],
        priority=[1, "high", 5],
    )
    response = upload(plan, "many.geojson", geojson_file(gdf))
    assert response.status_code == 422
    problem = response.json()
    assert problem["detail"].startswith("2 features have errors in 'many.geojson'")
    assert "nothing was imported" in problem["detail"]
    errors = problem["errors"]
    assert [(e["feature"], e["name"]) for e in errors] == [(1, "Ring"), (2, None)]
    assert errors[0]["field"] == "properties.priority"
    assert stored(session) == []


def test_repair_makes_a_bow_tie_valid(plan: TestClient, session: Session) -> None:
    content = geojson_file(frame().iloc[:1].set_geometry([BOWTIE], crs="EPSG:4326"))
    assert upload(plan, "bowtie.geojson", content).status_code == 422
    response = upload(plan, "bowtie.geojson", content, repair="true")
    assert response.status_code == 200, response.text
    assert stored(session)[0]["geom"].is_valid


def test_out_of_range_after_reprojection_is_named(plan: TestClient) -> None:
    gdf = frame(geometry=[SHAPES[0], box(0, 0, 1e9, 1e9), SHAPES[2]])
    content = ogr_file(gdf.set_crs("EPSG:5070", allow_override=True), "GPKG")
    response = upload(plan, "far.gpkg", content)
    assert response.status_code == 422
    assert [e["feature"] for e in response.json()["errors"]] == [1]


def test_unknown_layer_is_404(client: TestClient) -> None:
    response = upload(client, "a.geojson", geojson_file(frame()), layer="nope")
    assert response.status_code == 404


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    content = shapefile_zip(frame(), tmp_path)
    with pytest.raises(PayloadTooLargeError, match="unzips to"):
        read_territories("big.zip", content, options=ImportOptions(max_unzipped_bytes=100))


def test_several_shapefiles_need_a_choice(tmp_path: Path) -> None:
    one = zipfile.ZipFile(io.BytesIO(shapefile_zip(frame(), tmp_path)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in one.infolist():
            archive.writestr(f"a/{info.filename}", one.read(info))
            archive.writestr(f"b/{info.filename}", one.read(info))
    with pytest.raises(InputError, match="2 Shapefiles"):
        read_territories("two.zip", buffer.getvalue())


# --- modes and assignments -------------------------------------------------------------------


def test_replace_mode_swaps_the_layer(plan: TestClient, session: Session) -> None:
    assert upload(plan, "a.geojson", geojson_file(frame())).status_code == 200
    old_ids = [r["id"] for r in stored(session)]
    response = upload(plan, "b.geojson", geojson_file(frame().iloc[:2]), mode="replace")
    assert response.status_code == 200, response.text
    assert response.json()["removed"] == 3
    rows = stored(session)
    assert [r["name"] for r in rows] == FIELDS["name"][:2]
    assert not {r["id"] for r in rows} & set(old_ids)


def _customers(client: TestClient) -> None:
    points = [("in-north", -103.0, 38.0), ("in-hole", -101.0, 38.0), ("in-ring", -101.8, 37.2)]
    body = [{"external_id": e, "lon": x, "lat": y, "value": 10} for e, x, y in points]
    assert client.post("/customers", json=body).status_code == 200


def _owners(session: Session) -> dict[str, str]:
    session.rollback()
    rows = session.execute(
        text(
            "SELECT c.external_id, t.name FROM assignments a JOIN customers c "
            "ON c.id = a.customer_id JOIN territories t ON t.id = a.territory_id "
            "JOIN layers l ON l.id = a.layer_id WHERE l.name = :n"
        ),
        {"n": LAYER},
    ).all()
    session.rollback()  # hold no lock on assignments: an import swaps their partition
    return dict(rows)


def test_a_kept_assigned_layer_is_assigned_again(plan: TestClient, session: Session) -> None:
    _customers(plan)
    assert plan.post(f"/layers/{LAYER}/assign").status_code == 200
    where = {"lon": -103.0, "lat": 38.0, "layer": LAYER}
    assert plan.get("/lookup", params=where).json()["owner"] is None  # the index is built
    response = upload(plan, "a.geojson", geojson_file(frame()))
    assert response.status_code == 200, response.text
    assert response.json()["assigned"] == 2
    assert _owners(session) == {"in-north": "North", "in-ring": "Ring"}
    # Look-ups see the new territories at once.
    assert plan.get("/lookup", params=where).json()["owner"]["name"] == "North"

    moved = frame(name=["Ring2", "North2", "Islands2"], geometry=[SHAPES[1], SHAPES[0], SHAPES[2]])
    response = upload(plan, "b.geojson", geojson_file(moved), mode="replace")
    assert response.status_code == 200, response.text
    assert _owners(session) == {"in-north": "North2", "in-ring": "Ring2"}


# --- export ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("geojson", "application/geo+json"),
        ("gpkg", "application/geopackage+sqlite3"),
        ("csv", "text/csv; charset=utf-8"),
        ("parquet", "application/vnd.apache.parquet"),
    ],
)
def test_export_round_trip(plan: TestClient, session: Session, fmt: str, media_type: str) -> None:
    _customers(plan)
    assert upload(plan, "a.geojson", geojson_file(frame())).status_code == 200
    assert plan.post(f"/layers/{LAYER}/assign").status_code == 200

    response = plan.get(f"/layers/{LAYER}/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    extension = "geojson" if fmt == "geojson" else fmt
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{LAYER}-territories.{extension}"'
    )
    exported = _read_export(fmt, response.content)
    assert list(exported["name"]) == FIELDS["name"]
    assert [int(n) for n in exported["customer_count"]] == [1, 1, 0]
    assert [float(v) for v in exported["customer_value"]] == [10.0, 10.0, 0.0]
    assert float(exported["area_km2"].iloc[0]) == pytest.approx(38_500, rel=0.05)

    assert plan.post("/layers", json={"name": "copy"}).status_code == 201
    again = upload(plan, f"{LAYER}-territories.{extension}", response.content, layer="copy")
    assert again.status_code == 200, again.text
    original, copy = stored(session), stored(session, "copy")
    for key in ("name", "owner", "priority", "exclusive", "properties"):
        assert [r[key] for r in copy] == [r[key] for r in original], key
    assert_same_shapes(copy, [r["geom"] for r in original])


def _read_export(fmt: str, content: bytes) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(content))
    if fmt == "parquet":
        return gpd.read_parquet(io.BytesIO(content))
    return read_ogr(content)


def read_ogr(content: bytes) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an in-memory GeoPackage's name
        return pyogrio.read_dataframe(io.BytesIO(content))


@pytest.mark.parametrize("fmt", ["csv", "gpkg", "parquet", "geojson"])
def test_export_assignments(plan: TestClient, fmt: str) -> None:
    _customers(plan)
    assert upload(plan, "a.geojson", geojson_file(frame())).status_code == 200
    assert plan.post(f"/layers/{LAYER}/assign").status_code == 200

    response = plan.get(f"/layers/{LAYER}/export", params={"format": fmt, "what": "assignments"})
    assert response.status_code == 200, response.text
    assert f'filename="{LAYER}-assignments.' in response.headers["content-disposition"]
    table = _read_export(fmt, response.content).sort_values("external_id")
    assert list(table["external_id"]) == ["in-north", "in-ring"]
    assert list(table["territory_name"]) == ["North", "Ring"]
    assert list(table["rule"]) == ["only", "only"]
    assert [float(v) for v in table["value"]] == [10.0, 10.0]
    assert [float(v) for v in table["lon"]] == [-103.0, -101.8]
    if fmt != "csv":
        assert list(table.geometry.x) == [-103.0, -101.8]


def test_export_errors(plan: TestClient) -> None:
    assert plan.get("/layers/nope/export").status_code == 404
    assert plan.get(f"/layers/{LAYER}/export", params={"format": "shp"}).status_code == 422
    never = plan.get(f"/layers/{LAYER}/export", params={"what": "assignments"})
    assert never.status_code == 404
    assert "never been assigned" in never.json()["detail"]
    empty = plan.get(f"/layers/{LAYER}/export", params={"format": "gpkg"})
    assert empty.status_code == 200
    assert len(read_ogr(empty.content)) == 0


def test_export_keeps_nested_properties_in_geojson(plan: TestClient, session: Session) -> None:
    feature = canonical.feature(canonical.SQUARE, name="Deep", tags=["a", "b"], meta={"k": 1})
    assert plan.post(f"/layers/{LAYER}/territories", json=feature).status_code == 201
    exported = plan.get(f"/layers/{LAYER}/export").json()
    props = exported["features"][0]["properties"]
    assert props["tags"] == ["a", "b"]
    assert props["meta"] == {"k": 1}
    assert plan.post("/layers", json={"name": "copy"}).status_code == 201
    again = upload(plan, "x.geojson", orjson.dumps(exported), layer="copy")
    assert again.status_code == 200, again.text
    assert stored(session, "copy")[0]["properties"] == {"tags": ["a", "b"], "meta": {"k": 1}}
    # Tabular formats carry them as JSON text.
    table = read_ogr(plan.get(f"/layers/{LAYER}/export", params={"format": "gpkg"}).content)
    assert orjson.loads(table["meta"].iloc[0]) == {"k": 1}
