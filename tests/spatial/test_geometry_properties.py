"""Property tests of geometry parsing: whatever comes in, a sound shape or a SpatialError.

Hypothesis draws GeoJSON-like input of every kind (rings open or closed, either winding,
holes, huge and non-finite coordinates, altitudes, empty and wrongly nested arrays, other
types); the parser must never fail any other way, and what it accepts must be valid, 2D,
in range, non-empty and oriented as RFC 7946 says.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon

from spatial.errors import GeometryTooLargeError, SpatialError
from spatial.geometry import polygonal_from_geojson

# NaN coordinates are drawn on purpose: shapely warns while building such rings.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

# Coordinates: mostly plausible degrees, sometimes anything a float can be.
IN_RANGE = st.tuples(st.floats(-180, 180), st.floats(-90, 90))
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
WILD = st.tuples(ANY_FLOAT, ANY_FLOAT)
POSITION = st.one_of(
    IN_RANGE.map(list),
    WILD.map(list),
    st.tuples(st.floats(-180, 180), st.floats(-90, 90), ANY_FLOAT).map(list),  # altitude
    st.lists(ANY_FLOAT, max_size=1),  # too short
)
RING = st.lists(POSITION, max_size=7).map(lambda r: [*r, r[0]] if r and len(r) % 2 else r)
POLYGON_COORDS = st.lists(RING, max_size=3)
JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), ANY_FLOAT, st.text(max_size=5)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)
GEOMETRY = st.one_of(
    st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": POLYGON_COORDS}),
    st.fixed_dictionaries(
        {"type": st.just("MultiPolygon"), "coordinates": st.lists(POLYGON_COORDS, max_size=3)}
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Point", "LineString", "GeometryCollection", "Bogus", 7]),
            "coordinates": JUNK,
        }
    ),
    JUNK,
)


def _sound(geom: MultiPolygon) -> None:
    """What every accepted shape must be."""
    assert isinstance(geom, MultiPolygon) and not geom.is_empty and geom.is_valid
    assert not geom.has_z
    coords = shapely.get_coordinates(geom)
    assert all(math.isfinite(v) for v in coords.ravel())
    assert (abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all()
    for part in geom.geoms:  # RFC 7946: exteriors counter-clockwise, holes clockwise
        assert part.exterior.is_ccw
        assert all(not hole.is_ccw for hole in part.interiors)


@settings(max_examples=400, deadline=None)
@given(GEOMETRY, st.booleans())
def test_any_input_is_a_sound_shape_or_a_spatial_error(obj: Any, repair: bool) -> None:
    try:
        geom = polygonal_from_geojson(obj, repair=repair)
    except SpatialError as exc:
        assert str(exc)  # a message that says what is wrong
        return
    _sound(geom)


# A valid shape: a box, maybe with a hole, in either winding.
@st.composite
def boxes(draw: st.DrawFn) -> tuple[Polygon, bool]:
    x0, y0 = draw(st.floats(-179, 170)), draw(st.floats(-89, 80))
    w, h = draw(st.floats(0.01, 9)), draw(st.floats(0.01, 9))
    shell = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h), (x0, y0)]
    holes = []
    if draw(st.booleans()):
        holes.append([(x0 + w / 4, y0 + h / 4), (x0 + w / 2, y0 + h / 4), (x0 + w / 2, y0 + h / 2),
                      (x0 + w / 4, y0 + h / 2), (x0 + w / 4, y0 + h / 4)])  # fmt: skip
    clockwise = draw(st.booleans())
    if clockwise:
        shell, holes = shell[::-1], [h[::-1] for h in holes]
    return Polygon(shell, holes), clockwise


@settings(max_examples=200, deadline=None)
@given(boxes())
def test_a_valid_polygon_is_kept_whatever_its_winding(box: tuple[Polygon, bool]) -> None:
    polygon, _ = box
    found = polygonal_from_geojson(shapely.geometry.mapping(polygon))
    _sound(found)
    assert found.equals(polygon)  # the same point set, only oriented
    assert math.isclose(found.area, polygon.area, rel_tol=1e-12)


@settings(max_examples=100, deadline=None)
@given(boxes(), st.floats(-1e6, 1e6))
def test_altitudes_are_dropped(box: tuple[Polygon, bool], z: float) -> None:
    polygon, _ = box
    rings = [[[x, y, z] for x, y in polygon.exterior.coords]]
    found = polygonal_from_geojson({"type": "Polygon", "coordinates": rings})
    assert not found.has_z and found.equals(Polygon(polygon.exterior))


@settings(max_examples=100, deadline=None)
@given(boxes(), st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -181.0, 91.0]))
def test_a_bad_coordinate_is_refused_naming_it(box: tuple[Polygon, bool], bad: float) -> None:
    polygon, _ = box
    ring = [list(c) for c in polygon.exterior.coords]
    ring[1][1 if bad in (91.0,) else 0] = bad
    try:
        polygonal_from_geojson({"type": "Polygon", "coordinates": [ring]})
    except SpatialError as exc:
        assert exc.field == "geometry"
        return
    raise AssertionError(f"accepted a coordinate of {bad}")


def test_too_many_vertices_is_refused_before_any_other_work() -> None:
    ring = [[i * 1e-6, 0.0] for i in range(12)] + [[0.0, 1e-6], [0.0, 0.0]]
    try:
        polygonal_from_geojson({"type": "Polygon", "coordinates": [ring]}, max_vertices=10)
    except GeometryTooLargeError as exc:
        assert "14 vertices" in str(exc) and "at most 10" in str(exc)
        return
    raise AssertionError("a 14-vertex ring passed a 10-vertex limit")
