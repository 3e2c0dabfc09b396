#!/usr/bin/env python3
"""Build the reference US state and county boundary files (GeoParquet, EPSG:4326).

Source: the U.S. Census Bureau's 2017 cartographic boundary files as redistributed in
the npm package ``us-atlas@3.0.1`` (``states-10m.json`` and ``counties-10m.json``,
TopoJSON, unprojected lon/lat). By default the package tarball is fetched with
``npm pack`` into a temporary directory; ``--source DIR`` uses two files already on disk.

Steps:

1. read the ``states`` and ``counties`` layers with pyogrio (GDAL's TopoJSON driver
   exposes the TopoJSON feature ``id`` -- the zero-padded FIPS code -- as a string field
   named ``id`` next to the ``name`` property);
2. repair invalid rings with ``shapely.make_valid``, keep only the polygonal part, wrap
   any longitude outside [-180, 180] back into range (parts on either side of the
   antimeridian stay separate polygons), orient rings (exterior counter-clockwise) and
   force every geometry to a MultiPolygon; a feature with no area at all (us-atlas 3.0.1
   collapsed 51610 Falls Church, VA to a line) is dropped and reported;
3. attach USPS postal codes from a constant FIPS table and write
   ``data/us_states.parquet`` (fips, code, name, geometry) and
   ``data/us_counties.parquet`` (fips, name, state_fips, state_code, state_name,
   geometry), both sorted by fips;
4. read the files back, verify them and print a summary, including a sanity check that
   each state's geodesic area is within 1 % of the sum of its counties' areas.

By default the states come from the ``states`` object of ``counties-10m.json``, which
us-atlas merged from the counties topology: state and county borders coincide exactly
and each state's county areas sum to its area. ``--states-from states-10m.json`` uses
the Census state file instead (simplified on its own, so its borders differ slightly
from the counties').

Rebuild with ``.venv/bin/python scripts/build_boundaries.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyproj import Geod
from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry, BaseMultipartGeometry
from shapely.geometry.polygon import orient

PACKAGE = "us-atlas@3.0.1"
STATES_JSON = "states-10m.json"
COUNTIES_JSON = "counties-10m.json"
CRS = "EPSG:4326"
REPO_ROOT = Path(__file__).resolve().parent.parent
AREA_TOLERANCE = 0.01

# sha256 of the files inside the us-atlas 3.0.1 tarball; a mismatch stops the build
# unless --skip-checksum is given.
SOURCE_SHA256 = {
    COUNTIES_JSON: "145aaf5d1433352a6a1d8e86b5f149c7c653f9171baf14aaf75ee66575def1b0",
    STATES_JSON: "d76b391ccfa8bff601d51e3e3da5d43a89fa46cd5caca72ce731b383be5596d0",
}

# Census Bureau FIPS state codes -> USPS codes: the 50 states, DC and the territories.
STATE_CODES: dict[str, str] = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT",
    "10": "DE", "11": "DC", "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL",
    "18": "IN", "19": "IA", "20": "KS", "21": "KY", "22": "LA", "23": "ME", "24": "MD",
    "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT", "31": "NE",
    "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND",
    "39": "OH", "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD",
    "47": "TN", "48": "TX", "49": "UT", "50": "VT", "51": "VA", "53": "WA", "54": "WV",
    "55": "WI", "56": "WY",
    "60": "AS", "66": "GU", "69": "MP", "72": "PR", "74": "UM", "78": "VI",
}  # fmt: skip


class BuildError(RuntimeError):
    """The source data or the output failed a check."""


@dataclass
class RepairStats:
    """What normalising one layer's geometries changed."""

    invalid: int = 0
    wrapped: int = 0
    repaired_fips: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()  # "fips name" of features with no area in the source


# --------------------------------------------------------------------------- source


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npm_pack(dest: Path) -> Path:
    """Fetch the us-atlas tarball with ``npm pack`` into ``dest``; return the extract dir."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found on PATH; install it or pass --source DIR")
    subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=dest, check=True, stdout=sys.stderr)
    tarballs = sorted(dest.glob("us-atlas-*.tgz"))
    if len(tarballs) != 1:
        raise BuildError(f"expected one us-atlas tarball in {dest}, found {tarballs}")
    out = dest / "src"
    out.mkdir()
    with tarfile.open(tarballs[0]) as tar:
        for name in (COUNTIES_JSON, STATES_JSON):
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise BuildError(f"package/{name} missing from {tarballs[0].name}")
            (out / name).write_bytes(member.read())
    return out


@contextmanager
def source_dir(source: Path | None) -> Iterator[Path]:
    """Yield a directory holding the two TopoJSON files (temporary unless --source)."""
    if source is not None:
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="usatlas-") as tmp:
        yield npm_pack(Path(tmp))


def check_sources(src: Path, skip_checksum: bool) -> dict[str, str]:
    """Return the sha256 of both source files, failing on a mismatch with the pinned ones."""
    sums: dict[str, str] = {}
    for name, expected in SOURCE_SHA256.items():
        path = src / name
        if not path.is_file():
            raise BuildError(f"{path} not found")
        sums[name] = sha256_of(path)
        if sums[name] != expected and not skip_checksum:
            raise BuildError(
                f"{name}: sha256 {sums[name]} != pinned {expected} (use --skip-checksum)"
            )
    return sums


def read_layer(path: Path, layer: str, fips_len: int) -> gpd.GeoDataFrame:
    """Read one TopoJSON layer as (fips, name, geometry), checking the FIPS codes."""
    layers = {str(row[0]) for row in pyogrio.list_layers(path)}
    if layer not in layers:
        raise BuildError(f"{path.name}: no layer {layer!r} (has {sorted(layers)})")
    gdf = pyogrio.read_dataframe(path, layer=layer)
    missing = {"id", "name"} - set(gdf.columns)
    if missing:
        raise BuildError(f"{path.name}/{layer}: missing fields {sorted(missing)}")
    fips = gdf["id"].astype(str)
    bad = fips[(fips.str.len() != fips_len) | ~fips.str.isdigit()]
    if not bad.empty:
        raise BuildError(f"{layer}: ids not {fips_len}-digit FIPS: {sorted(bad)[:10]}")
    if fips.duplicated().any():
        raise BuildError(f"{layer}: duplicate ids {sorted(fips[fips.duplicated()])[:10]}")
    out = gpd.GeoDataFrame(
        {"fips": fips, "name": gdf["name"].astype(str)}, geometry=gdf.geometry.values
    )
    # TopoJSON carries no CRS; us-atlas's *-10m.json files are unprojected lon/lat.
    return out.set_crs(CRS, allow_override=True)


# ------------------------------------------------------------------------- geometry


def polygon_parts(geom: BaseGeometry) -> list[Polygon]:
    """The non-empty polygons in ``geom`` (lines and points are dropped)."""
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    if isinstance(geom, BaseMultipartGeometry):
        return [poly for part in geom.geoms for poly in polygon_parts(part)]
    return []


def wrap_longitudes(polys: list[Polygon]) -> tuple[list[Polygon], bool]:
    """Move parts beyond +/-180 degrees back into range, each side a separate polygon."""
    minx, _, maxx, _ = MultiPolygon(polys).bounds
    if minx >= -180.0 and maxx <= 180.0:
        return polys, False
    wrapped: list[Polygon] = []
    for shift in (-360.0, 0.0, 360.0):
        window = shapely.box(-180.0 - shift, -90.0, 180.0 - shift, 90.0)
        for poly in polys:
            piece = poly.intersection(window)
            wrapped.extend(polygon_parts(translate(piece, xoff=shift)))
    return wrapped, True


def normalise(geom: BaseGeometry | None, stats: RepairStats, fips: str) -> MultiPolygon | None:
    """Repair, wrap, orient and convert one geometry to a valid MultiPolygon.

    Returns None when the source geometry has no area at all (collapsed by simplification).
    """
    if geom is None or geom.is_empty:
        return None
    if not geom.is_valid:
        stats.invalid += 1
        stats.repaired_fips += (fips,)
        geom = shapely.make_valid(geom)
    polys, wrapped = wrap_longitudes(polygon_parts(geom))
    stats.wrapped += wrapped
    if not polys:
        return None
    multi = MultiPolygon([orient(p, sign=1.0) for p in polys])
    if not multi.is_valid:  # parts that overlap after wrapping: merge them
        multi = MultiPolygon([orient(p, 1.0) for p in polygon_parts(shapely.union_all(polys))])
    return multi


def normalise_layer(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, RepairStats]:
    """Normalise every geometry of a layer, dropping (and recording) those with no area."""
    stats = RepairStats()
    geoms = [
        normalise(geom, stats, fips) for geom, fips in zip(gdf.geometry, gdf["fips"], strict=True)
    ]
    keep = [g is not None for g in geoms]
    dropped = gdf.loc[[not k for k in keep]]
    stats.dropped = tuple(f"{f} {n}" for f, n in zip(dropped["fips"], dropped["name"], strict=True))
    out = gdf.loc[keep].copy()
    kept = [g for g in geoms if g is not None]
    out = out.set_geometry(gpd.GeoSeries(kept, index=out.index, crs=CRS))
    return out, stats


# --------------------------------------------------------------------------- tables


def build_states(raw: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """States table: fips, code, name, geometry (sorted by fips)."""
    unknown = sorted(set(raw["fips"]) - STATE_CODES.keys())
    if unknown:
        raise BuildError(f"state FIPS codes without a postal code: {unknown}")
    states = raw.assign(code=raw["fips"].map(STATE_CODES))
    states = states[["fips", "code", "name", "geometry"]]
    return states.sort_values("fips", ignore_index=True)


def build_counties(raw: gpd.GeoDataFrame, states: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Counties table: fips, name, state_fips, state_code, state_name, geometry."""
    counties = raw.assign(state_fips=raw["fips"].str[:2])
    orphans = sorted(set(counties["state_fips"]) - set(states["fips"]))
    if orphans:
        raise BuildError(f"counties whose state FIPS is not in the states file: {orphans}")
    lookup = states.set_index("fips")
    counties["state_code"] = counties["state_fips"].map(lookup["code"])
    counties["state_name"] = counties["state_fips"].map(lookup["name"])
    cols = ["fips", "name", "state_fips", "state_code", "state_name", "geometry"]
    return counties[cols].sort_values("fips", ignore_index=True)


def write(gdf: gpd.GeoDataFrame, path: Path) -> int:
    """Write GeoParquet (geometry column ``geometry``, CRS EPSG:4326); return its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for col in gdf.columns.drop("geometry"):
        gdf[col] = gdf[col].astype(object)  # plain UTF-8 strings in every pandas version
    gdf.to_parquet(path, index=False, compression="snappy")
    return path.stat().st_size


# ------------------------------------------------------------------------- checking


def verify_file(path: Path, columns: list[str], fips_len: int) -> gpd.GeoDataFrame:
    """Read an output back and check its layout and geometries."""
    gdf = gpd.read_parquet(path)
    problems: list[str] = []
    if list(gdf.columns) != columns:
        problems.append(f"columns {list(gdf.columns)} != {columns}")
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        problems.append(f"crs {gdf.crs}")
    if not gdf["fips"].is_monotonic_increasing or gdf["fips"].str.len().ne(fips_len).any():
        problems.append("fips not sorted or wrong length")
    geom = gdf.geometry
    if not (geom.geom_type == "MultiPolygon").all():
        problems.append(f"geometry types {geom.geom_type.value_counts().to_dict()}")
    if (~geom.is_valid).any() or geom.is_empty.any():
        problems.append(f"invalid/empty: {list(gdf.loc[~geom.is_valid | geom.is_empty, 'fips'])}")
    minx, miny, maxx, maxy = geom.total_bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        problems.append(f"coordinates out of range: {geom.total_bounds}")
    if problems:
        raise BuildError(f"{path}: " + "; ".join(problems))
    return gdf


def geodesic_areas(geoms: gpd.GeoSeries) -> pd.Series:
    """Geodesic area (km^2, WGS84) of each geometry; rings are oriented counter-clockwise."""
    geod = Geod(ellps="WGS84")
    areas = [abs(geod.geometry_area_perimeter(g)[0]) / 1e6 for g in geoms]
    return pd.Series(areas, index=geoms.index)


def area_check(states: gpd.GeoDataFrame, counties: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per state: geodesic area, sum of its counties' areas and their relative difference."""
    state_km2 = geodesic_areas(states.geometry).set_axis(states["fips"])
    county_km2 = geodesic_areas(counties.geometry).groupby(counties["state_fips"].values).sum()
    table = pd.DataFrame({"code": states["code"].values, "state_km2": state_km2})
    table["counties_km2"] = county_km2.reindex(table.index)
    table["rel_diff"] = (table["counties_km2"] - table["state_km2"]) / table["state_km2"]
    return table


def report_areas(table: pd.DataFrame) -> None:
    """Print the states without counties and those outside the area tolerance."""
    no_counties = table[table["counties_km2"].isna()]
    failing = table[table["rel_diff"].abs() > AREA_TOLERANCE]
    worst = table["rel_diff"].abs().idxmax()
    print(
        f"area check (sum of county areas vs state area, tolerance {AREA_TOLERANCE:.0%}): "
        f"{len(table) - len(failing) - len(no_counties)}/{len(table)} states pass; "
        f"largest difference {table.loc[worst, 'code']} {table.loc[worst, 'rel_diff']:+.4%}"
    )
    for fips, row in no_counties.iterrows():
        print(f"  {fips} {row['code']}: no counties in the counties file")
    for fips, row in failing.iterrows():
        print(
            f"  {fips} {row['code']}: state {row['state_km2']:,.0f} km2, "
            f"counties {row['counties_km2']:,.0f} km2 ({row['rel_diff']:+.3%})"
        )


def report_antimeridian(counties: gpd.GeoDataFrame) -> None:
    """Print the features that have parts on both sides of the 180 degree meridian."""
    bounds = counties.geometry.bounds
    straddling = counties[(bounds["minx"] < -170) & (bounds["maxx"] > 170)]
    for _, row in straddling.iterrows():
        parts = list(row.geometry.geoms)
        east = sum(p.bounds[0] > 0 for p in parts)
        print(
            f"antimeridian: {row['fips']} {row['name']} ({row['state_code']}) bounds "
            f"{tuple(round(v, 4) for v in row.geometry.bounds)}: {len(parts)} polygons, "
            f"{east} east of 180 (positive lon), {len(parts) - east} west (negative lon)"
        )


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Build data/us_states.parquet and data/us_counties.parquet from "
        f"{PACKAGE} (Census 2017 cartographic boundaries, TopoJSON).",
    )
    parser.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help=f"directory holding {COUNTIES_JSON} and {STATES_JSON} "
        f"(default: fetch {PACKAGE} with 'npm pack' into a temporary directory)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=REPO_ROOT / "data",
        metavar="DIR",
        help="where to write the two GeoParquet files (default: %(default)s)",
    )
    parser.add_argument(
        "--states-from",
        choices=[STATES_JSON, COUNTIES_JSON],
        default=COUNTIES_JSON,
        help=f"file whose 'states' layer becomes us_states.parquet: {COUNTIES_JSON} "
        "(default; states merged from the counties, so state and county boundaries "
        f"coincide exactly) or {STATES_JSON} (the Census state file, simplified on its "
        "own, so its borders differ slightly from the counties')",
    )
    parser.add_argument(
        "--skip-checksum",
        action="store_true",
        help="accept source files whose sha256 differs from the pinned us-atlas 3.0.1 ones",
    )
    return parser.parse_args(argv)


def build(src: Path, args: argparse.Namespace) -> None:
    """Read, normalise, write, verify and summarise."""
    out_dir: Path = args.out_dir
    sums = check_sources(src, args.skip_checksum)
    states, state_stats = normalise_layer(read_layer(src / args.states_from, "states", 2))
    counties, county_stats = normalise_layer(read_layer(src / COUNTIES_JSON, "counties", 5))
    states = build_states(states)
    counties = build_counties(counties, states)

    outputs = {"us_states.parquet": states, "us_counties.parquet": counties}
    sizes = {name: write(gdf, out_dir / name) for name, gdf in outputs.items()}
    states = verify_file(out_dir / "us_states.parquet", ["fips", "code", "name", "geometry"], 2)
    counties = verify_file(
        out_dir / "us_counties.parquet",
        ["fips", "name", "state_fips", "state_code", "state_name", "geometry"],
        5,
    )

    for name, digest in sums.items():
        print(f"source {name}: sha256 {digest}")
    print(f"states layer taken from {args.states_from}")
    for label, stats in (("states", state_stats), ("counties", county_stats)):
        print(
            f"{label}: {stats.invalid} invalid geometries repaired with make_valid "
            f"{sorted(stats.repaired_fips)}; {stats.wrapped} wrapped into [-180, 180]; "
            f"{len(stats.dropped)} dropped as empty (no area in the source) {list(stats.dropped)}"
        )
    print(f"states: {len(states)} rows; counties: {len(counties)} rows")
    for name, size in sizes.items():
        print(f"wrote {out_dir / name}: {size:,} bytes, sha256 {sha256_of(out_dir / name)}")
    report_antimeridian(counties)
    report_areas(area_check(states, counties))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    try:
        with source_dir(args.source) as src:
            build(src, args)
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build_boundaries: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
