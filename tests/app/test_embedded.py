"""The embedded default: a PostgreSQL + PostGIS cluster created, started and stopped on demand."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from app import embedded
from app.cli import cli
from app.settings import EmbeddedSettings


def _answers(cluster: EmbeddedSettings) -> bool:
    try:
        with psycopg.connect(embedded.server_dsn(cluster), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def test_cluster_is_created_started_and_stopped(scratch_cluster: EmbeddedSettings) -> None:
    assert not _answers(scratch_cluster)
    embedded.ensure_running(scratch_cluster)
    embedded.wait_ready(scratch_cluster)
    url = embedded.ensure_database(scratch_cluster)
    assert url.endswith(f":{scratch_cluster.port}/scratch")
    with psycopg.connect(embedded.server_dsn(scratch_cluster, "scratch")) as conn:
        version = conn.execute("SELECT postgis_lib_version()").fetchone()
    assert version and version[0].startswith("3.")
    assert embedded.ensure_database(scratch_cluster) == url  # idempotent

    result = CliRunner().invoke(cli, ["db", "stop"])
    assert result.exit_code == 0, result.output
    assert not _answers(scratch_cluster)

    embedded.ensure_running(scratch_cluster)  # an existing cluster starts again
    embedded.wait_ready(scratch_cluster)
    assert _answers(scratch_cluster)


def test_missing_binaries_say_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_PG_ROOT", Path("/nonexistent"))
    with pytest.raises(embedded.EmbeddedDatabaseError, match="scripts/run"):
        embedded.find_bindir()


def test_a_cluster_of_another_user_is_explained(
    scratch_cluster: EmbeddedSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded.ensure_running(scratch_cluster)
    folder = embedded.data_dir(scratch_cluster)
    embedded._check_owner(folder)  # its owner passes
    stranger = os.geteuid() + 4242  # neither root nor the folder's owner
    monkeypatch.setattr(os, "geteuid", lambda: stranger)
    with pytest.raises(embedded.EmbeddedDatabaseError, match="belongs to"):
        embedded._check_owner(folder)
