"""An API key for the benchmarks: the service needs one on every request, as clients do."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.auth import issue

LABEL = "bench"


def admin_headers(url: str) -> dict[str, str]:
    """Request headers with a fresh admin key stored at ``url`` (earlier bench keys revoked)."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            _, token = issue(session, role="admin", layers=None, label=LABEL, replace=True)
            session.commit()
    finally:
        engine.dispose()
    return {"Authorization": f"Bearer {token}"}
