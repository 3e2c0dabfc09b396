"""Colours and coverage simplification, on shapes small enough to check by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from app.settings import Settings
from spatial.coverage import (
    cleaned,
    colors,
    conflicts,
    neighbours,
    simplify,
    tolerance_for_zoom,
)
from spatial.errors import SpatialError
from spatial.measure import geodesic_area_km2


def _grid(n: int) -> np.ndarray:
    return np.array([shapely.box(x, y, x + 1, y + 1) for y in range(n) for x in range(n)])


def test_touching_squares_never_share_a_colour() -> None:
    cells = _grid(5)  # corner contacts count: each inner cell has 8 neighbours
    color = colors(cells)
    a, b = neighbours(cells)
    assert a.size == 72  # 5x5 king's graph: 2 * 4 * 5 (sides) + 2 * 4 * 4 (corners)
    assert (color[a] != color[b]).all() and color.max() <= 5
    assert conflicts(cells, color) == 0


def test_apart_and_overlapping() -> None:
    far = [shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)]
    assert colors(far).tolist() == [0, 0]  # nothing touches: one colour will do
    stacked = [shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)]
    assert len(set(colors(stacked).tolist())) == 2


def test_the_us_maps_need_at_most_six_colours() -> None:
    data = Settings().data_dir
    for name in ("us_states.parquet", "us_counties.parquet"):
        geoms = np.asarray(gpd.read_parquet(data / name).geometry.values, dtype=object)
        color = colors(geoms)
        assert color.max() <= 5 and conflicts(geoms, color) == 0


def _zigzag_pair() -> np.ndarray:
    """Two territories sharing a border with many small zigzags (edge-matched)."""
    xs = np.linspace(0, 10, 201)
    border = [(x, 5 + (0.02 if i % 2 else -0.02)) for i, x in enumerate(xs)]
    south = shapely.Polygon([(0, 0), (10, 0), *border[::-1]])
    north = shapely.Polygon([*border, (10, 10), (0, 10)])
    return np.array([south, north], dtype=object)


def test_simplifying_keeps_the_shared_border_shared() -> None:
    pair = _zigzag_pair()
    simple = simplify(pair, tolerance_m=20_000)
    assert shapely.get_num_coordinates(simple).sum() < shapely.get_num_coordinates(pair).sum() / 10
    assert shapely.is_valid(simple).all()
    # No gap, no overlap: the two halves still tile the square exactly.
    union = shapely.union_all(simple)
    assert union.equals(shapely.box(0, 0, 10, 10))
    assert shapely.area(shapely.intersection(simple[0], simple[1])) == pytest.approx(0)
    # Each on its own would open slivers along the border.
    alone = shapely.simplify(pair, 20_000 / 111_320)
    assert shapely.area(shapely.intersection(alone[0], alone[1])) > 0 or not shapely.union_all(
        alone
    ).equals(shapely.box(0, 0, 10, 10))


# How much of a layer's area its union keeps once simplified at a zoom (relative), indexed by
# min(zoom, 6): at zooms 0-2 a pixel is 39-156 km and the coastline moves by up to one (the
# counties lose 2.0 % at zoom 0); from zoom 6 on, a pixel is under 2.5 km.
AREA_KEPT = (0.03, 0.03, 0.03, 0.02, 0.02, 0.02, 1e-3)


def test_counties_simplified_at_every_zoom_leave_no_gaps() -> None:
    geoms = np.asarray(
        gpd.read_parquet(Settings().data_dir / "us_counties.parquet").geometry.values,
        dtype=object,
    )
    full = geodesic_area_km2([shapely.union_all(geoms)])[0]
    assert not shapely.coverage_is_valid(geoms)  # 13 counties' shared edges do not match
    clean = cleaned(geoms)
    assert shapely.coverage_is_valid(clean)
    assert geodesic_area_km2(clean).sum() == pytest.approx(geodesic_area_km2(geoms).sum(), rel=1e-6)
    # Every zoom the API accepts (0..22): each one simplifies (no zoom maps to tolerance 0,
    # full resolution), so none can be skipped as a no-op. ~0.5 s a zoom.
    for zoom in range(23):
        simple = simplify(clean, tolerance_m=tolerance_for_zoom(zoom))
        assert simple.shape == clean.shape
        assert shapely.is_valid(simple).all()
        assert shapely.coverage_is_valid(simple)  # no overlaps, every shared edge shared
        union = shapely.union_all(simple)
        # No hole at all (a gap between neighbours would be one; the source has none but a
        # zero-area one), and the area holds: only the coastline moves, by under a pixel.
        holes = [shapely.Polygon(r) for p in shapely.get_parts(union) for r in p.interiors]
        assert geodesic_area_km2(holes).sum() == pytest.approx(0, abs=1e-6)
        assert geodesic_area_km2([union])[0] == pytest.approx(full, rel=AREA_KEPT[min(zoom, 6)])


def test_overlaps_on_purpose_are_not_cleaned_away() -> None:
    stacked = np.array([shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)], dtype=object)
    simple = simplify(cleaned(stacked), tolerance_m=100)
    assert shapely.area(shapely.intersection(simple[0], simple[1])) == pytest.approx(1.0)


def test_zoom_range() -> None:
    assert tolerance_for_zoom(0) == pytest.approx(156_543.03, rel=1e-6)
    assert tolerance_for_zoom(10) == pytest.approx(152.87, rel=1e-3)
    with pytest.raises(SpatialError):
        tolerance_for_zoom(23)
    with pytest.raises(SpatialError):
        simplify(_zigzag_pair(), tolerance_m=-1)
