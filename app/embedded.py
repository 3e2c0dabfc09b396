"""The embedded default: a local PostgreSQL + PostGIS cluster in a data folder of the project.

Used when no ``DATABASE_URL`` is set. The binaries come from the OS packages (``initdb`` and
``pg_ctl`` under ``/usr/lib/postgresql/<major>/bin``); PostgreSQL refuses to run as root, so as
root the cluster is owned and run by the ``postgres`` system user. Authentication is ``trust``
on 127.0.0.1 only: the cluster is a developer convenience, never a production server.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from app.settings import EmbeddedSettings

_PG_ROOT = Path("/usr/lib/postgresql")
_SUPERUSER = "postgres"
_START_TIMEOUT_S = 60
_PORT_FILE = "territory.port"  # in the cluster folder: the port it was started on


class EmbeddedDatabaseError(RuntimeError):
    """The embedded cluster cannot be created or started; the message says how to fix it."""


def _major_versions() -> list[int]:
    if not _PG_ROOT.is_dir():
        return []
    return sorted((int(p.name) for p in _PG_ROOT.iterdir() if p.name.isdigit()), reverse=True)


def find_bindir() -> Path:
    """The newest PostgreSQL bin folder whose server has PostGIS installed."""
    for major in _major_versions():
        bindir = _PG_ROOT / str(major) / "bin"
        postgis = Path(f"/usr/share/postgresql/{major}/extension/postgis.control")
        if (bindir / "initdb").exists() and postgis.exists():
            return bindir
    raise EmbeddedDatabaseError(
        "No PostgreSQL server with PostGIS found under /usr/lib/postgresql. "
        "Run ./scripts/run (it installs them), or install postgresql and "
        "postgresql-<major>-postgis-3, or set DATABASE_URL to an existing PostGIS database."
    )


def _as_owner(cmd: list[str]) -> list[str]:
    # PostgreSQL will not run as root: hand the work to the postgres system user.
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise EmbeddedDatabaseError(
                "running as root needs runuser (util-linux) to drop to postgres"
            )
        return [runuser, "-u", _SUPERUSER, "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(_as_owner(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EmbeddedDatabaseError(f"{what} failed: {(proc.stderr or proc.stdout).strip()}")


def data_dir(settings: EmbeddedSettings) -> Path:
    """The cluster's folder: the configured one, unless root's postgres user cannot reach it.

    A checkout under /root is not traversable by the postgres user; the cluster then lives
    under /var/lib/postgresql, in a folder named after the checkout so projects do not mix.
    """
    wanted = settings.data_dir.resolve()
    if os.geteuid() != 0 or _postgres_can_reach(wanted.parent):
        return wanted
    tag = hashlib.sha1(str(wanted).encode()).hexdigest()[:10]
    return Path("/var/lib/postgresql") / f"territory-{tag}"


@functools.cache
def _postgres_can_reach(folder: Path) -> bool:
    # test -x fails too when any ancestor is not traversable: exactly what initdb would hit.
    probe = subprocess.run(_as_owner(["test", "-x", str(folder)]), capture_output=True, check=False)
    return probe.returncode == 0


def _prepare_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir, user=_SUPERUSER, group=_SUPERUSER)
        data_dir.chmod(0o700)


def _initdb(bindir: Path, pgdata: Path) -> None:
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
        "initdb",
    )


def _check_owner(pgdata: Path) -> None:
    # A checkout used first as root and then as a user (or the other way round) has a cluster
    # the current user cannot run: say so instead of letting pg_ctl fail obscurely.
    expected = pwd.getpwnam(_SUPERUSER).pw_uid if os.geteuid() == 0 else os.geteuid()
    owner = pgdata.stat().st_uid
    if owner != expected:
        raise EmbeddedDatabaseError(
            f"the embedded cluster in {pgdata} belongs to {_user_name(owner)}, not "
            f"{_user_name(expected)}: run as that user, or remove the folder (its data goes "
            "with it), or set TERRITORY_EMBEDDED_DATA_DIR to another folder"
        )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _is_running(bindir: Path, pgdata: Path) -> bool:
    proc = subprocess.run(
        _as_owner([str(bindir / "pg_ctl"), "status", "-D", str(pgdata)]),
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def port(settings: EmbeddedSettings) -> int:
    """The port the cluster listens on: recorded in its folder at start, else the configured one."""
    try:
        return int((data_dir(settings) / _PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return settings.port


def _port_free(candidate: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL itself does: connections of a just-stopped server linger in TIME_WAIT
        # and must not make its own port look taken (a restart would move the cluster).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", candidate))
        except OSError:
            return False
    return True


def _choose_port(settings: EmbeddedSettings) -> int:
    # Another checkout's cluster (or anything else) may hold the configured port: take the next
    # free one and remember it, so every later command of this checkout finds the same server.
    for candidate in (port(settings), *range(settings.port, settings.port + 100)):
        if _port_free(candidate):
            return candidate
    raise EmbeddedDatabaseError(
        f"no free port in {settings.port}..{settings.port + 99}; set TERRITORY_EMBEDDED_PORT"
    )


def _start(bindir: Path, pgdata: Path, port: int) -> None:
    # The socket lives in the data folder, so nothing outside the project is needed.
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={pgdata}"
    _run(
        [
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(pgdata),
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "-l",
            str(pgdata / "server.log"),
            "-o",
            options,
        ],
        f"starting PostgreSQL (log: {pgdata / 'server.log'})",
    )


def server_dsn(settings: EmbeddedSettings, database: str = "postgres") -> str:
    """The libpq connection string of a database on the embedded cluster."""
    return f"host=127.0.0.1 port={port(settings)} user={_SUPERUSER} dbname={database}"


def sqlalchemy_url(settings: EmbeddedSettings, database: str | None = None) -> str:
    """The SQLAlchemy URL of a database on the embedded cluster."""
    name = database or settings.database
    return f"postgresql+psycopg://{_SUPERUSER}@127.0.0.1:{port(settings)}/{name}"


def ensure_running(settings: EmbeddedSettings) -> None:
    """Create the cluster if it does not exist and start it if it is not running."""
    bindir = find_bindir()
    pgdata = data_dir(settings)
    if not (pgdata / "PG_VERSION").exists():
        _prepare_dir(pgdata)
        _initdb(bindir, pgdata)
    _check_owner(pgdata)
    if not _is_running(bindir, pgdata):
        chosen = _choose_port(settings)
        (pgdata / _PORT_FILE).write_text(f"{chosen}\n")
        _start(bindir, pgdata, chosen)


def ensure_database(settings: EmbeddedSettings, database: str | None = None) -> str:
    """Create the database and its postgis extension if missing; return its SQLAlchemy URL."""
    name = database or settings.database
    with psycopg.connect(server_dsn(settings), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(server_dsn(settings, name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return sqlalchemy_url(settings, name)


def drop_database(settings: EmbeddedSettings, database: str) -> None:
    """Drop a database of the embedded cluster (used by the tests for a clean start)."""
    with psycopg.connect(server_dsn(settings), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def stop(settings: EmbeddedSettings) -> None:
    """Stop the embedded cluster if it runs."""
    bindir = find_bindir()
    pgdata = data_dir(settings)
    if (pgdata / "PG_VERSION").exists() and _is_running(bindir, pgdata):
        _run(
            [str(bindir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast"], "stopping PostgreSQL"
        )


def wait_ready(settings: EmbeddedSettings, timeout_s: float = _START_TIMEOUT_S) -> None:
    """Block until the cluster accepts connections."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(server_dsn(settings), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise EmbeddedDatabaseError(f"embedded PostgreSQL not ready: {exc}") from exc
            time.sleep(0.2)
