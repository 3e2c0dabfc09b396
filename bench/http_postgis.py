"""The HTTP benchmark's contender: ``GET /lookup`` that asks PostGIS on every request.

A tiny FastAPI app, served by uvicorn with the same settings and worker count as ours
(``uvicorn bench.http_postgis:app``, database from ``DATABASE_URL`` or
``TERRITORY_DATABASE_URL``). Each worker keeps a pool of ``BENCH_POOL_SIZE`` (default 4)
autocommit psycopg connections and runs one prepared statement per request, with the same
ownership rule as ours (``_POINT_SQL`` of bench/bench_assign.py: ``ST_Covers``, then priority,
area, id). It answers only the owner's id: less work than ours, which also names the owner and
lists every covering territory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, HTTPException, Query

from app.notify import conninfo

# The same statement as bench_assign._POINT_SQL (bench_http checks they are equal); not
# imported, so a worker does not load geopandas & co. for nothing.
POINT_SQL = (
    "SELECT t.id FROM territories t WHERE t.layer_id = %s "
    "AND ST_Covers(t.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) "
    "ORDER BY t.priority, t.area_m2, t.id LIMIT 1"
)
LAYER_SQL = "SELECT id FROM layers WHERE name = %s"


class Pool:
    """A fixed set of open async connections, handed out one request at a time."""

    def __init__(self) -> None:
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self._all: list[psycopg.AsyncConnection[Any]] = []
        self.layer_ids: dict[str, int | None] = {}

    async def open(self, dsn: str, size: int) -> None:
        """Open ``size`` autocommit connections."""
        for _ in range(size):
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
            self._all.append(conn)
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        """Close every connection."""
        for conn in self._all:
            await conn.close()

    async def owner(self, layer: str, lon: float, lat: float) -> int | None:
        """The owner's id (None: no territory covers the point); 404 for an unknown layer."""
        conn = await self._idle.get()
        try:
            if layer not in self.layer_ids:
                row = await (await conn.execute(LAYER_SQL, (layer,))).fetchone()
                self.layer_ids[layer] = row[0] if row else None
            layer_id = self.layer_ids[layer]
            if layer_id is None:
                raise HTTPException(404, f"no layer named {layer!r}")
            cur = await conn.execute(POINT_SQL, (layer_id, lon, lat), prepare=True)
            row = await cur.fetchone()
        finally:
            self._idle.put_nowait(conn)
        return None if row is None else int(row[0])


pool = Pool()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Open the pool for the worker's life."""
    url = os.environ.get("TERRITORY_DATABASE_URL") or os.environ["DATABASE_URL"]
    await pool.open(conninfo(url), int(os.environ.get("BENCH_POOL_SIZE", "4")))
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(title="PostGIS per request (benchmark contender)", lifespan=lifespan)


@app.get("/lookup")
async def lookup(
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    layer: Annotated[str, Query()],
) -> dict[str, Any]:
    """The owner of one point, asked of PostGIS."""
    owner = await pool.owner(layer, lon, lat)
    return {"layer": layer, "point": [lon, lat], "owner": None if owner is None else {"id": owner}}


@app.get("/health")
async def health() -> dict[str, str]:
    """Up (the pool is open once the lifespan has run)."""
    return {"status": "ok"}
