"""Settings, split by concern, all read from the environment with the ``TERRITORY_`` prefix.

``DATABASE_URL`` (no prefix, the de-facto standard name) is accepted too: when neither it nor
``TERRITORY_DATABASE_URL`` is set, the service runs its own embedded PostgreSQL + PostGIS cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "TERRITORY_"


class DatabaseSettings(BaseSettings):
    """Where the data lives: an external server, or the embedded cluster when ``url`` is unset."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TERRITORY_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL of a PostGIS database; unset = embedded cluster.",
    )
    pool_size: int = 5
    statement_timeout_ms: int = 60_000


class EmbeddedSettings(BaseSettings):
    """The local PostgreSQL + PostGIS cluster the project starts itself."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}EMBEDDED_", extra="ignore")

    data_dir: Path = PROJECT_ROOT / ".pgdata"
    port: int = 55432
    database: str = "territory"


class ApiSettings(BaseSettings):
    """HTTP behaviour: the body size limit, the title, the assets served, CORS."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}API_", extra="ignore")

    max_body_bytes: int = 50 * 1024 * 1024
    title: str = "Territory service"
    assets_dir: Path = PROJECT_ROOT / "node_modules"  # npm packages the service serves itself
    # Origins of map front-ends served elsewhere that may call the API from a browser, e.g.
    # TERRITORY_API_CORS_ORIGINS='["https://maps.example.com"]'; ["*"] allows any. Empty (the
    # default): no CORS headers at all (the app's own /map page is same-origin, needs none).
    cors_origins: list[str] = Field(default_factory=list)
    # Heavy requests (maps, tiles, edits, analyses, imports) per worker (app/shedding.py): at
    # most heavy_running at once (fewer than the database pool's 10 connections, so /health
    # always finds one), up to heavy_queued more waiting at most heavy_wait_s seconds; beyond
    # that 503 + Retry-After at once rather than a time-out.
    heavy_running: int = 8
    heavy_queued: int = 64
    heavy_wait_s: float = 10.0
    # Writes (edits, imports, bulk runs: not GET/HEAD/OPTIONS) in a lane of their own, so edits
    # waiting for a layer's row lock never take map reads' slots: write_running at once (with
    # heavy_running, still fewer than the pool's 10 connections), write_queued more waiting at
    # most write_wait_s seconds (longer: a layer's edits go one at a time, and a shed edit is lost
    # work for its client).
    write_running: int = 1
    write_queued: int = 64
    write_wait_s: float = 20.0
    # Territory edits (POST/PUT/PATCH/DELETE of /layers/{layer}/territories, not dry runs) in a
    # lane of their own: they wait for their layer's next batch (app/edits.py) holding no
    # database connection, so many may be in at once (each holds one of the worker's 40
    # threads: with heavy_running and write_running, 25 at most); edit_queued more wait
    # write_wait_s.
    edit_running: int = 16
    edit_queued: int = 64
    # Allocations between two young-generation garbage collections (Python's default: 700).
    # Vectorised geometry work makes tens of thousands of short-lived shapely objects (every
    # overlay result, every ring an area walks), none of them in a reference cycle; at 700 each
    # batch of them set off collections, and the full ones walk every object the worker holds
    # (its indexes), with the GIL held: 15 % of the overlaps' time (bench/RESULTS.md).
    gc_threshold: int = Field(default=50_000, ge=1)


class AuthSettings(BaseSettings):
    """Who may call without an API key (keys themselves live in the database)."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}AUTH_", extra="ignore")

    # Anonymous read access, for public maps: requests without a key may read (GETs, look-ups,
    # analyses), never write. Off by default: every request needs a key.
    anonymous_read: bool = False
    # With anonymous_read: the layers anonymous readers see (empty: every layer), e.g.
    # TERRITORY_AUTH_ANONYMOUS_LAYERS='["states","counties"]'.
    anonymous_layers: list[str] = Field(default_factory=list)


class IndexSettings(BaseSettings):
    """The in-memory territory indexes each worker keeps."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}INDEX_", extra="ignore")

    # Build every layer's index at start-up, so look-ups never need the database (and keep
    # answering while it is away). Off in the tests, where apps are built by the dozen.
    warm: bool = True


class LogSettings(BaseSettings):
    """Logs: JSON lines (one a record, with the request id) or text, and the level shown."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}LOG_", extra="ignore")

    # auto: text on a terminal (a developer reading), JSON lines otherwise (a collector reading:
    # containers, systemd, files).
    format: Literal["auto", "json", "text"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("format", "level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """TERRITORY_LOG_LEVEL=debug is as good as DEBUG."""
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.lower() if value.lower() in ("auto", "json", "text") else value.upper()


class Settings(BaseSettings):
    """All settings of one service instance."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    data_dir: Path = PROJECT_ROOT / "data"
