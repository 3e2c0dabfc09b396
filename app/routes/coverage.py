"""Coverage map of a layer: its territories with stats and colours, as GeoJSON."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes.params import PROBLEMS

router = APIRouter(tags=["analysis"], responses=PROBLEMS)
