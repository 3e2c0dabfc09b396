"""White space: the uncovered part of a market, and where its neglected potential lies."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes.params import PROBLEMS

router = APIRouter(tags=["analysis"], responses=PROBLEMS)
