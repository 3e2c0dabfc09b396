"""Domain errors of the service and the one table that maps every error to HTTP.

Errors are raised deep (repositories, parsers, the engine) and turned into
RFC 9457 ``application/problem+json`` responses here, and only here.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import embedded
from spatial.errors import SpatialError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's words for a body it can't read


class ServiceError(Exception):
    """Base of the service's domain errors; ``errors`` lists per-field/row details."""

    def __init__(
        self, message: str, *, field: str | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or []


class NotFoundError(ServiceError):
    """An unknown layer, territory or customer."""


def unknown_layer(name: str) -> NotFoundError:
    """The error for a layer that does not exist, or that the caller's key may not see."""
    return NotFoundError(f"layer '{name}' does not exist; GET /layers lists them", field="layer")


def unknown_collection(collection_id: str) -> NotFoundError:
    """The error for an OGC API collection that does not exist, or that the key may not see."""
    return NotFoundError(
        f"no collection {collection_id!r}: GET /ogc/collections lists them", field="collectionId"
    )


class UnauthorizedError(ServiceError):
    """No API key, or one that is not valid, where one is needed."""


class ForbiddenError(ServiceError):
    """The API key is valid but its role does not allow this."""


class ConflictError(ServiceError):
    """The request conflicts with what is stored (e.g. a layer name taken)."""


class InputError(ServiceError):
    """The request is well-formed but its content is wrong (unknown code, bad row, ...)."""


class QueryError(InputError):
    """A query parameter is unknown or has a bad value where the standard says 400 (OGC API)."""


class PayloadTooLargeError(ServiceError):
    """The request body is larger than the configured limit."""


class UnsupportedMediaError(ServiceError):
    """The uploaded file's format is not one we read."""


OGC_PREFIX = "/ogc"  # where the OGC API - Features routes live (app/routes/ogc.py)

# The one table: exception class -> (status, title). Most specific classes first.
_STATUS: list[tuple[type[Exception], int, str]] = [
    (UnauthorizedError, 401, "Unauthorized"),
    (ForbiddenError, 403, "Forbidden"),
    (NotFoundError, 404, "Not found"),
    (ConflictError, 409, "Conflict"),
    (PayloadTooLargeError, 413, "Payload too large"),
    (UnsupportedMediaError, 415, "Unsupported media type"),
    (QueryError, 400, "Bad request"),
    (InputError, 422, "Invalid input"),
    (SpatialError, 422, "Invalid geometry"),
    # Safety nets for values only PostgreSQL knows it cannot store (NUL in text, lone
    # surrogates, an index entry too large, ...).
    (DataError, 422, "Invalid input"),
    (UnicodeEncodeError, 422, "Invalid input"),
    (OperationalError, 503, "Database unavailable"),
    (PoolTimeoutError, 503, "Database unavailable"),  # every pooled connection busy: retry
    (embedded.EmbeddedDatabaseError, 503, "Database unavailable"),
]


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    """An ``application/problem+json`` response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"Retry-After": "5"} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="territory"'}
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _domain_handler(request: Request, exc: Exception) -> Response:
    if _is_limit_exceeded(exc):
        detail = "a value is too large for the database to store or index; send a shorter one"
        return problem(422, "Invalid input", detail, instance=request.url.path)
    for cls, status, title in _STATUS:
        if isinstance(exc, cls):
            return problem(
                status, title, _detail(exc, status), **_extras(exc), instance=request.url.path
            )
    return _unexpected(request, exc)


def database_unavailable(exc: Exception) -> bool:
    """True when ``exc`` says the database cannot be reached (a 503, not the request's fault)."""
    if isinstance(exc, embedded.EmbeddedDatabaseError | PoolTimeoutError):
        return True
    return isinstance(exc, OperationalError) and not _is_limit_exceeded(exc)


def _is_limit_exceeded(exc: Exception) -> bool:
    # SQLSTATE class 54 (program limit exceeded, e.g. an index row too large) is the request's
    # fault; psycopg files it under OperationalError, which otherwise means "no database".
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return isinstance(exc, OperationalError) and sqlstate.startswith("54")


def _detail(exc: Exception, status: int) -> str:
    if status == 503:
        # Never leak connection strings or server messages.
        return "the database is unreachable; retry shortly"
    if isinstance(exc, UnicodeEncodeError):
        return "text must be valid Unicode: a lone surrogate escape such as \\ud800 is not"
    if isinstance(exc, DataError):
        # The server's primary message names the problem (not the SQL, not the data).
        primary = getattr(getattr(exc.orig, "diag", None), "message_primary", None)
        reason = primary or str(exc.orig).splitlines()[0]  # client-side psycopg errors: no diag
        return f"a value cannot be stored: {reason}"
    return getattr(exc, "message", None) or str(exc)


def _extras(exc: Exception) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if getattr(exc, "field", None):
        extra["field"] = exc.field  # type: ignore[attr-defined]
    if getattr(exc, "errors", None):
        extra["errors"] = exc.errors  # type: ignore[attr-defined]
    location = getattr(exc, "location", None)
    if location is not None:
        extra["location"] = {"type": "Point", "coordinates": list(location)}
    return extra


def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_entry(err) for err in exc.errors()]
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    # OGC API - Features answers a bad query parameter with 400 (/req/core/query-param-invalid).
    status = 400 if request.url.path.startswith(OGC_PREFIX) else 422
    title = "Bad request" if status == 400 else "Invalid request"
    return problem(status, title, detail, errors=errors, instance=request.url.path)


def _validation_entry(err: dict[str, Any]) -> dict[str, Any]:
    loc = err.get("loc", ())
    if err.get("type") == "json_invalid":
        # loc is ("body", character offset): say so instead of naming a field "body.17".
        where = loc[1] if len(loc) > 1 else "?"
        reason = (err.get("ctx") or {}).get("error", "invalid JSON")
        return {"field": "body", "message": f"not valid JSON at character {where}: {reason}"}
    return {"field": ".".join(str(p) for p in loc), "message": err.get("msg", "")}


def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_UNREADABLE:
        detail = "the body cannot be read: send UTF-8 JSON (or multipart for files)"
        return problem(422, "Invalid request", detail, field="body", instance=request.url.path)
    title = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}.get(
        exc.status_code, "HTTP error"
    )
    response = problem(exc.status_code, title, str(exc.detail), instance=request.url.path)
    response.headers.update(exc.headers or {})  # Starlette's own, e.g. a 405's Allow
    if exc.status_code == 405:
        # RFC 9110: a 405 lists every method the path takes. Starlette's Allow names only the
        # first route whose path matched (GET /customers hid POST /customers); the OpenAPI
        # document knows them all.
        allowed = _allowed_methods(request)
        if allowed:
            response.headers["Allow"] = allowed
    return response


_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _allowed_methods(request: Request) -> str | None:
    found: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():  # cached by FastAPI
        if _path_pattern(template).fullmatch(request.url.path):
            found.update(m.upper() for m in operations if m in _METHODS)
    if "GET" in found:
        found.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(found)) or None


@functools.lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    """A path template's regex: each {parameter} one path segment (or part of one)."""
    return re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)))


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal server error", "an unexpected error occurred; it was logged")


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""
    handlers: dict[type[Exception], Callable[[Request, Exception], Response]] = {
        RequestValidationError: _validation_handler,
        StarletteHTTPException: _http_handler,
        ServiceError: _domain_handler,
        SpatialError: _domain_handler,
        DBAPIError: _domain_handler,
        embedded.EmbeddedDatabaseError: _domain_handler,
        PoolTimeoutError: _domain_handler,
        UnicodeEncodeError: _domain_handler,
        Exception: _unexpected,
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
