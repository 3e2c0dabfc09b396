"""The engine's own exceptions: raised deep, mapped to HTTP once by the app."""

from __future__ import annotations


class SpatialError(ValueError):
    """Base of every engine error; ``field`` names where in the input it happened."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class GeometryTypeError(SpatialError):
    """The geometry is of the wrong type (e.g. a Point where a polygon is required)."""


class MalformedGeometryError(SpatialError):
    """The GeoJSON cannot be read as a geometry at all."""


class CoordinateRangeError(SpatialError):
    """A coordinate is not finite or outside lon ±180 / lat ±90."""


class InvalidGeometryError(SpatialError):
    """The geometry is invalid (self-intersection, bad ring, ...); says why and where."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        location: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.location = location


class GeometryTooLargeError(SpatialError):
    """A geometry has more vertices than one territory or market may have."""
