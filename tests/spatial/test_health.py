"""Layer health checks: shapes whose answers are known by hand, and the counties against PostGIS."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.errors import SpatialError
from spatial.health import (
    KINDS,
    Problem,
    check_layer,
    geodesic_length_m,
    local_widths_m,
    search_width_deg,
    summary,
)
from spatial.measure import geodesic_area_km2
from tests import canonical

_GEOD = Geod(ellps="WGS84")


def _sliver_squares(width_m: float, lat: float = 40.0) -> tuple[shapely.Polygon, ...]:
    """Two half-degree squares side by side, ``width_m`` metres apart at mid-height."""
    lon2, _, _ = _GEOD.fwd(-99.5, lat + 0.25, 90, width_m)
    gap_deg = lon2 + 99.5
    left = shapely.box(-100, lat, -99.5, lat + 0.5)
    right = shapely.box(-99.5 + gap_deg, lat, -99.0, lat + 0.5)
    return left, right, shapely.box(-99.5, lat, -99.5 + gap_deg, lat + 0.5)


def _check(*geoms: shapely.Geometry, **kwargs: object) -> list[Problem]:
    ids = list(range(1, len(geoms) + 1))
    return check_layer(ids, [f"T{i}" for i in ids], list(geoms), **kwargs)  # type: ignore[arg-type]


def _of(problems: list[Problem], kind: str) -> list[Problem]:
    return [p for p in problems if p.kind == kind]


def test_a_100_m_sliver_between_two_squares_is_found_where_it_is() -> None:
    left, right, truth = _sliver_squares(100.0)
    problems = _check(left, right)
    (gap,) = _of(problems, "gap")
    assert gap.territories == (1, 2)
    assert gap.geometry is not None
    # The gap is the strip between the squares, up to the closing's arcs at its open ends.
    assert shapely.symmetric_difference(gap.geometry, truth).area < 1e-3 * truth.area
    assert gap.measures["width_m"] == pytest.approx(100.0, rel=0.01)
    assert gap.measures["area_km2"] == pytest.approx(geodesic_area_km2([truth])[0], rel=1e-3)
    assert "100 m wide" in gap.reason and "'T1' (1)" in gap.reason
    # Narrow borders do not match: both squares' facing edges are flagged, nothing else.
    assert summary(problems) == dict.fromkeys(KINDS, 0) | {"gap": 1}


def test_a_gap_wider_than_asked_is_not_reported_and_is_with_a_wider_width() -> None:
    left, right, _ = _sliver_squares(2_000.0)
    assert _of(_check(left, right), "gap") == []
    (gap,) = _of(_check(left, right, gap_width_m=3_000), "gap")
    assert gap.measures["width_m"] == pytest.approx(2_000.0, rel=0.01)


def test_north_south_and_east_west_slivers_at_high_latitude() -> None:
    """At 65° N a degree of longitude is 47 km: widths are metres in every direction."""
    left, right, _ = _sliver_squares(500.0, lat=65.0)
    (east_west,) = _of(_check(left, right), "gap")
    assert east_west.measures["width_m"] == pytest.approx(500.0, rel=0.01)
    lat2 = _GEOD.fwd(-99.75, 65.5, 0, 500.0)[1]
    below = shapely.box(-100, 65.0, -99.5, 65.5)
    above = shapely.box(-100, lat2, -99.5, lat2 + 0.5)
    (north_south,) = _of(_check(below, above), "gap")
    assert north_south.measures["width_m"] == pytest.approx(500.0, rel=0.01)


def test_a_notch_where_two_territories_meet_the_outer_edge_is_no_gap() -> None:
    """B's top is 0.01° (1.1 km) below A's: a closing rounds off the corner between them."""
    a, b = shapely.box(-100, 40, -99.5, 40.5), shapely.box(-99.5, 40, -99, 40.49)
    problems = _check(a, b)
    assert _of(problems, "gap") == []
    # The border is shared but not vertex for vertex (A's edge runs on past B's corner).
    assert [p.territories for p in _of(problems, "overlap_edge")] == [(1, 2), (2, 1)]


def test_a_shared_border_is_healthy() -> None:
    problems = _check(shape(canonical.LEFT_OF_BORDER), shape(canonical.RIGHT_OF_BORDER))
    assert problems == []


def test_overlapping_squares_have_unmatched_edges() -> None:
    a, b = shapely.box(0, 0, 1, 1), shapely.box(0.9, 0, 2, 1)
    edges = _of(_check(a, b), "overlap_edge")
    assert [p.territories for p in edges] == [(1, 2), (2, 1)]
    assert edges[0].geometry is not None
    # The segments of a meeting b without matching it: x = 1 inside b, a degree of latitude
    # (110.57 km), and the bottom and top edges along b's, a degree of longitude each (111.32).
    assert edges[0].measures["length_m"] == pytest.approx(110_574 + 2 * 111_320, rel=1e-3)


def test_a_hole_no_one_fills_and_an_enclave() -> None:
    ring = shape(canonical.WITH_HOLE)
    (hole,) = _of(_check(ring), "hole")
    inner = shapely.box(11, 11, 13, 13)
    assert hole.geometry is not None and hole.geometry.equals(inner)
    assert hole.measures["area_km2"] == pytest.approx(
        geodesic_area_km2([inner], exact=True)[0], rel=1e-9
    )
    assert hole.measures["uncovered_km2"] == pytest.approx(hole.measures["area_km2"])
    assert "no owner" in hole.reason
    (enclave,) = _of(_check(ring, inner), "hole")
    assert enclave.territories == (1, 2)
    assert enclave.measures["uncovered_km2"] == pytest.approx(0.0, abs=1e-9)
    assert "enclave" in enclave.reason


def test_a_multipolygon_shows_its_smaller_parts() -> None:
    big, small = shapely.box(20, 0, 22, 2), shapely.box(23, 0, 23.5, 0.5)
    (multi,) = _of(_check(shapely.MultiPolygon([small, big])), "noncontiguous")
    assert multi.geometry is not None and multi.geometry.equals(shapely.MultiPolygon([small]))
    assert multi.measures["parts"] == 2 and multi.measures["pieces"] == 2
    assert multi.measures["area_km2"] == pytest.approx(geodesic_area_km2([small])[0])
    assert multi.measures["main_area_km2"] == pytest.approx(geodesic_area_km2([big])[0])
    # Two equal parts (canonical MULTI): one of them is the main piece, the other shown.
    (equal,) = _of(_check(shape(canonical.MULTI)), "noncontiguous")
    assert equal.measures["parts"] == 2


def test_parts_split_at_the_antimeridian_are_one_piece() -> None:
    assert _check(shape(canonical.ANTIMERIDIAN)) == []
    apart = shapely.MultiPolygon(
        [*shape(canonical.ANTIMERIDIAN).geoms, shapely.box(170, 0, 171, 1)]
    )
    (island,) = _of(_check(apart), "noncontiguous")
    assert island.measures == pytest.approx(
        {
            "parts": 3,
            "pieces": 2,
            "area_km2": geodesic_area_km2([shapely.box(170, 0, 171, 1)])[0],
            "main_area_km2": geodesic_area_km2([shape(canonical.ANTIMERIDIAN)])[0],
        }
    )


def test_invalid_and_empty_are_located_and_left_out_of_the_other_checks() -> None:
    bowtie = shape(canonical.BOWTIE)
    out_of_range = shapely.box(179, 0, 181, 1)
    problems = _check(bowtie, shapely.MultiPolygon(), out_of_range, shapely.box(0, 0, 1, 1))
    invalid = _of(problems, "invalid")
    assert [p.territories for p in invalid] == [(1,), (3,)]
    assert invalid[0].geometry is not None and invalid[0].geometry.equals(shapely.Point(0.5, 0.5))
    assert "Self-intersection" in invalid[0].reason and "repair=true" in invalid[0].reason
    assert "[181.0, 0.0]" in invalid[1].reason
    (empty,) = _of(problems, "empty")
    assert empty.territories == (2,) and empty.geometry is None
    # The valid square overlaps the bow tie, but the bow tie is not compared with anyone.
    assert summary(problems) == dict.fromkeys(KINDS, 0) | {"invalid": 2, "empty": 1}


def test_kinds_filter_and_bad_arguments() -> None:
    ring, multi = shape(canonical.WITH_HOLE), shape(canonical.MULTI)
    assert [p.kind for p in _check(ring, multi, kinds=["hole"])] == ["hole"]
    assert summary([], ["gap"]) == {"gap": 0}
    with pytest.raises(SpatialError, match="unknown kinds"):
        _check(ring, kinds=["holes"])
    with pytest.raises(SpatialError, match="positive"):
        _check(ring, gap_width_m=0)
    assert _check() == []


def test_search_width_covers_the_shortest_degree() -> None:
    assert search_width_deg(1_000, 0) == pytest.approx(1_000 / 110_574)
    assert search_width_deg(1_000, 60) == pytest.approx(1_000 / 55_660)
    assert search_width_deg(1_000, -89) == search_width_deg(1_000, 85)


def test_lengths_and_widths_in_metres() -> None:
    line = shapely.MultiLineString([[(0, 0), (0, 1)], [(1, 0), (1, 0.5), (1, 1)]])
    assert geodesic_length_m([line])[0] == pytest.approx(2 * 110_574, rel=1e-3)
    assert local_widths_m([], tolerance_m=1).size == 0


# --- the counties, checked against PostGIS --------------------------------------------------


def _counties(session: Session) -> tuple[list[int], list[str], np.ndarray]:
    rows = session.execute(
        text(
            "SELECT t.id, t.name, ST_AsBinary(t.geom) AS wkb FROM territories t "
            "JOIN layers l ON l.id = t.layer_id WHERE l.name = 'counties' ORDER BY t.id"
        )
    ).all()
    return [r.id for r in rows], [r.name for r in rows], shapely.from_wkb([r.wkb for r in rows])


def test_counties_parts_and_holes_match_postgis(session: Session) -> None:
    ids, names, geoms = _counties(session)
    problems = check_layer(ids, names, geoms)
    parts = dict(
        session.execute(
            text(
                "SELECT t.id, ST_NumGeometries(t.geom) FROM territories t JOIN layers l "
                "ON l.id = t.layer_id WHERE l.name = 'counties' AND ST_NumGeometries(t.geom) > 1"
            )
        ).all()
    )
    found = {p.territories[0]: p.measures["parts"] for p in _of(problems, "noncontiguous")}
    assert found == parts  # no county is split at the antimeridian alone
    assert len(found) > 50  # islands: Hawaii, Alaska, the coasts
    holes = session.execute(
        text(
            "SELECT t.id, ST_Area(ST_MakePolygon(ST_InteriorRingN(d.geom, n))::geography) / 1e6 "
            "AS km2 FROM territories t JOIN layers l ON l.id = t.layer_id, "
            "ST_Dump(t.geom) d, generate_series(1, ST_NumInteriorRings(d.geom)) n "
            "WHERE l.name = 'counties' ORDER BY 1, 2"
        )
    ).all()
    reported = sorted((p.territories[0], p.measures["area_km2"]) for p in _of(problems, "hole"))
    assert [h for h, _ in reported] == [r.id for r in holes]
    assert [a for _, a in reported] == pytest.approx([r.km2 for r in holes], rel=1e-4)
    # Every hole of a county is an enclave: an independent city of Virginia fills it.
    assert all(p.measures["uncovered_km2"] < 1e-3 for p in _of(problems, "hole"))
    assert len(holes) > 10
    session.rollback()


def test_counties_have_no_narrow_gap_as_postgis_sees_them(session: Session) -> None:
    """The holes of the counties' union in PostGIS narrower than 1 km: none with any area."""
    ids, names, geoms = _counties(session)
    narrow_holes = session.scalar(
        text(
            "WITH u AS (SELECT (ST_Dump(ST_Union(t.geom))).geom AS geom FROM territories t "
            "JOIN layers l ON l.id = t.layer_id WHERE l.name = 'counties'), "
            "h AS (SELECT ST_MakePolygon(ST_InteriorRingN(u.geom, n)) AS geom "
            "FROM u, generate_series(1, ST_NumInteriorRings(u.geom)) n), "
            "m AS (SELECT h.geom, (ST_MaximumInscribedCircle(h.geom)).* FROM h) "
            "SELECT count(*) FROM m WHERE ST_Area(geom::geography) >= 1 "
            "AND 2 * ST_Distance(center::geography, nearest::geography) < 1000"
        )
    )
    session.rollback()
    # Nor does the engine: not the rounded-off corners where two counties meet the coast
    # (a closing fills them), nor the sub-millimetre slivers of nearly collinear borders.
    assert _of(check_layer(ids, names, geoms, kinds=["gap"]), "gap") == []
    assert narrow_holes == 0


def test_a_county_shrunk_by_200_m_leaves_the_gap_postgis_computes(session: Session) -> None:
    """Saline County, Kansas, shrunk by 0.002° (173 m east-west, 222 m north-south at 38.8° N)."""
    ids, names, geoms = _counties(session)
    saline = ids.index(
        session.scalar(
            text(
                "SELECT t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
                "WHERE l.name = 'counties' AND t.code = '20169'"
            )
        )
    )
    geoms = geoms.copy()
    geoms[saline] = shapely.buffer(geoms[saline], -0.002, quad_segs=16)
    (gap,) = _of(check_layer(ids, names, geoms, kinds=["gap"]), "gap")
    truth_km2, truth_width_m, bordering = session.execute(
        text(
            "WITH g AS (SELECT s.layer_id, s.geom AS county, "
            "ST_Difference(s.geom, ST_GeomFromText(:shrunk, 4326)) AS geom "
            "FROM territories s WHERE s.id = :id), "
            "m AS (SELECT (ST_MaximumInscribedCircle(g.geom)).* FROM g) "
            "SELECT ST_Area(g.geom::geography) / 1e6, "
            "2 * ST_Distance(m.center::geography, m.nearest::geography), "
            "(SELECT array_agg(t.id ORDER BY t.id) FROM territories t "
            "WHERE t.layer_id = g.layer_id AND ST_Intersects(t.geom, g.county)) FROM g, m"
        ),
        {"shrunk": geoms[saline].wkt, "id": ids[saline]},
    ).one()
    session.rollback()
    assert sorted(gap.territories) == bordering  # Saline itself and every neighbour
    assert gap.measures["area_km2"] == pytest.approx(truth_km2, rel=1e-3)
    # Widest at the county's convex corners: more than the 222 m of a straight stretch.
    assert 222 < gap.measures["width_m"] == pytest.approx(truth_width_m, rel=0.05)


def test_counties_unmatched_edges_measured_as_postgis_does(session: Session) -> None:
    ids, names, geoms = _counties(session)
    edges = _of(check_layer(ids, names, geoms, kinds=["overlap_edge"]), "overlap_edge")
    assert 0 < len(edges) < 50  # the source matches almost every border
    for edge in edges:
        assert edge.geometry is not None
        truth = session.scalar(
            text("SELECT ST_Length(ST_GeomFromText(:w, 4326)::geography)"),
            {"w": edge.geometry.wkt},
        )
        assert edge.measures["length_m"] == pytest.approx(truth, rel=1e-6)
    session.rollback()
