"""``GET /lookup`` answered before the framework: the hot path of routing tools.

One look-up costs the engine a few microseconds; FastAPI's routing, parameter handling and
dependency solving cost ~200 µs more (bench/RESULTS.md, "HTTP"). This pure ASGI middleware
answers the well-formed requests for a layer the worker holds, with exactly the body the
``GET /lookup`` route gives (``routes.lookup.point_answer``). Anything else (a missing,
repeated or unusual parameter, a number out of range, a layer not held yet or hidden from the
caller's key) goes on to the route, which validates it, answers or explains the error, and
documents the endpoint. The caller was authenticated before (app.auth.Authenticate).
"""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import PRINCIPAL, Principal
from app.indexes import IndexRegistry
from app.routes.lookup import point_answer

# Plain decimal numbers only: every one of them is a float the route's validation accepts too,
# so the fast path never answers what the route would refuse.
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_PARAMS = frozenset(("lon", "lat", "layer"))
_HEADERS = [(b"content-type", b"application/json")]


class LookupFastPath:
    """Pure ASGI middleware: well-formed ``GET /lookup`` of a held layer, without the framework."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the look-up here if it is plainly valid, else pass it on to the route."""
        if scope["type"] == "http" and scope["path"] == "/lookup" and scope["method"] == "GET":
            body = _answer(scope)
            if body is not None:
                headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _answer(scope: Scope) -> bytes | None:
    """The answer's body, or None when the route must decide."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(pairs) != len(_PARAMS) or params.keys() != _PARAMS:
        return None
    lon, lat = _number(params["lon"]), _number(params["lat"])
    if lon is None or lat is None or abs(lon) > 180 or abs(lat) > 90:
        return None
    principal: Principal | None = scope.get(PRINCIPAL)  # app.auth.Authenticate, outside us
    if principal is None or not principal.sees(params["layer"]):
        return None  # the route answers it: the same 404 as an unknown layer
    registry: IndexRegistry = scope["app"].state.indexes
    entry = registry.held(params["layer"])
    if entry is None:
        return None
    return orjson.dumps(point_answer(entry, lon, lat))


def _number(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None
