"""The map viewer at /map: MapLibre GL JS from local assets (npm), no CDN (may be offline)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)
ASSETS_URL = "/assets/maplibre-gl"
PAGE = Path(__file__).parent / "static" / "map.html"


def install(app: FastAPI, *, assets_dir: Path) -> None:
    """Serve the viewer at /map and MapLibre's files from ``assets_dir/maplibre-gl/dist``."""
    dist = assets_dir / "maplibre-gl" / "dist"
    if (dist / "maplibre-gl.js").exists():
        app.mount(ASSETS_URL, StaticFiles(directory=dist), name="maplibre-gl")
    else:
        log.warning("%s missing (run ./scripts/run to install it): /map will not draw", dist)
    html = PAGE.read_text(encoding="utf-8")

    @app.get("/map", include_in_schema=False)
    def map_viewer() -> HTMLResponse:
        return HTMLResponse(html)
