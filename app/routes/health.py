"""Liveness and database health."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.db import SessionDep
from app.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def health(session: SessionDep, response: Response) -> HealthPublic:
    """Service health; 503 when the database is unreachable."""
    try:
        postgis = session.scalar(text("SELECT postgis_lib_version()"))
        revision = session.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return HealthPublic(
            status="degraded", database={"status": "unreachable"}, version=__version__
        )
    database = {"status": "ok", "postgis": postgis, "schema_revision": revision}
    return HealthPublic(status="ok", database=database, version=__version__)
