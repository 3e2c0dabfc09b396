"""Input geometry validation: the canonical shapes, each answer worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from spatial.errors import (
    CoordinateRangeError,
    GeometryTypeError,
    InvalidGeometryError,
    MalformedGeometryError,
)
from spatial.geometry import invalid_lonlat, polygonal_from_geojson, ring_coordinates
from tests import canonical


def test_polygon_becomes_a_counter_clockwise_multipolygon() -> None:
    geom = polygonal_from_geojson(canonical.SQUARE_CW)
    assert geom.geom_type == "MultiPolygon"
    assert geom.area == pytest.approx(1.0)
    assert shapely.is_ccw(geom.geoms[0].exterior)


def test_hole_is_kept() -> None:
    geom = polygonal_from_geojson(canonical.WITH_HOLE)
    assert geom.area == pytest.approx(16 - 4)
    assert len(geom.geoms[0].interiors) == 1
    assert not shapely.is_ccw(geom.geoms[0].interiors[0])  # holes run clockwise (RFC 7946)


def test_multipolygon_and_antimeridian_parts_are_kept() -> None:
    assert len(polygonal_from_geojson(canonical.MULTI).geoms) == 2
    geom = polygonal_from_geojson(canonical.ANTIMERIDIAN)
    assert len(geom.geoms) == 2
    assert geom.bounds == (-180.0, 51.0, 180.0, 52.0)


def test_self_intersection_is_rejected_with_its_location() -> None:
    with pytest.raises(InvalidGeometryError) as err:
        polygonal_from_geojson(canonical.BOWTIE)
    assert err.value.location == (0.5, 0.5)
    assert "Self-intersection" in err.value.message
    assert "repair=true" in err.value.message


def test_self_intersection_is_repaired_on_request() -> None:
    geom = polygonal_from_geojson(canonical.BOWTIE, repair=True)
    assert geom.is_valid
    assert len(geom.geoms) == 2
    assert geom.area == pytest.approx(0.5)  # two triangles of 1/4 each


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the NaN case
@pytest.mark.parametrize(
    ("geometry", "error"),
    [
        (canonical.POINT, GeometryTypeError),
        # shapely < 2.1 refuses to build the ring, newer ones build it and call it invalid
        (canonical.TOO_SHORT, (MalformedGeometryError, InvalidGeometryError)),
        (canonical.SWAPPED, CoordinateRangeError),
        ({"type": "Polygon"}, MalformedGeometryError),
        ({"coordinates": []}, MalformedGeometryError),
        ([1, 2], MalformedGeometryError),
        ({"type": "Polygon", "coordinates": []}, InvalidGeometryError),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [math.nan, 1], [0, 0]]]},
            CoordinateRangeError,
        ),
    ],
)
def test_bad_geometries_are_rejected(
    geometry: object, error: type[Exception] | tuple[type[Exception], ...]
) -> None:
    with pytest.raises(error) as err:
        polygonal_from_geojson(geometry, field="geometry")
    assert err.value.field == "geometry"  # type: ignore[attr-defined]


def test_invalid_lonlat_finds_each_bad_point() -> None:
    lon = np.array([0.0, 181.0, -180.0, np.nan, 10.0])
    lat = np.array([0.0, 0.0, 90.0, 0.0, -90.5])
    assert invalid_lonlat(lon, lat).tolist() == [1, 3, 4]


def test_ring_coordinates_skip_empty_parts() -> None:
    # An empty part has no ring: counted as one, it shifted the next part's hole to an
    # exterior (a MultiPolygon read from WKB may hold one; GeoJSON input never does).
    holed = "((2 2, 8 2, 8 8, 2 8, 2 2), (4 4, 6 4, 6 6, 4 6, 4 4))"
    for wkt in (f"MULTIPOLYGON (EMPTY, {holed})", f"MULTIPOLYGON ({holed}, EMPTY)"):
        _xy, ring, geom, sign = ring_coordinates([shapely.from_wkt(wkt)])
        assert sign.tolist() == [1.0, -1.0] and geom.tolist() == [0, 0]
        assert np.unique(ring).size == 2
