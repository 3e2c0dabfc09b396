"""API keys for the tests: every client sends one, as every real client must."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.auth import new_key
from app.repositories import keys


def make_key(
    engine: Engine, role: str = "admin", layers: list[str] | None = None, label: str = "tests"
) -> str:
    """A new API key stored in the test database; the key itself."""
    made = new_key()
    with Session(engine) as s:
        keys.create(
            s,
            prefix=made.prefix,
            secret_sha256=made.secret_sha256,
            role=role,
            layers=layers,
            label=label,
        )
        s.commit()
    return made.token


def bearer(key: str) -> dict[str, str]:
    """Request headers carrying ``key``."""
    return {"Authorization": f"Bearer {key}"}
