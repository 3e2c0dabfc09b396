"""The territory index: owners and rules on hand-checkable layouts, and against brute force."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import shape

from spatial.errors import SpatialError
from spatial.index import RULES, Territories, TerritoryIndex, _cell_index, _cell_index_one
from tests import canonical

_GEOD = Geod(ellps="WGS84")


def _layer(
    geometries: list[dict[str, Any]], priority: list[int] | None = None, **build: Any
) -> TerritoryIndex:
    geoms = np.array([shape(g) for g in geometries], dtype=object)
    area = np.array([abs(_GEOD.geometry_area_perimeter(g)[0]) for g in geoms])
    territories = Territories(
        ids=np.arange(1, len(geoms) + 1, dtype=np.int64),
        geoms=geoms,
        priority=np.array(priority or [0] * len(geoms), dtype=np.int64),
        area_m2=area,
    )
    return TerritoryIndex.build(territories, **build)


def _square(x0: float, y0: float, side: float) -> dict[str, Any]:
    ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _owners(index: TerritoryIndex, points: list[tuple[float, float]]) -> list[tuple[int, str]]:
    lon, lat = zip(*points, strict=True)
    found = index.owners(lon, lat)
    return list(zip(found.owner.tolist(), found.rules(), strict=True))


def test_inside_outside_and_on_the_border() -> None:
    index = _layer([canonical.SQUARE])
    got = _owners(index, [(0.5, 0.5), (2, 2), (1, 0.5), (0, 0), (1.0000001, 0.5)])
    assert got == [(1, "only"), (-1, "none"), (1, "only"), (1, "only"), (-1, "none")]


def test_a_hole_is_not_covered_but_its_edge_is() -> None:
    index = _layer([canonical.WITH_HOLE])
    got = _owners(index, [(12, 12), (11, 12), (10.5, 10.5), (14, 14)])
    assert got == [(-1, "none"), (1, "only"), (1, "only"), (1, "only")]


def test_every_part_of_a_multipolygon_counts() -> None:
    index = _layer([canonical.MULTI])
    assert _owners(index, [(20.5, 0.5), (22.5, 0.5), (21.5, 0.5)]) == [
        (1, "only"),
        (1, "only"),
        (-1, "none"),
    ]


def test_priority_then_area_then_id_decide() -> None:
    big, small = _square(0, 0, 4), _square(1, 1, 1)
    # Lower priority number wins even over a smaller territory.
    assert _owners(_layer([big, small], priority=[0, 5]), [(1.5, 1.5), (3, 3)]) == [
        (1, "priority"),
        (1, "only"),
    ]
    # Same priority: the smaller area wins.
    assert _owners(_layer([big, small]), [(1.5, 1.5)]) == [(2, "area")]
    # Same priority and area: the smaller id wins.
    assert _owners(_layer([small, small]), [(1.5, 1.5)]) == [(1, "id")]


def test_a_shared_border_is_covered_by_both_neighbours() -> None:
    index = _layer([canonical.LEFT_OF_BORDER, canonical.RIGHT_OF_BORDER])
    found = index.owners([31.0, 30.5, 31.5], [0.5, 0.5, 0.5])
    assert found.covering.tolist() == [2, 1, 1]
    # Equal squares at the same latitudes have equal areas: the id decides on the border.
    assert found.owner.tolist() == [1, 1, 2]
    assert found.rules() == ["id", "only", "only"]
    assert index.covering(31.0, 0.5).tolist() == [1, 2]


def test_the_antimeridian() -> None:
    index = _layer([canonical.ANTIMERIDIAN])
    got = _owners(index, [(179.5, 51.5), (-179.5, 51.5), (180, 51.5), (-180, 51.5), (0, 51.5)])
    assert got == [(1, "only")] * 4 + [(-1, "none")]


def test_bad_points_name_their_index() -> None:
    index = _layer([canonical.SQUARE])
    with pytest.raises(SpatialError) as err:
        index.owners([0.5, 0.5, 200.0], [0.5, np.nan, 0.5])
    assert err.value.field == "points[1]"
    with pytest.raises(SpatialError):
        index.owners([0.5, 0.5], [0.5])


def test_an_empty_layer_owns_nothing() -> None:
    index = _layer([])
    assert index.owners([1.0], [2.0]).owner.tolist() == [-1]


def _brute_force(index: TerritoryIndex, x: np.ndarray, y: np.ndarray) -> list[tuple[int, int]]:
    t = index.territories
    expected = []
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        hits = [i for i, g in enumerate(t.geoms) if shapely.intersects_xy(g, px, py)]
        best = min(hits, key=lambda i: (t.priority[i], t.area_m2[i], t.ids[i]), default=None)
        expected.append((-1 if best is None else int(t.ids[best]), len(hits)))
    return expected


@settings(max_examples=40, deadline=None)
@given(
    squares=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 20), st.integers(0, 2)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_index_agrees_with_brute_force(squares: list[tuple[int, int, int, int]], seed: int) -> None:
    # Squares on a 0.25-degree lattice: borders and corners land exactly on cell edges too.
    geometries = [_square(x / 4, y / 4, s / 4) for x, y, s, _ in squares]
    index = _layer(geometries, priority=[p for *_, p in squares], root_deg=1.0, max_depth=3)
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-0.5, 16, 300) * 8) / 8  # many points exactly on borders
    y = np.round(rng.uniform(-0.5, 16, 300) * 8) / 8
    found = index.owners(x, y)
    assert list(zip(found.owner.tolist(), found.covering.tolist(), strict=True)) == _brute_force(
        index, x, y
    )
    assert set(found.rules()) <= set(RULES)
    # The scalar fast path gives the very same answers.
    one_by_one = [index.owner_of(px, py) for px, py in zip(x[:60], y[:60], strict=True)]
    assert one_by_one == list(
        zip(
            found.owner[:60].tolist(), found.rules()[:60], found.covering[:60].tolist(), strict=True
        )
    )


def test_scalar_fast_path_on_the_canonical_cases() -> None:
    index = _layer([canonical.LEFT_OF_BORDER, canonical.RIGHT_OF_BORDER, canonical.WITH_HOLE])
    assert index.owner_of(31.0, 0.5) == (1, "id", 2)
    assert index.owner_of(31.5, 0.5) == (2, "only", 1)
    assert index.owner_of(12, 12) == (-1, "none", 0)
    assert index.owner_of(0, 0) == (-1, "none", 0)
    with pytest.raises(SpatialError):
        index.owner_of(181, 0)


def test_cell_index_is_exact_at_the_edges() -> None:
    edges = np.array([-180.0, -179.875, 0.0, 1.0, 179.875])
    values = np.concatenate(
        [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), [-1e-300, 1e-300]]
    )
    got = _cell_index(values, -180.0, 0.125)
    # The exact answer: the largest i with origin + i * step <= v (edges are exact here).
    expected = [max(i for i in range(-2, 2885) if -180.0 + i * 0.125 <= v) for v in values]
    assert got.tolist() == expected
    assert [_cell_index_one(float(v), -180.0, 0.125) for v in values] == expected
