"""Canonical test geometries, defined once and reused (GeoJSON dicts, lon/lat degrees).

Small enough to work the expected answers out by hand.
"""

from __future__ import annotations

from typing import Any

# A 1x1 degree square; its area is known and easy to reason about.
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}

# The same square, clockwise: valid, but RFC 7946 wants counter-clockwise exteriors on output.
SQUARE_CW = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}

# A 4x4 square with a 2x2 hole in the middle.
WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[10, 10], [14, 10], [14, 14], [10, 14], [10, 10]],
        [[11, 11], [11, 13], [13, 13], [13, 11], [11, 11]],
    ],
}

# Two disjoint unit squares.
MULTI = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[20, 0], [21, 0], [21, 1], [20, 1], [20, 0]]],
        [[[22, 0], [23, 0], [23, 1], [22, 1], [22, 0]]],
    ],
}

# Two unit squares sharing the border x = 31.
LEFT_OF_BORDER = {"type": "Polygon", "coordinates": [[[30, 0], [31, 0], [31, 1], [30, 1], [30, 0]]]}
RIGHT_OF_BORDER = {
    "type": "Polygon",
    "coordinates": [[[31, 0], [32, 0], [32, 1], [31, 1], [31, 0]]],
}

# An island chain across the 180° meridian, split there as RFC 7946 asks (two parts).
ANTIMERIDIAN = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[179, 51], [180, 51], [180, 52], [179, 52], [179, 51]]],
        [[[-180, 51], [-179, 51], [-179, 52], [-180, 52], [-180, 51]]],
    ],
}

# A bow-tie: the ring crosses itself at (0.5, 0.5).
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}

# A ring with too few positions to enclose anything.
TOO_SHORT = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}

# Out of range: longitude and latitude swapped for a point in California.
SWAPPED = {
    "type": "Polygon",
    "coordinates": [[[37, -122], [38, -122], [38, -121], [37, -121], [37, -122]]],
}

POINT = {"type": "Point", "coordinates": [0.5, 0.5]}


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """A GeoJSON Feature around ``geometry``."""
    return {"type": "Feature", "geometry": geometry, "properties": properties}
