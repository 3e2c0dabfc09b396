"""SQL of vector tiles: a layer's territories and the customers as Mapbox Vector Tiles (MVT).

PostGIS makes the tiles (``ST_AsMVT``): shapes are clipped to the tile plus a buffer,
simplified for the zoom and moved to web mercator tile units in the database, so only the
tile's bytes cross the wire. Per-territory attributes PostGIS does not hold (the colour) or
that cost a scan (customer counts) are passed in as arrays the caller keeps per version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.cache import LruCache

EXTENT = 4096  # tile units per tile side (the MVT default)
BUFFER = 64  # tile units drawn beyond each edge, so strokes at the edges join up
EARTH_RADIUS_M = 6378137.0  # web mercator's sphere (EPSG:3857), metres
# Below this zoom customers come as grid clusters (count, value sum) rather than points: a z4
# tile of a million customers would be ~10 MB of points, a grid keeps it under 4,096 features.
CLUSTER_BELOW_ZOOM = 10
CLUSTER_CELL = 64  # tile units per cluster cell (4 px of a 256-px tile): 64 x 64 cells a tile

# The tile envelope (web mercator) and the same plus its buffer in lon/lat degrees, where the
# GiST index of geom lives. Mercator's axes map to lon/lat axes, so the latter is a box too.
# Its corners are converted by hand, not by ST_Transform: that wraps the buffer of the first or
# last column of tiles past ±180° to the other side, and the box then misses the whole tile.
_BOUNDS = f"""
bounds AS MATERIALIZED (
  SELECT ST_TileEnvelope(:z, :x, :y) AS tile,
         ST_MakeEnvelope(
           degrees(ST_XMin(m) / {EARTH_RADIUS_M}),
           degrees(2 * atan(exp(ST_YMin(m) / {EARTH_RADIUS_M})) - pi() / 2),
           degrees(ST_XMax(m) / {EARTH_RADIUS_M}),
           degrees(2 * atan(exp(ST_YMax(m) / {EARTH_RADIUS_M})) - pi() / 2),
           4326) AS search
  FROM ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}) AS m
)"""

# Each territory is clipped to the searched box before it is simplified and projected: a state
# at z10 is then a few hundred vertices, not its whole outline, and no point beyond mercator's
# ±85.05° (which it cannot project) reaches ST_Transform. Simplification keeps collapsed
# parts (preserveCollapsed), so a county smaller than the tolerance still draws as a dot.
_TERRITORIES = f"""
WITH {_BOUNDS},
attrs AS MATERIALIZED (
  SELECT * FROM unnest(CAST(:ids AS int8[]), CAST(:colors AS int2[]), CAST(:counts AS int4[]))
    AS a(id, color, customer_count)
),
mvt AS MATERIALIZED (
  SELECT t.id, t.name, t.owner, a.customer_count, a.color,
         ST_AsMVTGeom(
           ST_Transform(ST_Simplify(ST_ClipByBox2D(t.geom, b.search), :tol_deg, true), 3857),
           b.tile, {EXTENT}, {BUFFER}, true) AS geom
  FROM territories t
  JOIN bounds b ON t.geom && b.search
  LEFT JOIN attrs a ON a.id = t.id
  WHERE t.layer_id = :layer_id
)
SELECT ST_AsMVT(mvt.*, 'territories', {EXTENT}, 'geom', 'id') FROM mvt WHERE geom IS NOT NULL
"""

_CUSTOMERS = f"""
WITH {_BOUNDS},
mvt AS MATERIALIZED (
  SELECT c.id, c.value::float8 AS value, 1 AS count,
         ST_AsMVTGeom(ST_Transform(c.geom, 3857), b.tile, {EXTENT}, {BUFFER}, true) AS geom
  FROM customers c JOIN bounds b ON c.geom && b.search
)
SELECT ST_AsMVT(mvt.*, 'customers', {EXTENT}, 'geom', 'id') FROM mvt WHERE geom IS NOT NULL
"""

# One feature per occupied grid cell, at the mean position of its customers (web mercator).
# The cell is found from the point's tile coordinates, so cells line up across tiles.
# Mercator by arithmetic, not ST_Transform per point: at z4 a tile holds ~200,000 of a million
# customers and PROJ per row was most of the tile's time. x = R λ, y = R ln tan(π/4 + φ/2),
# the spherical web mercator EPSG:3857 uses; the search box keeps φ within ±85.06°.
_CLUSTERS = f"""
WITH {_BOUNDS},
grid AS MATERIALIZED (
  SELECT ST_XMin(tile) AS x0, ST_YMin(tile) AS y0,
         (ST_XMax(tile) - ST_XMin(tile)) / :cells AS cell, search
  FROM bounds
),
pts AS MATERIALIZED (
  SELECT m.px, m.py, c.value,
         floor((m.px - g.x0) / g.cell) AS cx, floor((m.py - g.y0) / g.cell) AS cy
  FROM customers c
  JOIN grid g ON c.geom && g.search
  CROSS JOIN LATERAL (
    SELECT {EARTH_RADIUS_M} * radians(ST_X(c.geom)) AS px,
           {EARTH_RADIUS_M} * ln(tan(pi() / 4 + radians(ST_Y(c.geom)) / 2)) AS py
  ) AS m
),
cells AS (
  SELECT count(*)::int4 AS count, sum(value)::float8 AS value, avg(px) AS px, avg(py) AS py
  FROM pts GROUP BY cx, cy
),
mvt AS MATERIALIZED (
  SELECT count, value,
         ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(px, py), 3857), b.tile, {EXTENT}, {BUFFER}, true)
           AS geom
  FROM cells CROSS JOIN bounds b
)
SELECT ST_AsMVT(mvt.*, 'customers', {EXTENT}, 'geom') FROM mvt WHERE geom IS NOT NULL
"""


def simplify_tolerance_deg(z: int) -> float:
    """Simplification tolerance at zoom ``z``, degrees: a quarter of a 256-px pixel there.

    A pixel spans 360 / (256 * 2^z) degrees of longitude at any latitude (fewer of latitude
    away from the equator, where the quarter pixel grows to about half at 60°).
    """
    return 360.0 / (256 * 2**z) / 4


@dataclass(frozen=True)
class TerritoryAttributes:
    """Colour and customer count per territory id, as PostgreSQL array literals (parallel).

    Literals, made once per layer version: psycopg adapting three lists of 3,230 ints on
    every tile cost ~1.3 ms of the ~5 ms of a z10 counties tile; one string each costs 0.2.
    """

    ids: str
    colors: str
    counts: str

    @classmethod
    def of(
        cls, ids: Iterable[int], colors: Iterable[int], counts: Iterable[int]
    ) -> TerritoryAttributes:
        """The attributes of territories ``ids`` (parallel iterables of ints)."""

        def literal(values: Iterable[int]) -> str:
            return "{" + ",".join(str(int(v)) for v in values) + "}"

        return cls(literal(ids), literal(colors), literal(counts))


def territory_tile(
    session: Session, *, layer_id: int, z: int, x: int, y: int, attributes: TerritoryAttributes
) -> bytes:
    """The layer's MVT tile z/x/y: one ``territories`` layer, feature id = territory id, with
    name, owner, and customer_count and color from ``attributes``.

    Empty bytes when no territory meets the tile (``ST_AsMVT`` of no rows is empty, not NULL).
    """
    params = {
        "layer_id": layer_id,
        "z": z,
        "x": x,
        "y": y,
        "tol_deg": simplify_tolerance_deg(z),
        "ids": attributes.ids,
        "colors": attributes.colors,
        "counts": attributes.counts,
    }
    return bytes(session.scalar(text(_TERRITORIES), params) or b"")


TILE_CACHE_ENTRIES = 256  # layer tiles kept per worker: ~10-100 kB each, so ~25 MB at most
_TILE_CACHE_LOCK = threading.Lock()


def cached_tile(state: Any, tag: str, make: Callable[[], bytes]) -> bytes:
    """The layer tile named ``tag`` (its ETag), made by ``make`` once per worker.

    Kept in a cache of the app's own (``state``: the app's state), apart from its cache of
    answers: tiles are many and small, maps few and large, and neither should push the other
    out. Concurrent requests for the same tile wait for the one being made (single flight):
    after an edit every client revalidates its tiles at once.
    """
    with _TILE_CACHE_LOCK:
        cache = getattr(state, "tile_cache", None)
        if cache is None:
            cache = state.tile_cache = LruCache(max_entries=TILE_CACHE_ENTRIES)
    found: bytes = cache.get_or_make(("tile", tag), make)
    return found


def customer_tile(session: Session, *, z: int, x: int, y: int) -> bytes:
    """The customers' MVT tile z/x/y: one ``customers`` layer of points.

    From ``CLUSTER_BELOW_ZOOM`` on, one point per customer (feature id = customer id; value,
    count = 1); below it, one point per occupied grid cell (count, value = their sum).
    Empty bytes when no customer is in the tile.
    """
    params: dict[str, int] = {"z": z, "x": x, "y": y}
    if z < CLUSTER_BELOW_ZOOM:
        params["cells"] = EXTENT // CLUSTER_CELL
        return bytes(session.scalar(text(_CLUSTERS), params) or b"")
    return bytes(session.scalar(text(_CUSTOMERS), params) or b"")


def layer_bounds(session: Session, *, layer_id: int) -> tuple[float, float, float, float] | None:
    """The layer's extent (west, south, east, north; degrees), None when it has no territory."""
    row = session.execute(
        text(
            "SELECT ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n "
            "FROM (SELECT ST_Extent(geom) AS e FROM territories WHERE layer_id = :l) x"
        ),
        {"l": layer_id},
    ).one()
    return None if row.w is None else (float(row.w), float(row.s), float(row.e), float(row.n))


def customer_bounds(session: Session) -> tuple[float, float, float, float] | None:
    """The customers' extent (degrees), the planner's estimate: no scan of a million points."""
    row = session.execute(
        text(
            "SELECT ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n "
            "FROM (SELECT ST_EstimatedExtent('public', 'customers', 'geom') AS e) x"
        )
    ).one()
    return None if row.w is None else (float(row.w), float(row.s), float(row.e), float(row.n))
