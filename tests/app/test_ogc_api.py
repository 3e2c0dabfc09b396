"""OGC API - Features under /ogc: documents, keyset paging, filters, and a real client (GDAL)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import urllib.request
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.routes.ogc import CONFORMANCE
from tests import canonical
from tests.keys import bearer

CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"


def _json(client: TestClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def _rel(doc: dict[str, Any], rel: str) -> list[dict[str, str]]:
    return [link for link in doc["links"] if link["rel"] == rel]


def _all_pages(client: TestClient, url: str) -> list[dict[str, Any]]:
    """Every page, following the next links as a client does."""
    pages = []
    next_url: str | None = url
    while next_url:
        page = _json(client, next_url)
        pages.append(page)
        following = _rel(page, "next")
        next_url = following[0]["href"] if following else None
    return pages


def test_landing_page_and_conformance(client: TestClient) -> None:
    landing = _json(client, "/ogc")
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    assert all(link["href"].startswith("http") for link in landing["links"])  # absolute (GDAL)
    conformance = _json(client, _rel(landing, "conformance")[0]["href"])
    assert CORE in conformance["conformsTo"] and conformance["conformsTo"] == CONFORMANCE
    api = client.get(_rel(landing, "service-desc")[0]["href"])
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    paths = api.json()["paths"]
    # Relative to /ogc, with the standard's parameter name: GDAL looks the filters up there.
    params = {p["name"] for p in paths["/collections/{collectionId}/items"]["get"]["parameters"]}
    assert {"bbox", "limit", "datetime", "owner", "name"} <= params


def test_collections_are_the_layers_customers_and_boundaries(client: TestClient) -> None:
    body = _json(client, "/ogc/collections")
    ids = [c["id"] for c in body["collections"]]
    assert ids[-3:] == ["customers", "us-states", "us-counties"]
    assert {"states", "counties"} <= set(ids)
    counties = _json(client, "/ogc/collections/counties")
    west, south, east, north = counties["extent"]["spatial"]["bbox"][0]
    assert west < -170 and east > 170 and -15 < south < 0 and 71 < north < 72  # to Samoa
    assert counties["itemType"] == "feature"
    assert any(x["rel"] == "items" and x["type"] == "application/geo+json"
               for x in counties["links"])  # fmt: skip
    missing = client.get("/ogc/collections/nowhere")
    assert missing.status_code == 404 and "collectionId" in missing.text


def test_every_county_through_the_next_links(client: TestClient, session: Session) -> None:
    truth = session.execute(
        text(
            "SELECT t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = 'counties' ORDER BY t.id"
        )
    ).scalars()
    expected = list(truth)
    session.rollback()
    pages = _all_pages(client, "/ogc/collections/counties/items?limit=1000")
    assert [p["numberReturned"] for p in pages][:-1] == [1000] * (len(pages) - 1)
    assert all(p["numberMatched"] == len(expected) for p in pages)
    assert [f["id"] for p in pages for f in p["features"]] == expected  # each once, in order
    first = pages[0]["features"][0]
    assert first["geometry"]["type"] == "MultiPolygon" and "owner" in first["properties"]
    response = client.get("/ogc/collections/counties/items?limit=2")
    assert response.headers["content-type"] == "application/geo+json"


def test_bbox_and_property_filters_match_sql(client: TestClient, session: Session) -> None:
    box = (-120.0, 34.0, -117.0, 35.0)
    truth = session.scalar(
        text(
            "SELECT count(*) FROM territories t JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = 'counties' AND ST_Intersects(t.geom, ST_MakeEnvelope(:a,:b,:c,:d,4326))"
        ),
        dict(zip("abcd", box, strict=True)),
    )
    session.rollback()
    url = "/ogc/collections/counties/items?limit=100&bbox=" + ",".join(map(str, box))
    page = _json(client, url)
    assert page["numberMatched"] == truth == page["numberReturned"]
    assert "Los Angeles" in {f["properties"]["name"] for f in page["features"]}
    named = _json(client, "/ogc/collections/counties/items?name=Los%20Angeles")
    assert [f["properties"]["name"] for f in named["features"]] == ["Los Angeles"]
    across = _json(client, "/ogc/collections/counties/items?bbox=179,50,-179,55&limit=100")
    assert across["numberMatched"] > 0  # the Aleutians, across the antimeridian
    assert {f["properties"]["code"] for f in across["features"]} == {"02016"}


def test_datetime_filters_on_the_last_change(client: TestClient) -> None:
    assert client.post("/layers", json={"name": "plan"}).status_code == 201
    created = client.post(
        "/layers/plan/territories", json=canonical.feature(canonical.SQUARE, name="sq", owner="A")
    ).json()
    stamp = created["properties"]["updated_at"]
    hit = _json(client, f"/ogc/collections/plan/items?datetime={stamp.replace('+', '%2B')}")
    assert [f["id"] for f in hit["features"]] == [created["id"]]
    assert (
        _json(client, "/ogc/collections/plan/items?datetime=../2000-01-01T00:00:00Z")["features"]
        == []
    )
    assert (
        _json(client, "/ogc/collections/plan/items?datetime=2000-01-01T00:00:00Z/..")[
            "numberMatched"
        ]
        == 1
    )
    one = _json(client, f"/ogc/collections/plan/items/{created['id']}")
    assert one["properties"]["owner"] == "A" and _rel(one, "collection")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=0,10,1,5", "bbox"),
        ("datetime=yesterday", "datetime"),
        ("datetime=2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", "datetime"),
        ("colour=red", "colour"),
        ("external_id=x", "external_id"),  # a customers' filter, not a layer's
        ("f=xml", "f"),
    ],
)
def test_bad_parameters_are_400_naming_them(client: TestClient, query: str, field: str) -> None:
    response = client.get(f"/ogc/collections/counties/items?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.text


def test_unknown_feature_is_404(client: TestClient) -> None:
    assert client.get("/ogc/collections/counties/items/999999999").status_code == 404
    assert client.get("/ogc/collections/counties/items/abc").status_code == 404
    assert client.get("/ogc/collections/us-states/items/06").json()["properties"]["name"] == (
        "California"
    )


def test_html_pages(client: TestClient) -> None:
    for url in ("/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/counties",
                "/ogc/collections/counties/items?limit=5"):  # fmt: skip
        page = client.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<h1>" in page.text
    assert (
        "Los Angeles"
        in client.get("/ogc/collections/counties/items?name=Los%20Angeles&f=html").text
    )


def test_reserved_collection_ids_cannot_be_layers(client: TestClient) -> None:
    response = client.post("/layers", json={"name": "customers"})
    assert response.status_code == 422 and "reserved" in response.text


# --- a real client: GDAL's OGC API driver (Debian's gdal-bin) --------------------------------


def _ogrinfo(*args: str, key: str) -> str:
    found = shutil.which("ogrinfo")
    assert found, "ogrinfo is not installed: run ./scripts/test, which installs gdal-bin"
    # How GDAL users send a key: GDAL_HTTP_HEADERS (GDAL >= 3.6) on every request it makes.
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: Bearer {key}"}
    done = subprocess.run(
        [found, *args], capture_output=True, text=True, timeout=300, check=True, env=env
    )
    return done.stdout


def test_gdal_lists_the_collections_and_reads_every_feature(
    live_server: str, admin_key: str
) -> None:
    root = f"OAPIF:{live_server}/ogc"
    ogrinfo = functools.partial(_ogrinfo, key=admin_key)
    listing = ogrinfo("-ro", "-q", root)
    for name in ("counties", "states", "customers", "us-states", "us-counties"):
        assert f": {name} (" in listing or f": {name}\n" in listing, listing
    summary = ogrinfo("-ro", "-so", root, "states")
    matched = functools.partial(_matched, live_server, key=admin_key)
    assert f"Feature Count: {matched('states')}" in summary
    # Every feature through the next links, at GDAL's default page size (10) and at 1,000.
    for extra in ((), ("-oo", "PAGE_SIZE=1000")):
        dump = ogrinfo("-ro", "-al", "-q", "-geom=NO", *extra, root, "counties")
        assert dump.count("OGRFeature(counties)") == matched("counties")
    one = ogrinfo("-ro", "-al", "-q", "-geom=NO", root, "counties", "-where", "name = 'Kings'")
    kings = matched("counties", "&name=Kings")
    assert one.count("OGRFeature(counties)") == kings > 1  # Kings County, CA, NY, TX, ...


def _matched(live_server: str, collection: str, query: str = "", *, key: str) -> int:
    url = f"{live_server}/ogc/collections/{collection}/items?limit=1{query}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=bearer(key))) as response:
        return int(json.load(response)["numberMatched"])
