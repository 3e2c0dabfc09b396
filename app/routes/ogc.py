"""OGC API - Features, Part 1 (Core, GeoJSON, HTML, OpenAPI 3.0) under /ogc.

Collections: one per layer (its territories), ``customers``, and the US Census boundaries
``us-states`` and ``us-counties``. Items are keyset-paged (``after`` in the ``next`` link), so
GDAL, QGIS or any client reads a layer of any size page by page at the same cost per page.
Links are absolute (GDAL prefixes a relative href with the API root). Every answer is JSON
(GeoJSON for features) or, with ``f=html`` or a browser's ``Accept``, a plain HTML page.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response

from app.auth import READ, ReadDep
from app.db import SessionDep
from app.errors import OGC_PREFIX, NotFoundError, QueryError, unknown_collection
from app.geojson import GEOJSON, GeoJSONResponse
from app.repositories import layers
from app.repositories import ogc as repo
from app.repositories.ogc import BOUNDARIES, CUSTOMERS, TERRITORIES, ItemQuery, Source
from app.routes.params import PROBLEMS
from app.schemas import RESERVED_LAYER_NAMES

# The shared problems, plus the standard's 400 for a bad query parameter (app/errors.py); 422
# stays: a value PostgreSQL cannot compare (a NUL in a filter) is refused as everywhere else.
OGC_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    400: {**PROBLEMS[422], "description": "Invalid or unknown query parameter"},
    404: {**PROBLEMS[404], "description": "Unknown collection or feature"},
}
# The landing page, conformance and API documents are public (app.auth.PUBLIC_PATHS); the
# collections and their items need a key that may read, and see only the layers it may.
router = APIRouter(prefix=OGC_PREFIX, tags=["ogc"], responses=OGC_PROBLEMS)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
DEFAULT_LIMIT, MAX_LIMIT = 10, 10_000
# The reference collections (their ids are reserved: no layer may take them).
REFERENCE: dict[str, tuple[Source, dict[str, Any], str, str]] = {
    "customers": (CUSTOMERS, {}, "Customers", "Geocoded customers (points) with their value"),
    "us-states": (
        BOUNDARIES,
        {"level": "state"},
        "US states",
        "US Census cartographic boundaries (see data/README.md)",
    ),
    "us-counties": (
        BOUNDARIES,
        {"level": "county"},
        "US counties",
        "US Census cartographic boundaries (see data/README.md)",
    ),
}
assert frozenset(REFERENCE) == RESERVED_LAYER_NAMES  # no layer can hide one of these
ITEM_PARAMS = frozenset({"f", "bbox", "limit", "after", "datetime"})

Format = Annotated[str | None, Query(pattern="^(json|html)$", description="json (default) or html")]
Text = Annotated[str | None, Query(max_length=500)]


def _json_or_html(media: str = "application/json") -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a document answered as JSON or, with f=html, as an HTML page."""
    return {
        200: {
            "description": "JSON, or HTML with f=html or a browser's Accept",
            "content": {media: {"schema": {"type": "object"}}, "text/html": {}},
        }
    }


# --- documents -------------------------------------------------------------------------------


@router.get("", name="ogc_landing", summary="Landing page", responses=_json_or_html())
def landing(request: Request, f: Format = None) -> Response:
    """The API's landing page: links to its description, conformance and collections."""
    doc = {
        "title": request.app.title + " (OGC API - Features)",
        "description": "Territories, customers and US boundaries as OGC API - Features.",
        "links": [
            _link(request, "ogc_landing", "self", "application/json", "This document"),
            _link(request, "ogc_landing", "alternate", "text/html", "This document as HTML"),
            _link(request, "ogc_api", "service-desc", OPENAPI_JSON, "The API definition"),
            {
                "rel": "service-doc",
                "type": "text/html",
                "href": str(request.url_for("swagger_ui")),
                "title": "The API documentation",
            },
            _link(request, "ogc_conformance", "conformance", "application/json", "Conformance"),
            _link(request, "ogc_collections", "data", "application/json", "The collections"),
        ],
    }
    return _answer(request, f, doc, _landing_html)


@router.get(
    "/conformance",
    name="ogc_conformance",
    summary="Conformance classes",
    responses=_json_or_html(),
)
def conformance(request: Request, f: Format = None) -> Response:
    """The conformance classes this API implements."""
    return _answer(request, f, {"conformsTo": CONFORMANCE}, _conformance_html)


@router.get(
    "/api",
    name="ogc_api",
    summary="API definition (OpenAPI 3.0, paths relative to /ogc)",
    response_class=Response,
    responses={200: {"description": "OpenAPI 3.0", "content": {OPENAPI_JSON: {"schema": {}}}}},
)
def api(request: Request) -> Response:
    """This API's own OpenAPI document: GDAL reads it to send property filters to the server."""
    doc = get_openapi(
        title=request.app.title + " (OGC API - Features)",
        version=request.app.version,
        openapi_version="3.0.3",
        routes=router.routes,
    )
    doc["paths"] = {path.removeprefix(OGC_PREFIX) or "/": v for path, v in doc["paths"].items()}
    doc["servers"] = [{"url": str(request.url_for("ogc_landing"))}]
    return Response(orjson.dumps(doc), media_type=OPENAPI_JSON)


@router.get(
    "/collections",
    name="ogc_collections",
    summary="The feature collections",
    responses=_json_or_html(),
    dependencies=[READ],
)
def collections(
    request: Request, session: SessionDep, principal: ReadDep, f: Format = None
) -> Response:
    """Every collection the key sees: one per layer, then customers and the US boundaries."""
    names = principal.visible(layer.name for layer in layers.all_layers(session))
    described = [_collection(request, session, cid) for cid in [*names, *REFERENCE]]
    doc = {
        "links": [
            _link(request, "ogc_collections", "self", "application/json", "This document"),
            _link(request, "ogc_collections", "alternate", "text/html", "This document as HTML"),
        ],
        "collections": described,
    }
    return _answer(request, f, doc, _collections_html)


@router.get(
    "/collections/{collectionId}",
    name="ogc_collection",
    summary="One feature collection",
    responses=_json_or_html(),
    dependencies=[READ],
)
def collection(
    collectionId: str,  # noqa: N803 (the standard's name, which GDAL matches in the API paths)
    request: Request,
    session: SessionDep,
    f: Format = None,
) -> Response:
    """A collection's description: extent, CRS and links to its items."""
    return _answer(request, f, _collection(request, session, collectionId), _collection_html)


@router.get(
    "/collections/{collectionId}/items",
    name="ogc_items",
    summary="Features of a collection",
    response_class=GeoJSONResponse,
    responses=_json_or_html(GEOJSON),
    dependencies=[READ],
)
def items(
    *,
    collectionId: str,  # noqa: N803
    request: Request,
    session: SessionDep,
    f: Format = None,
    bbox: Annotated[
        str | None,
        Query(description="minlon,minlat,maxlon,maxlat (CRS84); west > east crosses 180°"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Features per page")] = 10,
    after: Annotated[
        str | None, Query(max_length=100, description="Continue after this feature id")
    ] = None,
    datetime: Annotated[
        str | None,
        Query(max_length=100, description="An instant or an interval a/b ('..' is open)"),
    ] = None,
    name: Text = None,
    owner: Text = None,
    code: Text = None,
    kind: Text = None,
    external_id: Text = None,
    state_code: Text = None,
    fips: Text = None,
) -> Response:
    """A page of a collection's features (GeoJSON), filtered, with a ``next`` link."""
    source, scope, _, _ = _source(session, collectionId)
    query = _item_query(request, source, bbox=bbox, limit=limit, after=after, raw_time=datetime)
    rows, more = repo.items(session, source=source, scope=scope, query=query)
    total = repo.matched(session, source=source, scope=scope, query=query)
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(request.url), "title": "This page"},
        {
            "rel": "alternate",
            "type": "text/html",
            "title": "This page as HTML",
            "href": str(request.url.include_query_params(f="html")),
        },
        {
            "rel": "collection",
            "type": "application/json",
            "title": "The collection",
            "href": str(request.url_for("ogc_collection", collectionId=collectionId)),
        },
    ]
    if more:
        following = request.url.include_query_params(after=rows[-1]["fid"], limit=limit)
        links.append({"rel": "next", "type": GEOJSON, "href": str(following), "title": "Next"})
    doc = {
        "type": "FeatureCollection",
        "timeStamp": _now(),
        "numberMatched": total,
        "numberReturned": len(rows),
        "features": [_feature(row) for row in rows],
        "links": links,
    }
    return _answer(request, f, doc, _items_html, media_type=GEOJSON)


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    name="ogc_item",
    summary="One feature",
    response_class=GeoJSONResponse,
    responses=_json_or_html(GEOJSON),
    dependencies=[READ],
)
def item(
    collectionId: str,  # noqa: N803
    featureId: str,  # noqa: N803
    request: Request,
    session: SessionDep,
    f: Format = None,
) -> Response:
    """One feature of a collection (GeoJSON)."""
    _refuse_unknown(request, {"f"})
    source, scope, _, _ = _source(session, collectionId)
    feature = _feature(repo.item(session, source=source, scope=scope, fid=_fid(source, featureId)))
    feature["links"] = [
        {"rel": "self", "type": GEOJSON, "href": str(request.url), "title": "This feature"},
        {
            "rel": "collection",
            "type": "application/json",
            "title": "The collection",
            "href": str(request.url_for("ogc_collection", collectionId=collectionId)),
        },
    ]
    return _answer(request, f, feature, _item_html, media_type=GEOJSON)


# --- helpers ---------------------------------------------------------------------------------


def _source(session: Any, collection_id: str) -> tuple[Source, dict[str, Any], str, str]:
    """Where a collection's features live: a reference collection, or a layer's territories."""
    if collection_id in REFERENCE:
        return REFERENCE[collection_id]
    try:
        layer = layers.get_by_name(session, name=collection_id)
    except NotFoundError:
        raise unknown_collection(collection_id) from None
    title = layer.title or layer.name
    return TERRITORIES, {"layer_id": layer.id}, title, layer.description or f"Layer {layer.name}"


def _collection(request: Request, session: Any, collection_id: str) -> dict[str, Any]:
    source, scope, title, description = _source(session, collection_id)
    bbox, (start, end) = repo.extent(session, source=source, scope=scope)
    items_url = str(request.url_for("ogc_items", collectionId=collection_id))
    extent: dict[str, Any] = {
        "spatial": {"bbox": [list(bbox or (-180, -90, 180, 90))], "crs": CRS84}
    }
    if source.temporal:
        extent["temporal"] = {"interval": [[_iso(start), _iso(end)]]}
    return {
        "id": collection_id,
        "title": title,
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": extent,
        "links": [
            {
                "rel": "self",
                "type": "application/json",
                "title": "This collection",
                "href": str(request.url_for("ogc_collection", collectionId=collection_id)),
            },
            {"rel": "items", "type": GEOJSON, "title": "Its features", "href": items_url},
            {
                "rel": "items",
                "type": "text/html",
                "title": "Its features as HTML",
                "href": items_url + "?f=html",
            },
        ],
    }


def _item_query(
    request: Request,
    source: Source,
    *,
    bbox: str | None,
    limit: int,
    after: str | None,
    raw_time: str | None,
) -> ItemQuery:
    """The page's filters, each checked (400 naming the parameter when wrong)."""
    _refuse_unknown(request, ITEM_PARAMS | set(source.filters))
    asked = request.query_params
    equals = tuple((name, asked[name]) for name in source.filters if name in asked)
    start, end = _interval(raw_time) if raw_time is not None else (None, None)
    return ItemQuery(
        bbox=_bbox(bbox) if bbox is not None else None,
        after=_fid(source, after, field="after") if after is not None else None,
        limit=limit,
        equals=equals,
        start=start,
        end=end,
    )


def _refuse_unknown(request: Request, allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise QueryError(
            f"unknown query parameter {unknown[0]!r} for this collection; "
            f"known: {', '.join(sorted(allowed))}",
            field=unknown[0],
        )


def _bbox(raw: str) -> repo.Bbox:
    """``minlon,minlat,maxlon,maxlat`` (or with heights: 6 numbers), CRS84 degrees."""
    try:
        numbers = [float(v) for v in raw.split(",")]
    except ValueError:
        raise QueryError("bbox must be 4 (or 6) comma-separated numbers", field="bbox") from None
    if len(numbers) not in (4, 6):
        raise QueryError("bbox must be 4 (or 6) comma-separated numbers", field="bbox")
    west, south, east, north = numbers[:2] + numbers[-3:-1] if len(numbers) == 6 else numbers
    if not all(-180 <= v <= 180 for v in (west, east)) or not all(
        -90 <= v <= 90 for v in (south, north)
    ):
        raise QueryError("bbox is out of range: lon -180..180, lat -90..90", field="bbox")
    if south > north:
        raise QueryError("bbox: the south edge is north of the north edge", field="bbox")
    return west, south, east, north


def _interval(raw: str) -> tuple[datetime | None, datetime | None]:
    """An RFC 3339 instant, or an interval ``a/b`` with ``..`` (or nothing) for an open end."""
    parts = raw.split("/")
    if len(parts) == 1:
        moment = _instant(parts[0])
        return moment, moment
    if len(parts) != 2:
        raise QueryError("datetime: an instant, or two separated by '/'", field="datetime")
    start, end = (None if p in ("", "..") else _instant(p) for p in parts)
    if start and end and start > end:
        raise QueryError("datetime: the interval ends before it starts", field="datetime")
    return start, end


def _instant(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise QueryError(
            f"datetime: {raw!r} is not an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z",
            field="datetime",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fid(source: Source, raw: str, *, field: str = "featureId") -> Any:
    if source.id_type is str:
        return raw
    try:
        return int(raw)
    except ValueError:
        raise NotFoundError(f"no feature {raw!r}: ids here are integers", field=field) from None


def _feature(row: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in row.items() if k not in ("fid", "geometry")}
    return {
        "type": "Feature",
        "id": row["fid"],
        "geometry": orjson.Fragment(row["geometry"]),
        "properties": properties,
    }


def _link(request: Request, route: str, rel: str, media: str, title: str) -> dict[str, str]:
    href = str(request.url_for(route))
    if media == "text/html":
        href += "?f=html"
    elif media == "application/json" and rel == "self":
        href += "?f=json"
    return {"rel": rel, "type": media, "title": title, "href": href}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- JSON or HTML ----------------------------------------------------------------------------


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def _answer(
    request: Request,
    f: str | None,
    doc: dict[str, Any],
    page: Any,
    *,
    media_type: str = "application/json",
) -> Response:
    if _wants_html(request, f):
        return HTMLResponse(page(doc))
    return Response(orjson.dumps(doc), media_type=media_type)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .5em}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _links_html(links: list[dict[str, str]]) -> str:
    rows = "".join(
        f"<li><a href='{html.escape(x['href'])}'>{html.escape(x.get('title', x['rel']))}</a>"
        f" ({html.escape(x['rel'])}, {html.escape(x['type'])})</li>"
        for x in links
    )
    return f"<ul>{rows}</ul>"


def _landing_html(doc: dict[str, Any]) -> str:
    return _page(
        doc["title"], f"<p>{html.escape(doc['description'])}</p>{_links_html(doc['links'])}"
    )


def _conformance_html(doc: dict[str, Any]) -> str:
    items = "".join(f"<li>{html.escape(uri)}</li>" for uri in doc["conformsTo"])
    return _page("Conformance", f"<ul>{items}</ul>")


def _collections_html(doc: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><a href='{html.escape(c['links'][2]['href'])}'>{html.escape(c['id'])}</a></td>"
        f"<td>{html.escape(c['title'])}</td><td>{html.escape(c['description'])}</td></tr>"
        for c in doc["collections"]
    )
    return _page(
        "Collections", f"<table><tr><th>id</th><th>title</th><th>about</th></tr>{rows}</table>"
    )


def _collection_html(doc: dict[str, Any]) -> str:
    box = ", ".join(f"{v:.4f}" for v in doc["extent"]["spatial"]["bbox"][0])
    body = f"<p>{html.escape(doc['description'])}</p><p>Extent: {box}</p>"
    return _page(doc["title"], body + _links_html(doc["links"]))


def _items_html(doc: dict[str, Any]) -> str:
    features = doc["features"]
    keys = list(features[0]["properties"]) if features else []
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["id", *keys])
    rows = "".join(
        "<tr>"
        + f"<td>{html.escape(str(feat['id']))}</td>"
        + "".join(f"<td>{html.escape(str(feat['properties'][k]))}</td>" for k in keys)
        + "</tr>"
        for feat in features
    )
    summary = f"<p>{doc['numberReturned']} of {doc['numberMatched']} features.</p>"
    table = f"<table><tr>{head}</tr>{rows}</table>"
    return _page("Features", summary + table + _links_html(doc["links"]))


def _item_html(doc: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in doc["properties"].items()
    )
    return _page(f"Feature {doc['id']}", f"<table>{rows}</table>" + _links_html(doc["links"]))
