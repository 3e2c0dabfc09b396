"""SQL about the database itself: versions and schema revision."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def status(session: Session) -> dict[str, str | None]:
    """PostGIS version and the schema's Alembic revision (raises if the database is down)."""
    postgis = session.scalar(text("SELECT postgis_lib_version()"))
    revision = session.scalar(text("SELECT version_num FROM alembic_version"))
    return {"postgis": postgis, "schema_revision": revision}
