"""Files in and out: territory import and layer export (issue 5; being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
