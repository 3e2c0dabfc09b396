"""Layer health: slivers, gaps, non-contiguous territories, holes and invalid shapes."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes.params import PROBLEMS

router = APIRouter(tags=["analysis"], responses=PROBLEMS)
