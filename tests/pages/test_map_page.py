"""The map viewer at /map in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app import demo
from app.repositories import customers
from tests import canonical
from tests.keys import bearer, make_key
from tests.pages.browser import executable

DOCS = Path(__file__).resolve().parents[2] / "docs"
LOS_ANGELES = (-118.2, 34.3)  # inside Los Angeles County
OVER_NV_UT = {  # a drawn, exclusive territory over Nevada's east and Utah's west
    "type": "Polygon",
    "coordinates": [[[-116, 38], [-112, 38], [-112, 41], [-116, 41], [-116, 38]]],
}


def _post(base: str, path: str, body: Any, key: str) -> Any:
    headers = {"Content-Type": "application/json", **bearer(key)}
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


@pytest.fixture
def partners(live_server: str, engine: Engine, clean: None, admin_key: str) -> str:
    """Customers, and a layer "partners" with overlaps and white space, assigned."""
    with Session(engine) as session:
        customers.upsert(session, batch=demo.generate(3_000, seed=7))
        session.commit()
    _post(live_server, "/layers", {"name": "partners"}, admin_key)
    for body in (
        {"name": "West Co", "states": ["CA", "NV", "OR"], "owner": "West Co"},
        canonical.feature(OVER_NV_UT, name="Acme", owner="Acme", exclusive=True),
        {"name": "Texas", "states": ["TX"], "owner": "Lone Star"},
    ):
        _post(live_server, "/layers/partners/territories", body, admin_key)
    _post(live_server, "/layers/partners/assign", {}, admin_key)
    return "partners"


def _open(live_server: str, layer: str, key: str | None) -> Iterator[tuple[Page, list[str]]]:
    """A page of /map?layer=...#key=..., ready (unless without a key), with every console error
    and page error collected."""
    errors: list[str] = []
    with sync_playwright() as p:
        # Debian's chromium, never a downloaded browser; WebGL falls back to SwiftShader.
        browser = p.chromium.launch(
            executable_path=executable(), args=["--no-sandbox", "--enable-unsafe-swiftshader"]
        )
        tab = browser.new_page(viewport={"width": 1200, "height": 800})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{live_server}/map?layer={layer}" + (f"#key={key}" if key else ""))
        if key:
            tab.wait_for_function("() => window.mapReady === true", timeout=60_000)
        yield tab, errors
        browser.close()


@pytest.fixture
def counties_page(live_server: str, admin_key: str) -> Iterator[tuple[Page, list[str]]]:
    yield from _open(live_server, "counties", admin_key)


@pytest.fixture
def partners_page(
    live_server: str, partners: str, admin_key: str
) -> Iterator[tuple[Page, list[str]]]:
    yield from _open(live_server, partners, admin_key)


def _rendered(tab: Page, layer: str) -> int:
    return int(tab.evaluate(f"() => map.queryRenderedFeatures({{layers: ['{layer}']}}).length"))


def test_the_map_draws_the_layer_offline(
    live_server: str, counties_page: tuple[Page, list[str]]
) -> None:
    tab, errors = counties_page
    html = urllib.request.urlopen(f"{live_server}/map").read().decode()
    assert "/assets/maplibre-gl/maplibre-gl.js" in html  # local assets, no CDN
    assert _rendered(tab, "territory-fill") > 1000  # the counties, from vector tiles
    colours = tab.evaluate(
        "() => new Set(map.queryRenderedFeatures({layers: ['territory-fill']})"
        ".map(f => f.properties.color)).size"
    )
    assert 4 <= colours <= 6  # the coverage colours
    legend = tab.inner_text("#legend")
    assert "overlap" in legend and "white space" in legend and "customer" in legend
    options = tab.eval_on_selector_all("#layer option", "os => os.map(o => o.value)")
    assert {"counties", "states"} <= set(options)
    assert "#key" not in tab.url  # taken off the address bar once read
    assert errors == []


def test_without_a_key_the_map_asks_for_one_and_shows_only_its_layers(
    live_server: str, partners: str, engine: Engine
) -> None:
    partner_key = make_key(engine, "read", layers=[partners], label="map test")
    for tab, errors in _open(live_server, partners, key=None):
        tab.wait_for_selector("#keyform:not([hidden])")
        assert "needs an API key" in tab.inner_text("#keyform")
        tab.fill("#keyinput", partner_key)
        tab.click("#keyform button")
        tab.wait_for_function("() => window.mapReady === true", timeout=60_000)
        options = tab.eval_on_selector_all("#layer option", "os => os.map(o => o.value)")
        assert options == [partners]  # counties and states are not this key's to see
        assert _rendered(tab, "territory-fill") >= 3
        # The 401 of the first, keyless /layers is the only error the console shows.
        assert all("401" in e for e in errors), errors


def test_overlaps_white_space_and_customers_render(
    partners_page: tuple[Page, list[str]],
) -> None:
    tab, errors = partners_page
    assert _rendered(tab, "territory-fill") >= 3
    assert _rendered(tab, "overlap-fill") >= 1  # Acme's exclusive square over Nevada
    assert _rendered(tab, "whitespace-fill") >= 1  # most states belong to nobody
    assert _rendered(tab, "customer-dots") > 100
    assert errors == []
    DOCS.mkdir(exist_ok=True)
    tab.screenshot(path=str(DOCS / "map.png"))  # the README's picture, kept current


def test_a_click_shows_the_territory_and_the_lookup(
    counties_page: tuple[Page, list[str]],
) -> None:
    tab, errors = counties_page
    x, y = tab.evaluate(
        f"() => {{ const p = map.project({list(LOS_ANGELES)}); return [p.x, p.y]; }}"
    )
    tab.mouse.click(x, y)
    tab.wait_for_function("() => document.getElementById('info').textContent.includes('lookup:')")
    text = tab.inner_text("#info")
    assert text.startswith("Los Angeles (id ")
    assert "lookup: Los Angeles" in text and "rule only" in text
    assert errors == []


def test_switching_layers(counties_page: tuple[Page, list[str]]) -> None:
    tab, errors = counties_page
    tab.select_option("#layer", "states")
    tab.wait_for_function("() => window.mapReady === true", timeout=60_000)
    names = tab.evaluate(
        "() => map.queryRenderedFeatures({layers: ['territory-fill']}).map(f => f.properties.name)"
    )
    assert "California" in names and len(set(names)) < 70
    assert errors == []
