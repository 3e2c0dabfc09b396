"""API keys: who is calling (a middleware, ahead of everything) and what they may do (dependencies).

A key looks like ``tmk_<prefix>_<secret>``: 12 hex digits naming the key, then 256 random bits.
Only the SHA-256 of the whole key is stored. A slow password hash (bcrypt, argon2) protects
secrets people choose; a 256-bit random secret cannot be guessed from its SHA-256 either, and
checking it costs a microsecond, which matters on the look-up path routing tools hammer.

Each worker keeps the keys in use in memory (``KeyRing``), so look-ups keep being authorised
while the database is away; creating or revoking a key NOTIFYs every worker, which drops its
copy (app.notify). Authorisation is by role (read < write < admin) and by layer: a key limited
to some layers gets, for any other layer, exactly the 404 an unknown layer gets, whether or not
it exists, and before anything else about the request is judged, so nothing tells the two apart.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import (
    ForbiddenError,
    UnauthorizedError,
    database_unavailable,
    problem,
    unknown_collection,
    unknown_layer,
)
from app.models import ApiKey
from app.repositories import keys as repo
from app.schemas import RESERVED_LAYER_NAMES

PRINCIPAL = "territory.principal"  # the ASGI scope key the middleware sets
TOKEN_PREFIX = "tmk_"
_TOKEN = re.compile(r"tmk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


class Role(enum.IntEnum):
    """What a key may do; each role may do everything the ones below it may."""

    READ = 1  # GETs, look-ups, analyses, exports
    WRITE = 2  # territory, customer, pin, assignment and import changes
    ADMIN = 3  # layers and keys

    @property
    def label(self) -> str:
        """The role's name as the API and the CLI spell it."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """``read``, ``write`` or ``admin``."""
        return cls[text.upper()]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's role and layers, or the anonymous reader."""

    role: Role
    layers: frozenset[str] | None = None  # None: every layer
    key_id: int | None = None  # None: anonymous (TERRITORY_AUTH_ANONYMOUS_READ)

    @property
    def anonymous(self) -> bool:
        """True when no key was sent (anonymous read access is on)."""
        return self.key_id is None

    def sees(self, layer: str) -> bool:
        """True when the caller may know of ``layer``."""
        return self.layers is None or layer in self.layers

    def visible(self, names: Iterable[str]) -> list[str]:
        """The names among ``names`` the caller may know of, in their order."""
        return [name for name in names if self.sees(name)]


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: the token (shown once) and what is stored of it."""

    token: str
    prefix: str
    secret_sha256: bytes


def new_key() -> NewKey:
    """A new random key."""
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(token=token, prefix=prefix, secret_sha256=digest(token))


def digest(token: str) -> bytes:
    """The SHA-256 stored for ``token``."""
    return hashlib.sha256(token.encode()).digest()


def issue(
    session: Session, *, role: str, layers: list[str] | None, label: str, replace: bool = False
) -> tuple[ApiKey, str]:
    """Make a key and store its hash: (the stored key, the token, to show once).

    ``replace`` first revokes the keys labelled ``label`` (one live key per label).
    """
    if replace:
        repo.revoke_label(session, label=label)
    made = new_key()
    key = repo.create(
        session,
        prefix=made.prefix,
        secret_sha256=made.secret_sha256,
        role=role,
        layers=layers,
        label=label,
    )
    return key, made.token


def principal_of(key: ApiKey) -> Principal:
    """The principal a stored key stands for."""
    layers = None if key.layers is None else frozenset(key.layers)
    return Principal(role=Role.parse(key.role), layers=layers, key_id=key.id)


class Miss:
    """The type of MISS: a key the worker has not read yet."""


MISS = Miss()


@dataclass(frozen=True)
class _Entry:
    secret_sha256: bytes
    principal: Principal


class KeyRing:
    """One worker's copy of the keys in use, by prefix (unknown prefixes remembered too)."""

    MAX_UNKNOWN = 10_000  # remembered misses; beyond, forgotten (random keys cannot fill memory)

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry | None] = {}  # None: no such (unrevoked) key
        self._generation = 0  # moves on every forget: a read racing a revocation is not kept

    def load(self) -> None:
        """Replace the copy by every unrevoked key (at start-up and when LISTEN (re)begins)."""
        with self._lock:
            generation = self._generation
        with self._sessions() as session:
            entries = {key.prefix: _entry(key) for key in repo.active(session)}
        with self._lock:
            if generation == self._generation:
                self._entries = dict(entries)
            else:
                self._entries = {}  # changed meanwhile: read each key again when used

    def changed(self, prefix: str | None) -> None:
        """A key changed (``prefix``), or every key may have (None: LISTEN (re)began)."""
        if prefix is None:
            self.load()
        else:
            self.forget(prefix)

    def forget(self, prefix: str) -> None:
        """Drop ``prefix``'s copy (the key was created or revoked)."""
        with self._lock:
            self._entries.pop(prefix, None)
            self._generation += 1

    def cached(self, token: str) -> Principal | Miss | None:
        """The principal from memory; None for a bad key; MISS when the database must say."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        entry = self._entries.get(match.group(1), MISS)
        return entry if isinstance(entry, Miss) else _check(entry, token)

    def resolve(self, token: str) -> Principal | None:
        """The key's principal, reading the database on a miss; None for a bad key."""
        found = self.cached(token)
        if not isinstance(found, Miss):
            return found
        prefix = token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 12]  # cached() checked the form
        with self._lock:
            generation = self._generation
        with self._sessions() as session:
            key = repo.active_by_prefix(session, prefix=prefix)
            entry = None if key is None else _entry(key)
        with self._lock:
            if generation == self._generation:
                if entry is None and len(self._entries) >= self.MAX_UNKNOWN:
                    self._entries = {p: e for p, e in self._entries.items() if e is not None}
                self._entries[prefix] = entry
        return _check(entry, token)


def _entry(key: ApiKey) -> _Entry:
    return _Entry(secret_sha256=key.secret_sha256, principal=principal_of(key))


def _check(entry: _Entry | None, token: str) -> Principal | None:
    if entry is None or not hmac.compare_digest(entry.secret_sha256, digest(token)):
        return None
    return entry.principal


# --- authentication: the middleware ---------------------------------------------------------

# Paths anyone may fetch: health checks, the API's own description and documentation, the map
# page's HTML and scripts (its data requests carry a key). None of them says anything a layer
# holds.
PUBLIC_PATHS = frozenset(
    ("/health", "/openapi.json", "/docs", "/map", "/ogc", "/ogc/conformance", "/ogc/api")
)
PUBLIC_PREFIXES = ("/assets/",)
# The only requests other than GET a reader may make: they read (look-ups of many points, the
# white space of a market sent as a polygon). Any other change is refused here, before its
# body is read: FastAPI parses a body before it runs the route's dependencies, so a reader's
# upload would otherwise be read whole, and a malformed one answered 422 instead of 403.
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_READING_POSTS = re.compile(r"/lookup|/layers/[^/]+/whitespace")
HOW_TO = (
    "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; an admin makes keys with "
    "`territory keys create` or POST /keys"
)


class Authenticate:
    """Pure ASGI middleware: puts the caller's Principal in the scope, or answers 401."""

    def __init__(self, app: ASGIApp, *, anonymous: Principal | None) -> None:
        self.app = app
        self.anonymous = anonymous  # the principal of requests without a key; None: refuse them

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate an HTTP request on a guarded path; pass everything else on."""
        path = route_path(scope)
        if scope["type"] != "http" or _public(path):
            await self.app(scope, receive, send)
            return
        token = _token(scope["headers"])
        if token is None:
            principal: Principal | None = self.anonymous
            reason = f"this needs an API key: {HOW_TO}"
        else:
            try:
                principal = await _principal(scope, token)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                response = problem(
                    503,
                    "Database unavailable",
                    "the database is unreachable; retry shortly",
                    instance=scope["path"],
                )
                await response(scope, receive, send)
                return
            reason = "the API key is not valid: unknown, revoked or mistyped"
        if principal is None:
            response = problem(401, "Unauthorized", reason, instance=scope["path"])
            await response(scope, receive, send)  # with WWW-Authenticate (errors.problem)
            return
        refusal = _refused_early(principal, scope["method"], path)
        if refusal is not None:
            await problem(*refusal, instance=scope["path"])(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


def _refused_early(principal: Principal, method: str, path: str) -> tuple[int, str, str] | None:
    """(status, title, detail) for a reader's change, refused before its body is read."""
    if principal.role > Role.READ or method in _SAFE_METHODS:
        return None
    if method == "POST" and _READING_POSTS.fullmatch(path):
        return None
    if principal.anonymous:
        return 401, "Unauthorized", f"changes need an API key with role write or admin: {HOW_TO}"
    return 403, "Forbidden", "this key's role is read; changes need write (layers, keys: admin)"


def route_path(scope: Scope) -> str:
    """The request's path without a proxy's prefix (uvicorn --root-path /api keeps it there)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


async def _principal(scope: Scope, token: str) -> Principal | None:
    ring: KeyRing = scope["app"].state.keys
    found = ring.cached(token)
    if not isinstance(found, Miss):
        return found
    return await run_in_threadpool(ring.resolve, token)  # a database read, off the event loop


# --- authorisation: the dependencies ---------------------------------------------------------

# Declared so that OpenAPI documents both ways of sending a key (and Swagger UI's "Authorize"
# button fills them in); the middleware has already checked the key itself.
_BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")


def authorize(role: Role, *, every_layer: bool = False) -> Callable[..., Principal]:
    """A dependency: the caller's Principal, if it has ``role`` and may see the path's layer."""

    def dependency(
        request: Request,
        _bearer: Annotated[Any, Depends(_BEARER)],
        _key: Annotated[Any, Depends(_API_KEY)],
    ) -> Principal:
        principal: Principal | None = request.scope.get(PRINCIPAL)
        if principal is None:  # only a public path gets here without one, and none is guarded
            raise UnauthorizedError(f"this needs an API key: {HOW_TO}")
        _check_role(principal, role, every_layer=every_layer)
        _check_scope(request, principal)
        return principal

    dependency.__name__ = f"authorize_{role.label}"
    return dependency


def _check_role(principal: Principal, role: Role, *, every_layer: bool) -> None:
    if principal.role < role:
        if principal.anonymous:
            raise UnauthorizedError(f"this needs an API key with role {role.label}: {HOW_TO}")
        raise ForbiddenError(
            f"this key's role is {principal.role.label}; this needs {role.label} or above"
        )
    if every_layer and principal.layers is not None:
        raise ForbiddenError(
            "this key is limited to some layers; this change reaches every layer (customers "
            "are shared by all of them) and needs a key that is not limited"
        )


def _check_scope(request: Request, principal: Principal) -> None:
    # Raised here, before the request's other parameters are judged: an unknown layer with a
    # bad parameter would otherwise get a 422 where a hidden one gets this 404.
    layer = request.path_params.get("layer") or _lookup_layer(request)
    if layer is not None and not principal.sees(layer):
        raise unknown_layer(layer)
    collection = request.path_params.get("collectionId")  # OGC API: a layer, or reference data
    if collection is None or collection in RESERVED_LAYER_NAMES:
        return
    if not principal.sees(collection):
        raise unknown_collection(collection)


def _lookup_layer(request: Request) -> str | None:
    # /lookup names its layer in the query; other routes' layers are in their paths. The
    # route's template, not the path: behind a --root-path the path carries the prefix.
    if getattr(request.scope.get("route"), "path", None) == "/lookup":
        return request.query_params.get("layer")
    return None


require_read = authorize(Role.READ)
require_write = authorize(Role.WRITE)
require_write_all = authorize(Role.WRITE, every_layer=True)
require_admin = authorize(Role.ADMIN, every_layer=True)

# ReadDep: a route parameter, for routes that filter by what the key sees; the others: the
# routes' and routers' dependencies=[...] (the principal itself is not needed there).
ReadDep = Annotated[Principal, Depends(require_read)]
READ = Depends(require_read)
WRITE = Depends(require_write)
WRITE_ALL = Depends(require_write_all)
ADMIN = Depends(require_admin)
