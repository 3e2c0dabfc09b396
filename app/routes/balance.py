"""Balance of a layer's territories: customers, value and area, with their spread."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes.params import PROBLEMS

router = APIRouter(tags=["analysis"], responses=PROBLEMS)
