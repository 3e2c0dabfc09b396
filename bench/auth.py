"""An API key for the benchmarks: the service needs one on every request, as clients do."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.auth import new_key
from app.repositories import keys

LABEL = "bench"


def admin_headers(url: str) -> dict[str, str]:
    """Request headers with a fresh admin key stored at ``url`` (earlier bench keys revoked)."""
    made = new_key()
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            for old in keys.listing(session):
                if old.label == LABEL:
                    keys.revoke(session, key_id=old.id)
            keys.create(
                session,
                prefix=made.prefix,
                secret_sha256=made.secret_sha256,
                role="admin",
                layers=None,
                label=LABEL,
            )
            session.commit()
    finally:
        engine.dispose()
    return {"Authorization": f"Bearer {made.token}"}
