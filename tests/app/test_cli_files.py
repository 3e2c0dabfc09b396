"""``territory territories import`` and ``territory export`` against the test database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from tests import canonical

LAYER = "cli-plan"


@pytest.fixture
def runner(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, clean: None, session: Session
) -> CliRunner:
    """A CLI runner whose commands use the test database, and an empty layer LAYER."""
    assert settings.database.url
    monkeypatch.setenv("TERRITORY_DATABASE_URL", settings.database.url)
    session.execute(text("INSERT INTO layers (name) VALUES (:n)"), {"n": LAYER})
    session.commit()
    return CliRunner()


def _geojson(tmp_path: Path, *geometries: dict[str, object], name: str = "in.geojson") -> Path:
    features = [
        canonical.feature(geometry, name=f"T{i}", owner="Ann", priority=i)
        for i, geometry in enumerate(geometries)
    ]
    path = tmp_path / name
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _out(result: object) -> str:
    """The command's output with rich's line wrapping (at the test terminal's width) undone."""
    return " ".join(str(getattr(result, "output", "")).split())


def _names(session: Session, layer: str = LAYER) -> list[str]:
    names = session.scalars(
        text(
            "SELECT t.name FROM territories t JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = :n ORDER BY t.id"
        ),
        {"n": layer},
    ).all()
    session.rollback()
    return list(names)


def test_help_has_examples(runner: CliRunner) -> None:
    for command in (["territories", "import"], ["export"]):
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0
        assert f"Example: territory {' '.join(command)}" in _out(result)


def test_import_then_replace(runner: CliRunner, session: Session, tmp_path: Path) -> None:
    first = _geojson(tmp_path, canonical.SQUARE, canonical.MULTI)
    result = runner.invoke(cli, ["territories", "import", LAYER, str(first)])
    assert result.exit_code == 0, result.output
    assert "2 territories imported" in _out(result)
    assert _names(session) == ["T0", "T1"]

    second = _geojson(tmp_path, canonical.WITH_HOLE, name="other.geojson")
    result = runner.invoke(cli, ["territories", "import", LAYER, str(second), "--replace"])
    assert result.exit_code == 0, result.output
    assert "1 territories imported, 2 replaced" in _out(result)
    assert _names(session) == ["T0"]


def test_bad_file_is_one_line_and_writes_nothing(
    runner: CliRunner, session: Session, tmp_path: Path
) -> None:
    bad = _geojson(tmp_path, canonical.SQUARE, canonical.BOWTIE)
    result = runner.invoke(cli, ["territories", "import", LAYER, str(bad)])
    assert result.exit_code == 2
    assert "feature 1 'T1' (geometry): invalid geometry" in _out(result)
    assert "Traceback" not in _out(result)
    assert _names(session) == []

    garbage = tmp_path / "garbage.gpkg"
    garbage.write_bytes(b"nonsense" * 10)
    result = runner.invoke(cli, ["territories", "import", LAYER, str(garbage)])
    assert result.exit_code == 2
    assert "not a readable GeoPackage" in _out(result)

    good = _geojson(tmp_path, canonical.SQUARE, name="good.geojson")
    result = runner.invoke(cli, ["territories", "import", "nope", str(good)])
    assert result.exit_code == 2
    assert "layer 'nope' does not exist" in _out(result)


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "csv", "parquet"])
def test_export_and_import_back(
    runner: CliRunner, session: Session, tmp_path: Path, fmt: str
) -> None:
    source = _geojson(tmp_path, canonical.SQUARE, canonical.WITH_HOLE, canonical.MULTI)
    assert runner.invoke(cli, ["territories", "import", LAYER, str(source)]).exit_code == 0
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(cli, ["export", LAYER, "--format", fmt, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert f"3 territories written to {out}" in _out(result)

    session.execute(text("INSERT INTO layers (name) VALUES ('cli-copy')"))
    session.commit()
    result = runner.invoke(cli, ["territories", "import", "cli-copy", str(out)])
    assert result.exit_code == 0, result.output
    assert _names(session, "cli-copy") == ["T0", "T1", "T2"]
    same = session.scalar(
        text(
            "SELECT bool_and(ST_HausdorffDistance(a.geom, b.geom) < 1e-7) "
            "FROM territories a JOIN territories b ON a.name = b.name "
            "JOIN layers la ON la.id = a.layer_id JOIN layers lb ON lb.id = b.layer_id "
            "WHERE la.name = :a AND lb.name = 'cli-copy'"
        ),
        {"a": LAYER},
    )
    assert same is True


def test_export_assignments_and_errors(
    runner: CliRunner, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _geojson(tmp_path, canonical.SQUARE)
    assert runner.invoke(cli, ["territories", "import", LAYER, str(source)]).exit_code == 0
    refused = runner.invoke(cli, ["export", LAYER, "--what", "assignments"])
    assert refused.exit_code == 2
    assert "never been assigned" in _out(refused)

    customers = tmp_path / "customers.csv"
    customers.write_text("external_id,lon,lat,value\nin,0.5,0.5,7\nout,5,5,1\n")
    assert runner.invoke(cli, ["customers", "import", str(customers)]).exit_code == 0
    assert runner.invoke(cli, ["assign", LAYER]).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["export", LAYER, "--what", "assignments", "-f", "parquet"])
    assert result.exit_code == 0, result.output
    table = gpd.read_parquet(io.BytesIO((tmp_path / f"{LAYER}-assignments.parquet").read_bytes()))
    assert list(table["external_id"]) == ["in"]
    assert list(table["territory_name"]) == ["T0"]
    assert table.geometry.iloc[0].equals(shapely.Point(0.5, 0.5))

    # A re-import into the assigned layer re-assigns its customers.
    result = runner.invoke(cli, ["territories", "import", LAYER, str(source), "--replace"])
    assert result.exit_code == 0, result.output
    assert "re-assigned (1 assigned)" in _out(result)

    bad = runner.invoke(cli, ["export", LAYER, "--format", "shp"])
    assert bad.exit_code == 2
    assert "unknown export format 'shp'" in _out(bad)
