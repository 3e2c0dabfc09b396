"""The schema: migrations build it from empty, and agree with the ORM models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, pool, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app import embedded
from app.db import alembic_config, include_object, migrate
from app.models import Base
from app.settings import EmbeddedSettings, Settings

SCRATCH = "territory_migrations_test"
TABLES = {"layers", "territories", "customers", "assignments", "boundaries"}


@pytest.fixture
def empty_engine(settings: Settings) -> Iterator[Engine]:
    """A brand-new empty database on the test server."""
    assert settings.database.url
    admin = create_engine(
        settings.database.url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{SCRATCH}"'))
    url = admin.url.set(database=SCRATCH)
    engine = create_engine(url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
    admin.dispose()


def _diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": include_object,
                "compare_type": True,
                "target_metadata": Base.metadata,
            },
        )
        return list(compare_metadata(context, Base.metadata))


def test_migrating_an_empty_database_creates_every_table(
    empty_engine: Engine, head_revision: str
) -> None:
    migrate(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert tables >= TABLES
    with empty_engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision
        gist = conn.scalars(
            text("SELECT indexname FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")
        ).all()
    assert set(gist) == {"idx_territories_geom", "idx_customers_geom", "idx_boundaries_geom"}


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    migrate(empty_engine)
    assert _diffs(empty_engine) == []


def test_downgrade_to_base_and_back(empty_engine: Engine) -> None:
    migrate(empty_engine)
    cfg = alembic_config()
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert not TABLES & set(inspect(empty_engine).get_table_names())
    migrate(empty_engine)
    migrate(empty_engine)  # idempotent
    assert set(inspect(empty_engine).get_table_names()) >= TABLES


def test_models_differ_from_an_unmigrated_database(empty_engine: Engine) -> None:
    # The comparison above can fail: on an empty database it reports every table missing.
    assert len(_diffs(empty_engine)) >= len(TABLES)


def test_embedded_url_follows_the_recorded_port(tmp_path: Path) -> None:
    cluster = EmbeddedSettings(port=55999, database="x", data_dir=tmp_path / "pg")
    folder = embedded.data_dir(cluster)  # as root, maybe under /var/lib/postgresql instead
    assert embedded.sqlalchemy_url(cluster) == "postgresql+psycopg://postgres@127.0.0.1:55999/x"
    folder.mkdir(parents=True)
    try:
        (folder / "territory.port").write_text("56010\n")
        assert embedded.sqlalchemy_url(cluster) == "postgresql+psycopg://postgres@127.0.0.1:56010/x"
    finally:
        shutil.rmtree(folder)


def test_an_assignment_must_point_into_its_own_layer(session: Session) -> None:
    rows = session.execute(
        text(
            "SELECT (SELECT id FROM layers WHERE name = 'states'), "
            "(SELECT t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
            "WHERE l.name = 'counties' LIMIT 1)"
        )
    ).one()
    session.execute(
        text(
            "INSERT INTO customers (external_id, geom) "
            "VALUES ('fk-probe', ST_SetSRID(ST_MakePoint(0, 0), 4326))"
        )
    )
    with pytest.raises(IntegrityError, match="fk_assignments_territory_layer"):
        session.execute(
            text(
                "INSERT INTO assignments (layer_id, customer_id, territory_id, rule) "
                "SELECT :layer, id, :territory, 'only' FROM customers "
                "WHERE external_id = 'fk-probe'"
            ),
            {"layer": rows[0], "territory": rows[1]},
        )
    session.rollback()


def _probe(session: Session) -> tuple[int, int, int, int]:
    """A fresh customer, the states layer, one state and one territory of another layer."""
    customer = session.scalar(
        text(
            "INSERT INTO customers (external_id, geom) "
            "VALUES ('fk-probe', ST_SetSRID(ST_MakePoint(0, 0), 4326)) RETURNING id"
        )
    )
    found = session.execute(
        text(
            "SELECT l.id AS layer, "
            "(SELECT t.id FROM territories t WHERE t.layer_id = l.id LIMIT 1) AS own, "
            "(SELECT t.id FROM territories t WHERE t.layer_id <> l.id LIMIT 1) AS other "
            "FROM layers l WHERE l.name = 'states'"
        )
    ).one()
    return int(customer), found.layer, found.own, found.other


def _assign(
    session: Session, *, layer: int, customer: int, territory: int, table: str = "assignments"
) -> None:
    """One geographic assignment row written straight to ``table``."""
    session.execute(
        text(
            f"INSERT INTO {table} (layer_id, customer_id, territory_id, rule) "
            "VALUES (:l, :c, :t, 'only')"
        ),
        {"l": layer, "c": customer, "t": territory},
    )


def test_a_partition_swapped_in_whole_is_checked_first(session: Session) -> None:
    # A bulk assignment attaches a table no trigger saw: the check function reads it first.
    customer, layer, own, other = _probe(session)
    session.execute(text("CREATE TEMP TABLE swap (LIKE assignments INCLUDING DEFAULTS)"))
    _assign(session, layer=layer, customer=customer, territory=own, table="swap")
    session.execute(text("SELECT assignments_check_territories('swap'::regclass)"))  # fine
    _assign(session, layer=layer, customer=customer + 1, territory=other, table="swap")
    with pytest.raises(IntegrityError, match=f"territory {other} is not in layer {layer}"):
        session.execute(text("SELECT assignments_check_territories('swap'::regclass)"))
    session.rollback()


def test_a_named_territory_keeps_its_id_and_layer(session: Session) -> None:
    customer, layer, own, other = _probe(session)
    _assign(session, layer=layer, customer=customer, territory=own)
    session.execute(text("UPDATE territories SET name = name WHERE id = :t"), {"t": own})
    with (
        pytest.raises(IntegrityError, match=f"assignments name territory {own}"),
        session.begin_nested(),
    ):
        session.execute(text("UPDATE territories SET id = -id WHERE id = :t"), {"t": own})
    # One no row names may change (as with NO ACTION).
    session.execute(text("UPDATE territories SET id = -id WHERE id = :t"), {"t": other})
    session.rollback()


def test_a_territory_named_by_an_open_write_cannot_be_deleted_under_it(engine: Engine) -> None:
    # The check locks the territories its rows name (FOR KEY SHARE), as the key did per row:
    # a delete of one waits for the writer, whose rows it then deletes too (no orphan).
    with Session(engine) as writer, Session(engine) as deleter:
        customer, layer, own, _ = _probe(writer)
        _assign(writer, layer=layer, customer=customer, territory=own)
        deleter.execute(text("SET LOCAL lock_timeout = '300ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            deleter.execute(text("DELETE FROM territories WHERE id = :t"), {"t": own})
        deleter.rollback()
        writer.rollback()
