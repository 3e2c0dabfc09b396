"""Overlaps (channel conflicts) between a layer's territories, as GeoJSON."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes.params import PROBLEMS

router = APIRouter(tags=["analysis"], responses=PROBLEMS)
