"""API keys: created, listed and revoked by admins (the CLI does the same: `territory keys`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from app.auth import ADMIN, issue
from app.db import SessionDep
from app.models import ApiKey
from app.repositories import keys as repo
from app.routes.params import BIGINT_MAX, PROBLEMS
from app.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic

router = APIRouter(prefix="/keys", tags=["keys"], responses=PROBLEMS, dependencies=[ADMIN])
KeyId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="API key id")]


def public(key: ApiKey) -> KeyPublic:
    """A stored key as the API shows it."""
    return KeyPublic(
        id=key.id,
        prefix=key.prefix,
        role=key.role,  # the table's CHECK keeps it read, write or admin
        layers=key.layers,
        label=key.label,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """Create a key; the answer holds the key itself, shown this once only."""
    key, token = issue(session, role=body.role, layers=body.layers, label=body.label)
    session.commit()
    return KeyCreated(**public(key).model_dump(), key=token)


@router.get("", response_model=KeyList)
def list_keys(
    session: SessionDep,
    revoked: Annotated[bool, Query(description="Include revoked keys")] = False,
) -> KeyList:
    """The keys (never the keys themselves: their prefixes, roles and layers)."""
    return KeyList(keys=[public(k) for k in repo.listing(session, include_revoked=revoked)])


@router.get("/{key_id}", response_model=KeyPublic)
def get_key(key_id: KeyId, session: SessionDep) -> KeyPublic:
    """One key."""
    return public(repo.get(session, key_id=key_id))


@router.delete("/{key_id}", response_model=KeyPublic)
def revoke_key(key_id: KeyId, request: Request, session: SessionDep) -> KeyPublic:
    """Revoke a key: this worker refuses it at once, the others when the commit's NOTIFY lands."""
    key = repo.revoke(session, key_id=key_id)
    session.commit()
    request.app.state.keys.forget(key.prefix)
    return public(key)
