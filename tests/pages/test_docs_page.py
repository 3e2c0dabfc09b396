"""The API docs page, rendered by a real headless browser from local assets."""

from __future__ import annotations

import urllib.request

from tests.pages.browser import render


def test_docs_render_every_resource_offline(live_server: str) -> None:
    html = urllib.request.urlopen(f"{live_server}/docs").read().decode()
    assert "/assets/swagger-ui/swagger-ui-bundle.js" in html  # local, not a CDN
    page = render(f"{live_server}/docs")
    assert 'class="swagger-ui"' in page.dom
    for tag in ("layers", "territories", "customers", "health"):
        assert f'id="operations-tag-{tag}"' in page.dom, tag
    assert "/layers/{layer}/territories" in page.dom
    errors = [line for line in page.console if "Uncaught" in line or "ERROR" in line]
    assert errors == []
