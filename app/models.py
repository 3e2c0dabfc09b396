"""ORM models: the PostGIS schema. It changes only through the Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TERRITORY_KINDS = ("state", "county", "custom")
DECIDING_RULES = ("pinned", "only", "priority", "area", "id")
KEY_ROLES = ("read", "write", "admin")


class Base(DeclarativeBase):
    """Declarative base of every table."""


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class Layer(Base):
    """One territory plan ("states", "counties", "partners-2026", ...)."""

    __tablename__ = "layers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # Set by the first bulk assignment: from then on, edits keep the assignments current.
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    __table_args__ = (
        CheckConstraint(r"name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'", name="layers_name_slug"),
    )


class Territory(Base):
    """A polygonal territory of one layer; composed ones remember their parts."""

    __tablename__ = "territories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_id: Mapped[int] = mapped_column(
        ForeignKey("layers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="custom")
    code: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    exclusive: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    parts: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )
    # Geodesic area (m², WGS 84), computed by PostGIS on every write and read by the engine:
    # the ownership tie-break compares these very numbers in SQL and in memory.
    area_m2: Mapped[float] = mapped_column(
        Double, Computed("ST_Area(geom::geography)", persisted=True)
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    __table_args__ = (
        CheckConstraint(f"kind IN {TERRITORY_KINDS!r}", name="territories_kind"),
        Index("ix_territories_layer_code", "layer_id", "code"),
        # Lets an assignment's territory be tied to the assignment's layer (composite FK).
        UniqueConstraint("id", "layer_id", name="uq_territories_id_layer"),
    )


class Customer(Base):
    """A geocoded customer (lon/lat point) with a value (revenue or potential)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True), nullable=False
    )
    value: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, server_default=text("0"))
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Assignment(Base):
    """Which territory of a layer owns a customer, and the rule that decided."""

    __tablename__ = "assignments"

    # One partition per layer (``assignment_partition``), created and dropped with the layer:
    # a bulk assignment loads a fresh partition bare, then indexes and checks it in bulk when it
    # replaces the old one. No foreign key to the layer of its own: the rule tying the
    # territory to its layer implies it (and cascades from it); each key checked row by row
    # costs ~5 s per million assignments.
    layer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    territory_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    rule: Mapped[str] = mapped_column(Text, nullable=False)
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    assigned_at: Mapped[datetime] = _created()
    # The customer's value, copied with every write: totals per territory without a join.
    value: Mapped[float] = mapped_column(Double, nullable=False, server_default=text("0"))

    __table_args__ = (
        CheckConstraint(f"rule IN {DECIDING_RULES!r}", name="assignments_rule"),
        # The owning territory belongs to the assignment's layer, and goes with it: a foreign
        # key in all but name, kept by triggers once per statement (migration 0011), as the
        # key's check of every row on its own was ~45 % of an edit's re-assignment write.
        Index("ix_assignments_customer", "customer_id"),
        {"postgresql_partition_by": "LIST (layer_id)"},
    )


class AssignmentVersion(Base):
    """A counter per layer that every write of its assignments moves (coverage ETags)."""

    __tablename__ = "assignment_versions"

    layer_id: Mapped[int] = mapped_column(
        ForeignKey("layers.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))


ASSIGNMENT_PARTITION_PREFIX = "assignments_layer_"


def assignment_partition(layer_id: int) -> str:
    """Name of the partition of ``assignments`` holding one layer's rows."""
    return f"{ASSIGNMENT_PARTITION_PREFIX}{int(layer_id)}"


class Boundary(Base):
    """A reference boundary (US state or county) that custom territories are composed from."""

    __tablename__ = "boundaries"

    fips: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    state_fips: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    state_code: Mapped[str] = mapped_column(Text, nullable=False)
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )

    __table_args__ = (
        CheckConstraint("level IN ('state', 'county')", name="boundaries_level"),
        Index("ix_boundaries_state_code", "state_code"),
    )


class ApiKey(Base):
    """An API key: found by its public prefix, checked by the SHA-256 of the whole key."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('read', 'write', 'admin')", name="ck_api_keys_role"),
        CheckConstraint("role <> 'admin' OR layers IS NULL", name="ck_api_keys_admin_unscoped"),
        CheckConstraint("octet_length(secret_sha256) = 32", name="ck_api_keys_sha256"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    prefix: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    layers: Mapped[list[str] | None] = mapped_column(ARRAY(Text))  # None: every layer
    label: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
