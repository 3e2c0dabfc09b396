"""The ``territory`` CLI against the test database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, settings: Settings, clean: None) -> CliRunner:
    """A CLI runner whose commands use the test database."""
    assert settings.database.url
    monkeypatch.setenv("TERRITORY_DATABASE_URL", settings.database.url)
    return CliRunner()


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("db", "boundaries", "customers", "serve", "demo"):
        assert command in result.output
    generate = runner.invoke(cli, ["customers", "generate", "--help"])
    assert "Example: territory customers generate" in generate.output


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as the words that invoke it."""
    found = [path]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer's click, whichever it is)
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def test_every_command_s_help_has_an_example(runner: CliRunner) -> None:
    commands = _commands(typer.main.get_command(cli))
    assert len(commands) > 12
    for words in commands:
        result = runner.invoke(cli, [*words, "--help"])
        assert result.exit_code == 0, words
        assert "Example: territory" in result.output, f"territory {' '.join(words)} --help"


def test_db_upgrade_and_boundaries_load_are_idempotent(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["boundaries", "load"])
    assert result.exit_code == 0, result.output
    assert "already loaded" in result.output


def test_generate_upserts(runner: CliRunner, session: Session) -> None:
    first = runner.invoke(cli, ["customers", "generate", "--count", "300", "--seed", "5"])
    assert first.exit_code == 0, first.output
    assert "300 inserted, 0 updated" in first.output
    second = runner.invoke(cli, ["customers", "generate", "--count", "400", "--seed", "5"])
    assert "100 inserted, 300 updated" in second.output
    assert session.scalar(text("SELECT count(*) FROM customers")) == 400


def test_assign_shows_each_stage_with_counts(runner: CliRunner, session: Session) -> None:
    assert (
        runner.invoke(cli, ["customers", "generate", "--count", "2000", "--seed", "3"]).exit_code
        == 0
    )
    result = runner.invoke(cli, ["assign", "states"])
    assert result.exit_code == 0, result.output
    assigned = session.scalar(
        text(
            "SELECT count(*) FROM assignments a JOIN layers l ON l.id = a.layer_id "
            "WHERE l.name = 'states'"
        )
    )
    for stage in ("customers read", "customers assigned", "assignments written"):
        assert stage in result.output
    assert "2000/2000" in result.output.replace(",", "")  # read and assigned: counts of total
    assert f"states: {assigned} assigned" in result.output
    missing = runner.invoke(cli, ["assign", "nowhere"])
    assert missing.exit_code != 0 and len(missing.output.strip().splitlines()) == 1


def test_import_good_and_bad_files(runner: CliRunner, session: Session, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("external_id,lon,lat,value\na,-100,40,5\nb,-90,35,6\n")
    result = runner.invoke(cli, ["customers", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 inserted" in result.output

    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,lon,lat\nc,-100,40\nd,-100,95\n")
    result = runner.invoke(cli, ["customers", "import", str(bad)])
    assert result.exit_code == 2
    assert "row 3" in result.output
    assert "Traceback" not in result.output
    assert session.scalar(text("SELECT count(*) FROM customers")) == 2
