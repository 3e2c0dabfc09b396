"""``create_app(settings)``: builds the FastAPI app; the lifespan opens the database."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.orm import sessionmaker

from app import __version__, docs, errors, mapview, observability
from app import coverage as coverage_maps
from app.auth import Authenticate, KeyRing, Principal, Role
from app.cache import LruCache
from app.db import make_engine, migrate, resolve_database_url
from app.edits import EditQueue
from app.fastlookup import LookupFastPath
from app.indexes import IndexRegistry
from app.limits import BodySizeLimit
from app.notify import ChangeListener, conninfo
from app.routes import (
    apikeys,
    assignments,
    balance,
    coverage,
    customers,
    files,
    health,
    layers,
    lookup,
    metrics,
    ogc,
    overlaps,
    territories,
    tiles,
    validate,
    whitespace,
)
from app.settings import Settings
from app.shedding import HeavyWorkLimit

DESCRIPTION = """
Who owns this place, this customer, this market, and where nobody does.

Territories (US states, counties and custom polygons) live in **layers** (one territory plan
each). Customers are geocoded points with a value. Geometries are GeoJSON (RFC 7946):
longitude first, WGS 84. Errors are `application/problem+json` naming the field, row or
coordinate at fault.
"""


def tune_gc(settings: Settings) -> None:
    """Collect young garbage every ``settings.api.gc_threshold`` allocations (the worker's)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.api.gc_threshold, older, oldest)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app for ``settings`` (read from the environment when not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_gc(settings)
        url = resolve_database_url(settings)
        engine = make_engine(url, settings)
        migrate(engine)
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        # The keys in use, in memory: look-ups stay authorised while the database is away. A
        # key not held yet is read through an engine of its own, one connection (and one more
        # on demand): a flood of made-up keys queues there (503 after 5 s), never starves the
        # pool requests use.
        key_engine = make_engine(url, settings, pool_size=1, pool_timeout=5)
        app.state.keys = KeyRing(sessionmaker(key_engine, expire_on_commit=False))
        app.state.keys.load()
        # Index builds read through connections of their own. A request holding a pooled
        # connection may wait for a refresh (registry.current); a refresh asking the same
        # pool for a second connection deadlocked both workers once ~10 map reads did that
        # after an edit (bench/bench_load.py). Refreshes run one at a time (the registry's
        # lock), so a pool of one, with one more on demand, is never waited on for long.
        index_engine = make_engine(url, settings, pool_size=1)
        app.state.indexes = IndexRegistry(sessionmaker(index_engine, expire_on_commit=False))
        if settings.index.warm:
            warmed = app.state.indexes.warm()
            coverage_maps.warm(app.state.cache, app.state.indexes, warmed)
        # Territory edits are applied in batches per layer (app/edits.py), through connections
        # of their own: one batch per layer at once, so a layer's edits never wait for a map
        # read's connection, nor take one (a second layer's batch may open a second one).
        edit_engine = make_engine(url, settings, pool_size=1)
        app.state.edits = EditQueue(
            sessionmaker(edit_engine, expire_on_commit=False), app.state.indexes
        )
        listener = ChangeListener(
            conninfo(url), app.state.indexes.changed, on_keys=app.state.keys.changed
        )
        listener.start()
        app.state.change_listener = listener
        try:
            yield
        finally:
            listener.stop()
            key_engine.dispose()
            index_engine.dispose()
            edit_engine.dispose()
            engine.dispose()

    app = FastAPI(
        title=settings.api.title,
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by app.docs from local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.cache = LruCache(max_entries=64)  # computed answers (coverage maps), per worker
    errors.install(app)
    docs.install(app, assets_dir=settings.api.assets_dir)
    mapview.install(app, assets_dir=settings.api.assets_dir)
    app.add_middleware(LookupFastPath)  # GET /lookup's hot path, ahead of routing
    app.add_middleware(
        HeavyWorkLimit,  # maps, tiles, edits: bounded, queued, else 503 (never /lookup)
        max_running=settings.api.heavy_running,
        max_queued=settings.api.heavy_queued,
        max_wait_s=settings.api.heavy_wait_s,
        max_writing=settings.api.write_running,
        max_writes_queued=settings.api.write_queued,
        max_write_wait_s=settings.api.write_wait_s,
        max_editing=settings.api.edit_running,
        max_edits_queued=settings.api.edit_queued,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    # Outside the look-up path and the body limit: who is calling is settled first, and a
    # request without a valid key is answered 401 before its body is read.
    app.add_middleware(Authenticate, anonymous=_anonymous(settings))
    if settings.api.cors_origins:
        # Added last, so outermost: it answers preflights and tags every answer, the fast
        # look-up path's included.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-API-Key"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
            max_age=600,
        )
    # Outermost of ours: ids, logs and counts every answer, the ones above and CORS's included.
    observability.install(app, settings.log)
    analysis = (coverage, overlaps, whitespace, validate, balance)  # issue 4
    ecosystem = (ogc, tiles, files)  # issue 5
    for module in (
        health,
        metrics,
        apikeys,
        layers,
        territories,
        customers,
        assignments,
        lookup,
        *analysis,
        *ecosystem,
    ):
        app.include_router(module.router)
    return app


def _anonymous(settings: Settings) -> Principal | None:
    """The principal of requests without a key: a reader when anonymous reads are on."""
    if not settings.auth.anonymous_read:
        return None
    layers = frozenset(settings.auth.anonymous_layers) or None
    return Principal(role=Role.READ, layers=layers)
