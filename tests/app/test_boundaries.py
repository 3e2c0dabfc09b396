"""Reference boundaries: every state and county is there and the two levels agree."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.boundaries import is_loaded
from app.repositories import boundaries as repo
from app.settings import Settings

# us-atlas 3.0.1 counties-10m: 3,231 county equivalents, less Falls Church city, VA (51610),
# whose ring collapses to nothing at that scale (see data/README.md).
COUNTIES = 3230
STATES = 56  # 50 states, DC, PR, AS, GU, MP, VI


def test_counties_layer_holds_every_county(session: Session) -> None:
    rows = session.execute(
        text(
            "SELECT count(*), count(DISTINCT t.code), count(*) FILTER (WHERE t.code LIKE '72%'), "
            "count(*) FILTER (WHERE t.code = '11001') "
            "FROM territories t JOIN layers l ON l.id = t.layer_id WHERE l.name = 'counties'"
        )
    ).one()
    total, distinct, puerto_rico, dc = rows
    assert total == distinct == COUNTIES
    assert puerto_rico == 78  # municipios
    assert dc == 1


def test_states_layer_holds_every_state(session: Session) -> None:
    codes = session.scalars(
        text(
            "SELECT t.properties->>'state_code' FROM territories t JOIN layers l "
            "ON l.id = t.layer_id WHERE l.name = 'states' ORDER BY 1"
        )
    ).all()
    assert len(codes) == STATES
    assert {"CA", "DC", "PR", "AK", "HI"} <= set(codes)


def test_county_areas_per_state_sum_to_the_state_area(session: Session) -> None:
    # Geodesic areas (m²) on the WGS 84 spheroid, computed by PostGIS.
    rows = session.execute(
        text(
            """
            WITH c AS (
                SELECT state_fips, sum(ST_Area(geom::geography)) AS area
                FROM boundaries WHERE level = 'county' GROUP BY state_fips
            )
            SELECT s.state_code, ST_Area(s.geom::geography) AS state_area, c.area AS county_area
            FROM boundaries s JOIN c ON c.state_fips = s.fips
            WHERE s.level = 'state'
            """
        )
    ).all()
    assert len(rows) == STATES
    off = {r.state_code: r.county_area / r.state_area - 1 for r in rows}
    assert {code: ratio for code, ratio in off.items() if abs(ratio) > 0.01} == {}


def test_every_geometry_is_valid(session: Session) -> None:
    bad = session.scalar(
        text("SELECT count(*) FROM territories WHERE NOT ST_IsValid(geom) OR ST_IsEmpty(geom)")
    )
    assert bad == 0


def test_every_county_lies_in_its_state(session: Session) -> None:
    outside = session.scalars(
        text(
            "SELECT c.fips FROM boundaries c JOIN boundaries s "
            "ON s.level = 'state' AND s.fips = c.state_fips "
            "WHERE c.level = 'county' AND NOT ST_Covers(s.geom, ST_PointOnSurface(c.geom))"
        )
    ).all()
    assert outside == []


def test_aleutians_keep_both_sides_of_the_antimeridian(session: Session) -> None:
    # Aleutians West (02016): islands east of 180° (Attu) and west of it (Adak) are separate
    # parts, every longitude stays within ±180.
    east, west, xmin, xmax = session.execute(
        text(
            "SELECT count(*) FILTER (WHERE ST_XMin(g) > 0), count(*) FILTER (WHERE ST_XMax(g) < 0),"
            " min(ST_XMin(g)), max(ST_XMax(g)) "
            "FROM (SELECT (ST_Dump(geom)).geom AS g FROM boundaries WHERE fips = '02016') parts"
        )
    ).one()
    assert east > 0 and west > 0
    assert -180 <= xmin < -179 and 179 < xmax <= 180


def test_loading_again_changes_nothing(session: Session, settings: Settings) -> None:
    assert is_loaded(session, data_dir=settings.data_dir)


def test_counties_page_through_the_api(client: TestClient) -> None:
    seen = 0
    url: str | None = "/layers/counties/territories?limit=1000"
    while url:
        body = client.get(url).json()
        seen += body["numberReturned"]
        assert body["numberMatched"] == COUNTIES
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert seen == COUNTIES


def test_reloading_keeps_ids_and_user_changes(session: Session) -> None:
    assert repo.build_layer(session, name="probe", level="state", title="p", reset=False) == 56
    ids = dict(session.execute(text(_PROBE_CODES)).all())
    # A user reshapes Arizona and renames Utah's owner: both must survive a reload.
    session.execute(
        text(
            "UPDATE territories SET kind = 'custom', "
            "geom = ST_Multi(ST_MakeEnvelope(-114, 31, -109, 37, 4326)) "
            "WHERE code = '04' AND layer_id = (SELECT id FROM layers WHERE name = 'probe')"
        )
    )
    session.execute(text("UPDATE territories SET owner = 'Ann' WHERE id = :id"), {"id": ids["49"]})
    assert repo.build_layer(session, name="probe", level="state", title="p", reset=False) == 0
    assert repo.layer_count(session, name="probe", level="state") == 56
    assert repo.build_layer(session, name="probe", level="state", title="p", reset=True) == 55
    after = dict(session.execute(text(_PROBE_CODES)).all())
    assert after == ids
    owner, area = session.execute(
        text(
            "SELECT (SELECT owner FROM territories WHERE id = :utah), "
            "(SELECT ST_Area(geom) FROM territories WHERE id = :arizona)"
        ),
        {"utah": ids["49"], "arizona": ids["04"]},
    ).one()
    assert owner == "Ann"
    assert area == 30.0  # still the user's 5 x 6 degree box
    session.rollback()


_PROBE_CODES = (
    "SELECT t.code, t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
    "WHERE l.name = 'probe'"
)
