"""Request ids, structured logs and the request metrics: one middleware sees every request.

Every request gets an id: the client's ``X-Request-ID`` when it is a sane one, else a new one.
It is answered in the ``X-Request-ID`` header (problems and the fast look-up path included) and
carried by every log record made while the request is served. While the app runs, the process
logs JSON lines to stdout (text on a terminal), uvicorn's lines included; the app writes one
access record per request itself, with the route template, status and duration, so uvicorn's
own access log is switched off.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import embedded, metrics
from app.auth import PRINCIPAL
from app.settings import LogSettings

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
STATE_KEY = "request_id"  # in the ASGI scope's state: ``request.state.request_id``
# Ids that are safe in a header and a log line as they are: UUIDs, ULIDs, hex trace ids, ...
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

access_log = logging.getLogger("app.access")

Handler = Callable[[Request, Exception], Response]


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _REQUEST_ID.get()


def valid_request_id(value: str | None) -> bool:
    """Whether a client's ``X-Request-ID`` may be used as it is."""
    return value is not None and _VALID_ID.fullmatch(value) is not None


# --- logs ---------------------------------------------------------------------------------

# Attributes every LogRecord has: what is not among them was given as ``extra=`` and is shown.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request it was made for (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id`` to the record; never drops one."""
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, message, request_id, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or _REQUEST_ID.get(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits in an extra: never lose a line
            return json.dumps(entry, default=str)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record comes (as logging's last resort does
    with stderr), so a runner swapping stdout never leaves it writing to a closed file."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        """The current standard output."""
        return sys.stdout


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(settings: LogSettings) -> Callable[[], None]:
    """Send every log record (the service's and uvicorn's) to stdout as ``settings`` say;
    returns what puts the logging configuration back as it was.

    An earlier call's handler is replaced, never doubled.
    """
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (list(lg.handlers), lg.propagate, lg.disabled)
        for name, lg in ((n, logging.getLogger(n)) for n in _UVICORN)
    }
    for old in [h for h in root.handlers if isinstance(h, _StdoutHandler)]:
        root.removeHandler(old)
    as_json = settings.format == "json" or (settings.format == "auto" and not sys.stdout.isatty())
    # stdout, where uvicorn's access log went: the stream of a service's own records (the 12
    # factors); stderr stays for what goes wrong outside the app (a failed start).
    handler = _StdoutHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(settings.level)
    # uvicorn's lines and tracebacks go through the same handler (same format), and its access
    # log is off: the app logs each request itself, with its id and route.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True

    def restore() -> None:
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for name, (handlers, propagate, disabled) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled

    return restore


# --- the middleware -----------------------------------------------------------------------


class Observability:
    """Pure ASGI middleware: the request id, the access record and the request metrics; and,
    while the app runs (its lifespan), the process's logging as ``log`` says."""

    def __init__(self, app: ASGIApp, *, log: LogSettings | None = None) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with its id set, then log and count it."""
        if scope["type"] == "lifespan":
            # For the app's life only, not from its creation on: a process that builds apps
            # and also does other work (the tests, running the CLI too) gets its logging back.
            restore = configure_logging(self.log) if self.log else None
            try:
                await self.app(scope, receive, _noting_shutdown(send))
            finally:
                if restore:
                    restore()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})[STATE_KEY] = request_id
        token = _REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # what an exception escaping before any answer becomes
        header = (_HEADER_KEY, request_id.encode())

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            _finished(scope, status, time.perf_counter() - started)
            _REQUEST_ID.reset(token)


def _noting_shutdown(send: Send) -> Send:
    """``send``, telling the metrics when the app has shut down (the worker is leaving).

    Here rather than at exit: uvicorn's workers end by re-raising SIGTERM, so atexit never runs.
    """

    async def noted(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            metrics.worker_stopped()
        await send(message)

    return noted


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == _HEADER_KEY:
            text = value.decode("latin-1")
            return text if valid_request_id(text) else None
    return None


def route_of(scope: Scope) -> str:
    """The template of the route that served the request: bounded, never the raw path."""
    template = getattr(scope.get("route"), "path_format", None)
    if isinstance(template, str):
        return template
    if scope["path"] == "/lookup":
        return "/lookup"  # answered by the fast path (app.fastlookup), before routing
    return "other"  # no route: unknown paths, CORS preflights, slash redirects


def _finished(scope: Scope, status: int, seconds: float) -> None:
    route = route_of(scope)
    metrics.observe_request(scope["method"], route, status, seconds)
    # The path as sent (still percent-encoded): no control characters reach a text log line.
    path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    millis = round(seconds * 1000, 3)
    principal = scope.get(PRINCIPAL)  # who called (app.auth): the key's id, never the key
    access_log.info(
        "%s %s %d %.1f ms",
        scope["method"],
        path,
        status,
        millis,
        extra={
            "method": scope["method"],
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": millis,
            "key_id": None if principal is None else principal.key_id,
        },
    )


# --- exception handlers -------------------------------------------------------------------


def database_error_kind(exc: Exception) -> str:
    """``unavailable`` (no database), ``data`` (a value it refuses) or ``other``."""
    if isinstance(exc, embedded.EmbeddedDatabaseError):
        return "unavailable"
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    if isinstance(exc, DataError) or sqlstate.startswith("54"):  # 54: a value too large
        return "data"
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return "unavailable"
    return "other"


def _sync(handler: Any) -> Handler:
    if inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler!r}: app.observability wraps synchronous handlers only")
    return handler


def _counting(handler: Handler) -> Handler:
    """``handler``, counting the database error before it answers."""

    def counted(request: Request, exc: Exception) -> Response:
        metrics.observe_database_error(database_error_kind(exc))
        return handler(request, exc)

    return counted


def _tagging(handler: Handler) -> Handler:
    """``handler`` of unhandled errors, with the request's id in its log record and answer.

    Starlette runs it outside every middleware (ServerErrorMiddleware), after ours has ended.
    """

    def tagged(request: Request, exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get(STATE_KEY)
        token = _REQUEST_ID.set(request_id)
        try:
            response = handler(request, exc)
        finally:
            _REQUEST_ID.reset(token)
        if request_id:
            response.headers[HEADER] = request_id
        return response

    return tagged


def install(app: FastAPI, settings: LogSettings) -> None:
    """Wrap the error handlers and add the middleware (which sets up logging as ``settings``
    say while the app runs); call it after ``errors.install`` and every other middleware."""
    handlers = app.exception_handlers
    if DBAPIError not in handlers:
        raise RuntimeError("app.observability.install must come after app.errors.install")
    for cls in (DBAPIError, embedded.EmbeddedDatabaseError):
        if cls in handlers:  # errors.py maps them to 422/503 problems: count them on the way
            handlers[cls] = _counting(_sync(handlers[cls]))
    if Exception in handlers:
        handlers[Exception] = _tagging(_sync(handlers[Exception]))
    app.add_middleware(Observability, log=settings)
