"""Loading the reference US boundaries (``data/``) into PostGIS and the two ready layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy.orm import Session

from app.repositories import boundaries as repo

STATES_FILE = "us_states.parquet"
COUNTIES_FILE = "us_counties.parquet"
# Counties of the Census list that the source data has no area for (data/README.md).
ABSENT_COUNTIES = {
    "51610": "Falls Church city, VA has no area at the source's 1:10,000,000 scale; "
    "its ground is in Fairfax County, 51059",
}
LAYERS = (("states", "state", "US states"), ("counties", "county", "US counties"))


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    states: int
    counties: int
    layers: dict[str, int]  # territories added (or reset) per layer


def read_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Boundary rows (states then counties) from the committed GeoParquet files."""
    # Imported here, not by every worker that imports this module for ABSENT_COUNTIES.
    import geopandas as gpd  # noqa: PLC0415

    states = gpd.read_parquet(data_dir / STATES_FILE)
    counties = gpd.read_parquet(data_dir / COUNTIES_FILE)
    rows = [
        {"fips": f, "level": "state", "name": n, "state_fips": f, "state_code": c, "wkb": w}
        for f, n, c, w in zip(
            states["fips"], states["name"], states["code"], shapely.to_wkb(states.geometry.values),
            strict=True,
        )
    ]  # fmt: skip
    rows += [
        {"fips": f, "level": "county", "name": n, "state_fips": s, "state_code": c, "wkb": w}
        for f, n, s, c, w in zip(
            counties["fips"], counties["name"], counties["state_fips"], counties["state_code"],
            shapely.to_wkb(counties.geometry.values), strict=True,
        )
    ]  # fmt: skip
    return rows


def is_loaded(session: Session, *, data_dir: Path) -> bool:
    """True when the boundaries and both layers hold every row of the data files."""
    import pyarrow.parquet as pq  # noqa: PLC0415  (see read_rows)

    # The parquet footer knows the row count: no geometry is read.
    n_states = pq.ParquetFile(data_dir / STATES_FILE).metadata.num_rows
    n_counties = pq.ParquetFile(data_dir / COUNTIES_FILE).metadata.num_rows
    stored = repo.counts(session)
    return (
        stored.get("state") == n_states
        and stored.get("county") == n_counties
        and repo.layer_count(session, name="states", level="state") == n_states
        and repo.layer_count(session, name="counties", level="county") == n_counties
    )


def load(
    session: Session,
    *,
    data_dir: Path,
    reset: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Upsert every boundary; add what the "states" and "counties" layers lack (or reset them)."""
    rows = read_rows(data_dir)
    repo.upsert(session, rows=rows, progress=progress)
    built = {
        name: repo.build_layer(session, name=name, level=level, title=title, reset=reset)
        for name, level, title in LAYERS
    }
    counts = repo.counts(session)
    return LoadResult(states=counts.get("state", 0), counties=counts.get("county", 0), layers=built)
