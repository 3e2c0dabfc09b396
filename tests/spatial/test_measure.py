"""Geodesic areas: by hand where possible, and against PostGIS's geography areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import measure
from spatial.measure import geodesic_area_km2, geodesic_area_m2
from tests import canonical

# A 1x1 degree cell at the equator: 110.574 km (1° of latitude) by 111.320 km (of longitude).
EQUATOR_CELL_KM2 = 12_308.8


def test_a_degree_at_the_equator_by_hand() -> None:
    (area,) = geodesic_area_km2([shape(canonical.SQUARE)])
    assert area == pytest.approx(EQUATOR_CELL_KM2, rel=1e-3)
    # Orientation does not matter; a hole is subtracted; parts are added.
    assert geodesic_area_km2([shape(canonical.SQUARE_CW)])[0] == pytest.approx(area)
    hole, multi = geodesic_area_m2([shape(canonical.WITH_HOLE), shape(canonical.MULTI)])
    outer, inner = geodesic_area_m2(
        [shapely.Polygon(shape(canonical.WITH_HOLE).exterior), shapely.box(11, 11, 13, 13)]
    )
    assert hole == pytest.approx(outer - inner)
    assert multi == pytest.approx(2 * geodesic_area_m2([shapely.box(20, 0, 21, 1)])[0])


def test_empty_and_non_polygonal_are_zero() -> None:
    found = geodesic_area_m2(
        [shapely.Polygon(), shapely.Point(0, 0), shapely.LineString([(0, 0), (1, 1)])]
    )
    assert found.tolist() == [0.0, 0.0, 0.0]


def test_agrees_with_postgis_geography(session: Session) -> None:
    """Counties, big boxes (geodesic edges bulge) and the Aleutians across 180°."""
    rows = session.execute(
        text(
            "SELECT ST_AsBinary(geom) AS wkb, ST_Area(geom::geography) AS area FROM territories "
            "WHERE layer_id = (SELECT id FROM layers WHERE name = 'counties') "
            "AND (id % 10 = 0 OR code = '02016')"
        )
    ).all()
    boxes = [shapely.box(-125, 25, -65, 50), shapely.box(-170, 50, -140, 72)]
    truth = [float(r.area) for r in rows]
    for box in boxes:
        truth.append(
            float(
                session.scalar(
                    text("SELECT ST_Area(ST_GeomFromText(:w, 4326)::geography)"), {"w": box.wkt}
                )
            )
        )
    geoms = [shapely.from_wkb(bytes(r.wkb)) for r in rows] + boxes
    session.rollback()
    found = geodesic_area_m2(geoms)
    assert len(found) > 300
    np.testing.assert_allclose(found, truth, rtol=1e-4)
    np.testing.assert_allclose(geodesic_area_m2(geoms, exact=True), truth, rtol=1e-4)


def test_long_edges_stay_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Edges of many degrees get points along their geodesic, so the vectorised path keeps
    within its error bound; the exact path (pyproj, one geometry at a time) agrees."""
    shapes = [
        shapely.box(-125, 25, -65, 50),  # continental US: 60° edges that bulge north
        shapely.box(-170, 50, -140, 72),
        shapely.box(170, 50, 190, 60),  # across the antimeridian
        shapely.Polygon([(-100, 30), (-80, 30), (-90, 45)], [[(-92, 33), (-88, 33), (-90, 36)]]),
    ]
    exact = geodesic_area_m2(shapes, exact=True)
    monkeypatch.setattr(measure, "_exact_m2", _refused)
    monkeypatch.setattr(measure, "_exact_rings_m2", _refused)
    np.testing.assert_allclose(geodesic_area_m2(shapes), exact, rtol=2e-5)


def test_slivers_are_measured_exactly_ring_by_ring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thin shapes with long edges are beyond the fast path's bound: measured on the ellipsoid
    from the rings already read, as pyproj measures each whole geometry."""
    slivers = [
        shapely.box(-100, 40, -90, 40.0001),  # 10° long, 11 m wide
        shapely.box(-100, 40, -90, 40.01).difference(shapely.box(-99, 40.002, -91, 40.008)),
        shapely.MultiPolygon([shapely.box(10, -30, 20, -29.9999), shapely.box(30, 5, 31, 5.00001)]),
    ]
    exact = geodesic_area_m2(slivers, exact=True)
    monkeypatch.setattr(measure, "_exact_m2", _refused)
    taken: list[int] = []
    by_rings = measure._exact_rings_m2
    monkeypatch.setattr(
        measure, "_exact_rings_m2", lambda *a: taken.append(a[-1].size) or by_rings(*a)
    )
    np.testing.assert_allclose(geodesic_area_m2(slivers), exact, rtol=1e-12)
    assert taken == [3]


def _refused(arr: object) -> object:
    raise AssertionError("the exact path was taken")
