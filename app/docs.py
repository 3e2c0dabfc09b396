"""The interactive API docs at /docs, served from local assets (the machine may be offline)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)
ASSETS_URL = "/assets/swagger-ui"


def install(app: FastAPI, *, assets_dir: Path) -> None:
    """Serve Swagger UI at /docs from ``assets_dir/swagger-ui-dist`` (npm), or a CDN if absent."""
    swagger = assets_dir / "swagger-ui-dist"
    if (swagger / "swagger-ui-bundle.js").exists():
        app.mount(ASSETS_URL, StaticFiles(directory=swagger), name="swagger-ui")
        js, css, icon = (
            f"{ASSETS_URL}/swagger-ui-bundle.js",
            f"{ASSETS_URL}/swagger-ui.css",
            f"{ASSETS_URL}/favicon-32x32.png",
        )
    else:
        log.warning("%s missing (run ./scripts/run to install it): /docs uses a CDN", swagger)
        js = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
        css = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
        icon = "https://fastapi.tiangolo.com/img/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=js,
            swagger_css_url=css,
            swagger_favicon_url=icon,
        )
