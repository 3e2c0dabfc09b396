"""Liveness and database health."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.db import SessionDep
from app.repositories import meta
from app.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def health(session: SessionDep, response: Response) -> HealthPublic:
    """Service health; 503 when the database is unreachable. X-Worker-Pid names the worker."""
    response.headers["X-Worker-Pid"] = str(os.getpid())  # which worker process answered
    try:
        found = meta.status(session)
    except SQLAlchemyError:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return HealthPublic(
            status="degraded", database={"status": "unreachable"}, version=__version__
        )
    database = {"status": "ok", **found}
    return HealthPublic(status="ok", database=database, version=__version__)
