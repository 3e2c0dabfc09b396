"""Bulk assignment of customers to a layer's territories."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from app.assign import assign_layer
from app.db import SessionDep
from app.indexes import IndexDep
from app.routes.params import PROBLEMS
from app.schemas import AssignPublic

router = APIRouter(tags=["assignments"], responses=PROBLEMS)


@router.post("/layers/{layer}/assign", response_model=AssignPublic)
def assign(layer: str, session: SessionDep, registry: IndexDep) -> AssignPublic:
    """Assign every customer to the territory that owns it, in one transaction, with counts."""
    entry = registry.refresh(layer)  # the layer as stored now, not as this worker last saw it
    result = assign_layer(session, entry=entry)
    session.commit()
    return AssignPublic(**asdict(result))
