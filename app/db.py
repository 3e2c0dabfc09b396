"""Database access: engine, sessions, migrations and the embedded default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from geoalchemy2 import alembic_helpers
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from app import embedded
from app.models import ASSIGNMENT_PARTITION_PREFIX
from app.settings import PROJECT_ROOT, Settings


def resolve_database_url(settings: Settings) -> str:
    """The configured database URL; with none, start the embedded cluster and use it."""
    if settings.database.url:
        return _normalise_url(settings.database.url)
    embedded.ensure_running(settings.embedded)
    embedded.wait_ready(settings.embedded)
    return embedded.ensure_database(settings.embedded)


def _normalise_url(url: str) -> str:
    # DATABASE_URL is usually libpq-style (postgres://...); SQLAlchemy needs the psycopg driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# An unreachable server (network lost, host down) fails a connection in 5 s, a 503 with
# Retry-After, instead of the kernel's two minutes of SYN retries; and a connection whose peer
# vanished (a failover, a half-open TCP connection) is found dead by TCP keepalives in ~1 min.
CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def make_engine(
    url: str, settings: Settings, *, pool_size: int | None = None, pool_timeout: float = 30
) -> Engine:
    """An engine with a bounded pool and a statement timeout, so no request hangs forever.

    ``pool_size``: connections kept (and as many more on demand); the settings' by default.
    ``pool_timeout``: seconds a checkout waits for a free connection before a 503.
    """
    # JIT off: the planner costs a bbox page of 1,000 customers high enough to JIT-compile it,
    # which doubled its time (bench/RESULTS.md); our queries are short and index-driven.
    # Custom plans always: psycopg prepares a statement after its 5th run, and PostgreSQL then
    # may settle on a generic plan that cannot see the bound values: a vector tile's
    # ST_TileEnvelope(:z, :x, :y) estimates as "any box", and tile p95 went from 8 to 40 ms
    # (z4: 114 ms). Planning each run costs well under a millisecond for our short queries.
    options = (
        f"-c statement_timeout={settings.database.statement_timeout_ms} -c jit=off"
        " -c plan_cache_mode=force_custom_plan"
    )
    return create_engine(
        url,
        pool_size=pool_size or settings.database.pool_size,
        max_overflow=pool_size or settings.database.pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={"options": options, **CONNECT_ARGS},
    )


def alembic_config() -> Config:
    """Alembic configuration of the project (migrations/)."""
    return Config(str(PROJECT_ROOT / "alembic.ini"))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's object filter: GeoAlchemy2's, minus the per-layer partitions of assignments.

    Those partitions are made and dropped with their layers at run time, not by migrations.
    """
    if type_ == "table" and name and name.startswith(ASSIGNMENT_PARTITION_PREFIX):
        return False
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (idempotent); the only way the schema changes."""
    cfg = alembic_config()
    with engine.begin() as conn:
        # Several workers may start at once: one migrates, the others wait, then find nothing to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('territory-migrations'))"))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; the route commits once, anything unfinished is rolled back."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
