"""Pydantic schemas of the HTTP API, named by role and kept apart from the ORM models."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from shapely.geometry import MultiPolygon

from app.errors import InputError
from spatial.geometry import polygonal_from_geojson

LAYER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# Collection ids of the OGC API's reference collections (app/routes/ogc.py): no layer takes them.
RESERVED_LAYER_NAMES = frozenset({"customers", "us-states", "us-counties"})
# Feature properties that are territory fields, not free-form user properties.
TERRITORY_FIELDS = ("name", "owner", "priority", "exclusive")
RESERVED_PROPERTIES = frozenset(
    {*TERRITORY_FIELDS, "kind", "code", "layer", "parts", "created_at", "updated_at"}
)


def check_properties(properties: dict[str, Any]) -> None:
    """ValueError unless the free-form properties are storable JSON without reserved keys."""
    clash = sorted(RESERVED_PROPERTIES & set(properties))
    if clash:
        raise ValueError(f"properties may not use the reserved keys {clash}")
    try:
        # PostgreSQL's jsonb refuses NaN/Infinity and the NUL character, and orjson (our
        # output) integers beyond 64 bits: refuse them here, before anything is written.
        orjson.dumps(properties)
        text = json.dumps(properties, allow_nan=False)
    except orjson.JSONEncodeError as exc:
        raise ValueError(
            f"properties must be plain JSON ({exc}); send big numbers as strings"
        ) from exc
    except ValueError as exc:
        raise ValueError("properties must be plain JSON: NaN and Infinity are not JSON") from exc
    if "\\u0000" in text:
        raise ValueError("properties may not contain the NUL character (\\u0000)")
    if _has_huge_float(properties):
        raise ValueError(
            "properties may not hold numbers of 2**63 or more: stored, 1e20 comes back as a "
            "21-digit integer, which JSON readers refuse; send big numbers as strings"
        )


def _has_huge_float(value: Any) -> bool:
    """Does ``value`` hold a float that PostgreSQL's jsonb would give back as an integer beyond
    64 bits? (jsonb keeps numbers as decimals: 1e20 is read back as 100000000000000000000.)"""
    if isinstance(value, float):
        return abs(value) >= 2**63
    if isinstance(value, dict):
        return any(_has_huge_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_huge_float(v) for v in value)
    return False


def _not_null(schema: dict[str, Any]) -> None:
    """The JSON schema of an optional member that may be left out but not sent as null (the
    code refuses null): its type without the null alternative, and no default."""
    options = schema.pop("anyOf", [])
    schema.pop("default", None)
    for option in options:
        if option.get("type") != "null":
            schema.update(option)


# Free-form properties may not use the reserved keys (check_properties): said in the schema too.
FREE_PROPERTIES: dict[str, Any] = {"propertyNames": {"not": {"enum": sorted(RESERVED_PROPERTIES)}}}


# --- layers -------------------------------------------------------------------------------


class LayerCreate(BaseModel):
    """A new layer (one territory plan)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=LAYER_NAME_PATTERN,
        description="URL-safe slug: lowercase letters, digits, '-', '_', '.'; at most 63 chars.",
        examples=["partners-2026"],
    )
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_LAYER_NAMES:
            raise ValueError(
                f"{name!r} is reserved (an OGC API collection of its own); choose another name"
            )
        return name


# --- API keys -----------------------------------------------------------------------------


class KeyCreate(BaseModel):
    """A new API key: its role and, for read and write keys, optionally its layers."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["read", "write", "admin"] = Field(
        description="read: GETs, look-ups, analyses; write: also territory, customer and "
        "import changes; admin: also layers and keys"
    )
    layers: list[Annotated[str, Field(pattern=LAYER_NAME_PATTERN)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="The only layers the key may see (others answer 404 as if they did not "
        "exist); omitted: every layer. Admin keys are never limited.",
        examples=[["partners-2026"]],
    )
    label: str = Field(default="", max_length=200, description="Whose key, what for")

    @model_validator(mode="after")
    def _admin_unlimited(self) -> KeyCreate:
        if self.role == "admin" and self.layers is not None:
            raise ValueError(
                "admin keys cannot be limited to layers (they manage keys); drop 'layers' or "
                "choose role read or write"
            )
        return self


class KeyPublic(BaseModel):
    """An API key as the API shows it: never the key itself, which is shown once."""

    id: int
    prefix: str = Field(description="The key's public part: tmk_<prefix>_...")
    role: Literal["read", "write", "admin"]
    layers: list[str] | None = Field(description="The layers it is limited to; null: every one")
    label: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    """A new key, with the key itself: store it now, it cannot be shown again."""

    key: str = Field(description="Send as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


class KeyList(BaseModel):
    """API keys."""

    keys: list[KeyPublic]


class LayerPublic(BaseModel):
    """A layer as the API shows it."""

    name: str
    title: str | None
    description: str | None
    territory_count: int
    bbox: list[float] | None = Field(description="[minlon, minlat, maxlon, maxlat] in degrees")
    created_at: datetime
    updated_at: datetime
    links: list[dict[str, str]]


class LayerList(BaseModel):
    """All layers."""

    layers: list[LayerPublic]


# --- territories --------------------------------------------------------------------------


@dataclass
class TerritoryDraft:
    """A territory as parsed from any input form, ready for the repository."""

    name: str | None = None
    owner: str | None = None
    priority: int | None = None
    exclusive: bool | None = None
    properties: dict[str, Any] | None = None
    geometry: MultiPolygon | None = None
    counties: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    provided: set[str] = field(default_factory=set)

    @property
    def composed(self) -> bool:
        """True when the geometry comes from reference boundaries."""
        return bool(self.counties or self.states)


class _TerritoryFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(default=None, max_length=200, description="Rep or partner.")
    # Strict: "priority": true or "exclusive": "yes" are mistakes to report, not to coerce.
    priority: StrictInt = Field(default=0, ge=-1_000_000, le=1_000_000, description="Lower wins.")
    exclusive: StrictBool = False
    properties: dict[str, Any] = Field(default_factory=dict, json_schema_extra=FREE_PROPERTIES)

    @model_validator(mode="after")
    def _storable_properties(self) -> _TerritoryFields:
        check_properties(self.properties)
        return self


class TerritoryCompose(_TerritoryFields):
    """A custom territory composed from reference boundaries (county FIPS and/or states)."""

    name: str = Field(min_length=1, max_length=200)
    counties: list[str] = Field(default_factory=list, max_length=5000, examples=[["06001"]])
    states: list[str] = Field(default_factory=list, max_length=60, examples=[["NV", "32"]])

    @model_validator(mode="after")
    def _has_parts(self) -> TerritoryCompose:
        if not self.counties and not self.states:
            raise ValueError(
                "give counties and/or states to compose from, or send a GeoJSON Feature"
            )
        return self

    def to_draft(self, *, repair: bool = False) -> TerritoryDraft:
        """The draft this body describes."""
        del repair  # composed geometry comes from valid reference boundaries
        fields = self.model_dump(exclude={"counties", "states"})
        return TerritoryDraft(
            **fields,
            counties=self.counties,
            states=self.states,
            provided=set(self.model_fields_set),
        )


class TerritoryFeature(BaseModel):
    """A territory as a GeoJSON Feature; name, owner, priority, exclusive live in properties."""

    model_config = ConfigDict(extra="allow")

    type: Literal["Feature"]
    id: int | str | None = None
    geometry: dict[str, Any] | None
    properties: dict[str, Any] | None = None

    def to_draft(self, *, repair: bool = False) -> TerritoryDraft:
        """The draft this feature describes (geometry validated; ``repair`` runs make_valid)."""
        props = dict(self.properties or {})
        fields = {k: props.pop(k) for k in TERRITORY_FIELDS if k in props}
        for key in RESERVED_PROPERTIES - set(TERRITORY_FIELDS):
            props.pop(key, None)  # read-only keys echoed back from a GET are ignored
        try:
            check_properties(props)
        except ValueError as exc:
            raise InputError(str(exc), field="properties") from exc
        checked = _TerritoryUpdateFields.model_validate_fields(fields)
        if not checked.get("name"):
            raise InputError("a territory Feature needs properties.name", field="properties.name")
        if self.geometry is None:
            raise InputError("a territory Feature needs a geometry", field="geometry")
        geometry = polygonal_from_geojson(self.geometry, repair=repair, field="geometry")
        return TerritoryDraft(
            **checked, properties=props, geometry=geometry, provided={*fields, "properties"}
        )


class _TerritoryUpdateFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Left out: unchanged; null is refused (TerritoryUpdate.to_draft), except the owner's.
    name: str | None = Field(
        default=None, min_length=1, max_length=200, json_schema_extra=_not_null
    )
    owner: str | None = Field(default=None, max_length=200)
    priority: StrictInt | None = Field(
        default=None, ge=-1_000_000, le=1_000_000, json_schema_extra=_not_null
    )
    exclusive: StrictBool | None = Field(default=None, json_schema_extra=_not_null)

    @classmethod
    def model_validate_fields(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """Validate feature properties that are territory fields, naming the property on error."""
        try:
            return cls.model_validate(fields).model_dump(exclude_unset=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(
                f"properties.{where}: {first['msg']}", field=f"properties.{where}"
            ) from exc


class TerritoryUpdate(_TerritoryUpdateFields):
    """A partial change (PATCH): only the fields given change; a geometry or parts reshape."""

    properties: dict[str, Any] | None = Field(default=None, json_schema_extra=FREE_PROPERTIES)
    geometry: dict[str, Any] | None = Field(
        default=None, description="GeoJSON (Multi)Polygon", json_schema_extra=_not_null
    )
    counties: list[str] | None = Field(default=None, max_length=5000, json_schema_extra=_not_null)
    states: list[str] | None = Field(default=None, max_length=60, json_schema_extra=_not_null)

    @model_validator(mode="after")
    def _one_shape(self) -> TerritoryUpdate:
        given = self.model_fields_set
        if self.geometry is not None and (self.counties or self.states):
            raise ValueError("give either a geometry or counties/states, not both")
        if "geometry" in given and self.geometry is None:
            raise ValueError("geometry cannot be null; leave it out to keep the shape")
        if given & {"counties", "states"} and not (self.counties or self.states):
            raise ValueError("counties/states are empty: give at least one, or leave both out")
        check_properties(self.properties or {})
        return self

    def to_draft(self, *, repair: bool = False) -> TerritoryDraft:
        """The draft of this partial change."""
        provided = set(self.model_fields_set)
        geometry = (
            polygonal_from_geojson(self.geometry, repair=repair, field="geometry")
            if self.geometry is not None
            else None
        )
        for required in ("name", "priority", "exclusive"):
            if required in provided and getattr(self, required) is None:
                raise InputError(f"{required} cannot be null", field=required)
        return TerritoryDraft(
            name=self.name,
            owner=self.owner,
            priority=self.priority,
            exclusive=self.exclusive,
            properties=self.properties,
            geometry=geometry,
            counties=self.counties or [],
            states=self.states or [],
            provided=provided,
        )


class CountsPublic(BaseModel):
    """Counts of an upsert."""

    inserted: int
    updated: int
    total: int


class HealthPublic(BaseModel):
    """Service and database health."""

    status: Literal["ok", "degraded"]
    database: dict[str, Any]
    version: str


# --- GeoJSON and problems (documented shapes of the responses) ----------------------------


class LinkPublic(BaseModel):
    """A link (rel self/next/prev/items)."""

    rel: str
    href: str
    type: str | None = None


class FeaturePublic(BaseModel):
    """A GeoJSON Feature (RFC 7946: longitude first, WGS 84)."""

    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any] | None = Field(description="GeoJSON geometry")
    properties: dict[str, Any]


class FeatureCollectionPublic(BaseModel):
    """A page of a GeoJSON FeatureCollection, with counts and paging links."""

    type: Literal["FeatureCollection"]
    numberMatched: int = Field(description="Features matching the query, over all pages")  # noqa: N815
    numberReturned: int = Field(description="Features in this page")  # noqa: N815
    features: list[FeaturePublic]
    links: list[LinkPublic]


class CoverageFeaturePublic(BaseModel):
    """A feature of a coverage map: a territory, or an assigned customer (a Point)."""

    type: Literal["Feature"]
    id: int | str = Field(description="The territory id, or 'customer-<id>' for a customer")
    geometry: dict[str, Any] | None = Field(description="GeoJSON geometry")
    properties: dict[str, Any] = Field(
        description="name, owner, customer_count, customer_value, area_km2, shares, color; "
        "a customer's: kind, customer_id, territory_id, value"
    )


_ASSIGNED_AT = (
    "When the layer was last bulk-assigned; null: never, and every customer count is 0 "
    "(POST /layers/{layer}/assign)"
)


class CoverageSummaryPublic(BaseModel):
    """The whole layer's totals (whatever the bbox)."""

    territories: int
    customer_count: int
    customer_value: float
    area_km2: float
    assigned_at: datetime | None = Field(description=_ASSIGNED_AT)


class CoveragePublic(BaseModel):
    """A layer's coverage map: its territories (and customers) with stats and colours."""

    type: Literal["FeatureCollection"]
    layer: str
    summary: CoverageSummaryPublic
    features: list[CoverageFeaturePublic]


class SpreadTerritoryPublic(BaseModel):
    """A territory named in a spread, with its measure."""

    id: int
    name: str
    owner: str | None
    value: float


class SpreadPublic(BaseModel):
    """How evenly one measure is spread over a layer's territories."""

    mean: float
    cv: float = Field(description="Coefficient of variation")
    gini: float
    max_min_ratio: float | None = Field(description="null when the smallest is 0")
    above_mean: list[SpreadTerritoryPublic] = Field(description="The largest, largest first")
    below_mean: list[SpreadTerritoryPublic] = Field(description="The smallest, smallest first")


class BalancePublic(BaseModel):
    """A layer's balance: the spread of each measure, and each territory against the mean."""

    type: Literal["FeatureCollection"]
    layer: str
    assigned_at: datetime | None = Field(description=_ASSIGNED_AT)
    balance: dict[str, SpreadPublic] = Field(
        description="customer_count, customer_value and area_km2"
    )
    features: list[FeaturePublic]


class ProblemPublic(BaseModel):
    """An RFC 9457 problem: what went wrong and which field, row or coordinate caused it."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None
    location: dict[str, Any] | None = Field(default=None, description="GeoJSON Point")
    instance: str | None = None


class AssignPublic(BaseModel):
    """What a bulk assignment did."""

    layer: str
    assigned: int = Field(description="Customers with an owning territory (pins included)")
    unassigned: int = Field(description="Customers no territory covers")
    contested: int = Field(description="Customers covered by more than one territory")
    pinned: int = Field(description="Customers kept on the territory they are pinned to")
    seconds: float = Field(description="Time taken, reading and writing included")


class PinCreate(BaseModel):
    """Pin a customer to a territory (a named account): the pin wins over geography."""

    model_config = ConfigDict(extra="forbid")

    territory_id: StrictInt = Field(ge=1, description="A territory of the layer")


class TerritoryRef(BaseModel):
    """A territory, as look-ups name it."""

    id: int
    name: str
    owner: str | None


class LookupPublic(BaseModel):
    """Who owns a point in a layer: the owner, the rule that decided, every covering territory."""

    layer: str
    point: list[float] = Field(description="[lon, lat], degrees")
    owner: TerritoryRef | None = Field(description="null: no territory covers the point")
    rule: str | None = Field(description="only, priority, area or id; null: no owner")
    covering: list[TerritoryRef] = Field(description="every covering territory, owner first")


class OwnershipPublic(BaseModel):
    """Who owns a customer in one layer, and the rule that decided."""

    layer: str
    territory: TerritoryRef | None
    rule: str | None = Field(description="pinned, only, priority, area or id; null: no owner")


class CustomerTerritoriesPublic(BaseModel):
    """A customer's owning territory in every layer."""

    customer_id: int
    external_id: str
    point: list[float] = Field(description="[lon, lat], degrees")
    layers: list[OwnershipPublic]


# --- layer health (GET /layers/{layer}/validate) -------------------------------------------


class LayerProblemPublic(BaseModel):
    """A located problem of a layer: geometry (lon/lat) where it is, kind, reason and measures."""

    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any] | None = Field(description="GeoJSON; null for an empty territory")
    properties: dict[str, Any] = Field(
        description="kind, reason (what is wrong, how to fix it), territory_ids, "
        "territory_names and measures: area_km2, width_m (gap), uncovered_km2 (hole), "
        "parts and pieces (noncontiguous), length_m (overlap_edge)"
    )


class LayerHealthPublic(BaseModel):
    """A layer's health report: a FeatureCollection of problems and their count per kind."""

    type: Literal["FeatureCollection"]
    layer: str
    gap_width_m: float = Field(description="Gaps narrower than this (metres) were looked for")
    kinds: list[str] = Field(description="The kinds checked")
    summary: dict[str, int] = Field(description="Problems found per kind")
    numberReturned: int  # noqa: N815
    features: list[LayerProblemPublic]


# --- white space --------------------------------------------------------------------------


class WhiteSpaceSummaryPublic(BaseModel):
    """Totals of a market's white space in a layer."""

    layer: str
    layer_version: datetime
    market: dict[str, Any] = Field(description="kind (nation/states/counties/geometry), codes")
    uncovered_km2: float = Field(description="Uncovered area, geodesic km² (WGS 84)")
    uncovered_percent: float = Field(description="Uncovered share of the market's area, %")
    parts: int = Field(description="Uncovered polygons (the features)")
    customers: dict[str, float] = Field(description="count and value of uncovered customers")
    h3_res: int
    union: str = Field(
        description=(
            "How the layer's union was had: kept, updated, built, local (market only), or none "
            "(territories that overlap much: the market less all of them at once, no union)"
        )
    )
    seconds: float = Field(description="Time taken when the answer was worked out")


class WhiteSpacePublic(BaseModel):
    """Uncovered parts of a market (features, area_km2 each), totals, counties and hexagons."""

    type: Literal["FeatureCollection"]
    numberMatched: int  # noqa: N815
    numberReturned: int  # noqa: N815
    features: list[dict[str, Any]] = Field(description="Uncovered polygons, largest first")
    summary: WhiteSpaceSummaryPublic
    counties: dict[str, Any] = Field(
        description="FeatureCollection of counties by uncovered customer value, then area"
    )
    hexagons: dict[str, Any] = Field(
        description="FeatureCollection of H3 cells (lon/lat polygons) by uncovered value"
    )


# --- overlaps (issue 4) -------------------------------------------------------------------


class OverlapSidePublic(BaseModel):
    """One territory of an overlapping pair."""

    id: int
    name: str
    owner: str | None
    exclusive: bool


class ContestedPublic(BaseModel):
    """The customers inside an overlap: both territories cover them (border included)."""

    count: int
    value: float = Field(description="Sum of their values")
    customer_ids: list[int] | None = Field(
        default=None, description="Their ids, ascending; only with details=true"
    )


class OverlapPropertiesPublic(BaseModel):
    """What two territories overlap by, and what is at stake."""

    a: OverlapSidePublic
    b: OverlapSidePublic
    area_km2: float = Field(description="Geodesic area of the overlap (WGS 84), km²")
    percent_a: float = Field(description="The overlap as a percentage of a's area")
    percent_b: float = Field(description="The overlap as a percentage of b's area")
    severity: Literal["conflict", "shared"] = Field(
        description="conflict: either territory is exclusive; shared: neither is"
    )
    contested: ContestedPublic


class OverlapFeaturePublic(BaseModel):
    """One overlapping pair: the geometry is the overlap (lon/lat, RFC 7946)."""

    type: Literal["Feature"]
    id: str = Field(description="'<a id>-<b id>', a < b")
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon")
    properties: OverlapPropertiesPublic


class OverlapCollectionPublic(BaseModel):
    """Every overlapping pair of territories, by (a id, b id)."""

    type: Literal["FeatureCollection"]
    numberMatched: int  # noqa: N815
    numberReturned: int  # noqa: N815
    min_area_km2: float = Field(description="Overlaps smaller than this (km²) are left out")
    features: list[OverlapFeaturePublic]
    links: list[LinkPublic] | None = Field(
        default=None, description="self/next/prev pages (a layer's overlaps are paged)"
    )
