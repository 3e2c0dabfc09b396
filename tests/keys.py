"""API keys for the tests: every client sends one, as every real client must."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.auth import issue


def make_key(
    engine: Engine, role: str = "admin", layers: list[str] | None = None, label: str = "tests"
) -> str:
    """A new API key stored in the test database; the key itself."""
    with Session(engine) as s:
        _, token = issue(s, role=role, layers=layers, label=label)
        s.commit()
    return token


def bearer(key: str) -> dict[str, str]:
    """Request headers carrying ``key``."""
    return {"Authorization": f"Bearer {key}"}
