"""The ``territory`` command line: database, boundaries, customers and the server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, cast

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import boundaries, demo, embedded
from app.assign import after_customers, assign_layer, before_customers
from app.auth import TOKEN_PREFIX, issue
from app.customer_files import CustomerBatch, batch_from_file
from app.db import make_engine, migrate, resolve_database_url
from app.errors import ServiceError
from app.indexes import IndexRegistry
from app.repositories import customers, keys, layers
from app.schemas import KeyCreate
from app.settings import Settings
from app.territory_files import (
    ExportFormat,
    ExportWhat,
    ImportOptions,
    export_layer,
    export_size,
    import_territories,
    read_territories,
)
from spatial.errors import SpatialError

console = Console(stderr=True)
cli = typer.Typer(
    help="Territory service: PostGIS-backed territories, customers and who owns what.\n\n"
    "With DATABASE_URL unset, every command uses the embedded PostgreSQL + PostGIS cluster "
    "in .pgdata/ (started on demand).",
    epilog="Example: territory demo && territory serve --port 8000",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(
    help="Database schema (Alembic migrations).",
    epilog="Example: territory db upgrade",
    no_args_is_help=True,
)
boundaries_cli = typer.Typer(
    help="Reference US state and county boundaries.",
    epilog="Example: territory boundaries load",
    no_args_is_help=True,
)
customers_cli = typer.Typer(
    help="Customers: demo data and file imports.",
    epilog="Example: territory customers import my-accounts.csv",
    no_args_is_help=True,
)
territories_cli = typer.Typer(
    help="Territories of a layer: file imports.",
    epilog="Example: territory territories import partners-2026 partners.gpkg --replace",
    no_args_is_help=True,
)
keys_cli = typer.Typer(
    help="API keys: every HTTP request needs one (read, write or admin), except /health, the "
    "docs and the map page.",
    epilog="Example: territory keys create --role read --layers partners-2026 --label acme",
    no_args_is_help=True,
)
cli.add_typer(db_cli, name="db")
cli.add_typer(boundaries_cli, name="boundaries")
cli.add_typer(customers_cli, name="customers")
cli.add_typer(territories_cli, name="territories")
cli.add_typer(keys_cli, name="keys")


def _engine(settings: Settings) -> Engine:
    engine = make_engine(resolve_database_url(settings), settings)
    migrate(engine)
    return engine


@contextmanager
def _session() -> Iterator[tuple[Settings, Session]]:
    """A migrated database session; the command commits once at its end."""
    settings = Settings()
    engine = _engine(settings)
    try:
        with Session(engine) as session:
            yield settings, session
    except (ServiceError, SpatialError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


class _RateColumn(ProgressColumn):
    """Items per second so far."""

    def render(self, task: Task) -> Text:
        """The task's rate, e.g. "1,234/s"."""
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


def _columns() -> tuple[ProgressColumn, ...]:
    """What a progress bar shows: label, bar, count of total, rate, elapsed time."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
    )


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(*_columns(), console=console, transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def _stages() -> Iterator[Callable[[str, int, int], None]]:
    """Rich progress bars for a staged job: each stage's bar appears when it first reports."""
    with Progress(*_columns(), console=console, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield report


def _store(make_batch: Callable[[], CustomerBatch]) -> None:
    """Build a batch (its errors reported like any other) and upsert it in one transaction."""
    with _session() as (_, session):
        batch = make_batch()
        held = before_customers(session)
        with _progress("customers", len(batch)) as advance:
            done = customers.upsert(session, batch=batch, progress=advance)
        if held:
            registry = IndexRegistry(sessionmaker(session.get_bind()))
            with console.status(f"assigning them in {', '.join(name for _, name in held)}"):
                after_customers(session, held=held, customer_ids=done.ids, registry=registry)
        session.commit()
    console.print(f"[green]{done.inserted} inserted, {done.updated} updated[/green]")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (creates the embedded cluster if needed).

    Example: territory db upgrade
    """
    settings = Settings()
    _engine(settings).dispose()
    console.print("[green]database is at the newest schema[/green]")


@db_cli.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL cluster (with DATABASE_URL set there is nothing to stop).

    Example: territory db stop
    """
    settings = Settings()
    if settings.database.url:
        console.print("DATABASE_URL is set: the embedded cluster is not in use")
        return
    embedded.stop(settings.embedded)
    console.print(
        f"[green]stopped the embedded cluster in {embedded.data_dir(settings.embedded)}[/green]"
    )


@boundaries_cli.command("load")
def boundaries_load(
    force: Annotated[
        bool,
        typer.Option(
            help="Reload even if loaded, resetting the shape and name of reference territories "
            "not reshaped by a user (ids, owners and priorities are kept)."
        ),
    ] = False,
) -> None:
    """Load every US state and county and build the "states" and "counties" layers.

    Example: territory boundaries load
    """
    with _session() as (settings, session):
        if not force and boundaries.is_loaded(session, data_dir=settings.data_dir):
            console.print("boundaries already loaded (use --force to reload)")
            return
        rows = boundaries.read_rows(settings.data_dir)
        started = time.perf_counter()
        with _progress("boundaries", len(rows)) as advance:
            result = boundaries.load(
                session, data_dir=settings.data_dir, reset=force, progress=advance
            )
        session.commit()
    console.print(
        f"[green]loaded {result.states} states and {result.counties} counties[/green]; "
        + ", ".join(f"{k}: {v} territories added or reset" for k, v in result.layers.items())
        + f" in {time.perf_counter() - started:.1f} s"
    )
    for layer, changed in result.layers.items():
        if changed:
            _keep_assigned(layer)


def _keep_assigned(layer: str) -> None:
    """Re-run the bulk assignment of a layer kept assigned whose territories were reloaded."""
    with _session() as (_, session):
        if layers.get_by_name(session, name=layer).assigned_at is None:
            return
        registry = IndexRegistry(sessionmaker(session.get_bind()))
        with console.status(f"re-assigning the customers of {layer}"):
            result = assign_layer(session, layer=layer, registry=registry)
        session.commit()
    console.print(f"{layer}: customers re-assigned ({result.assigned} assigned)")


@customers_cli.command("generate")
def customers_generate(
    count: Annotated[int, typer.Option(min=1, max=10_000_000, help="How many customers.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
) -> None:
    """Generate deterministic demo customers around real US ZIP centroids (upsert by external_id).

    Example: territory customers generate --count 1000000 --seed 7
    """
    _store(lambda: demo.generate(count, seed=seed))


@customers_cli.command("import")
def customers_import(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV, GeoJSON or GeoPackage")
    ],
) -> None:
    """Import customers from a file, all or nothing (upsert by external_id).

    Example: territory customers import accounts.csv
    """
    _store(lambda: batch_from_file(file.name, file.read_bytes()))


@territories_cli.command("import")
def territories_import(
    layer: Annotated[str, typer.Argument(help="Layer to import into, e.g. partners-2026")],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="GeoJSON, GeoPackage, zipped Shapefile, GeoParquet, KML/KMZ or CSV (WKT)",
        ),
    ],
    *,
    replace: Annotated[
        bool, typer.Option("--replace", help="The file's territories replace the layer's.")
    ] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair invalid polygons (make_valid).")
    ] = False,
    crs: Annotated[
        str | None,
        typer.Option(help="CRS of a file that declares none (a .shp without .prj): EPSG:4326"),
    ] = None,
    source_layer: Annotated[
        str | None, typer.Option(help="Layer (or .shp name) of a file that holds several.")
    ] = None,
) -> None:
    """Import territories into LAYER from a file, all or nothing (any CRS -> EPSG:4326).

    Columns name (required), owner, priority, exclusive are fields; the rest, properties.

    A layer kept assigned is assigned again, in the same transaction.

    Example: territory territories import partners-2026 regions.zip --replace
    """
    options = ImportOptions(repair=repair, crs=crs, source_layer=source_layer)
    with _session() as (_, session):
        layers.get_by_name(session, name=layer)  # a typo is told before a big file is read
        with console.status(f"reading and checking {file.name}"):
            drafts = read_territories(file.name, file.read_bytes(), options=options)
        with _progress("territories", len(drafts)) as advance:
            result = import_territories(
                session,
                layer=layer,
                drafts=drafts,
                mode="replace" if replace else "append",
                progress=advance,
                reassigning=lambda: console.print(f"re-assigning the customers of {layer}"),
            )
        session.commit()
    done = f"[green]{layer}: {result.imported} territories imported[/green]"
    if replace:
        done += f", {result.removed} replaced"
    if result.assigned is not None:
        done += f"; customers re-assigned ({result.assigned} assigned)"
    console.print(f"{done}, in {result.seconds} s")


@cli.command("export")
def export(
    layer: Annotated[str, typer.Argument(help="Layer to export, e.g. counties")],
    format_: Annotated[
        str,
        typer.Option("--format", "-f", help="geojson, gpkg, csv (geometry as WKT) or parquet."),
    ] = "geojson",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="File to write (default: LAYER-WHAT.EXT here)."
        ),
    ] = None,
    what: Annotated[
        str,
        typer.Option(help="territories (with their stats) or assignments (one per customer)."),
    ] = "territories",
) -> None:
    """Export LAYER's territories with their stats (customers, value, km²), or its assignments.

    Example: territory export counties --format gpkg --output counties.gpkg
    """
    if what not in ("territories", "assignments"):
        console.print(f"[red]error:[/red] --what must be territories or assignments, not {what!r}")
        raise typer.Exit(2)
    chosen: ExportWhat = "assignments" if what == "assignments" else "territories"
    with _session() as (_, session):
        total = export_size(session, layer=layer, what=chosen)
        with _progress(chosen, total) as advance:
            exported = export_layer(
                session,
                layer=layer,
                what=chosen,
                fmt=cast(ExportFormat, format_.lower()),
                progress=advance,
            )
    target = output or Path(exported.filename)
    try:
        target.write_bytes(exported.content)
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot write {target}: {exc.strerror}")
        raise typer.Exit(2) from None
    console.print(
        f"[green]{layer}: {exported.rows} {chosen} written to {target}[/green] "
        f"({len(exported.content):,} bytes)"
    )


@cli.command("assign")
def assign(
    layer: Annotated[str, typer.Argument(help="Layer name, e.g. counties")],
) -> None:
    """Assign every customer to the territory of LAYER that owns it (one transaction).

    Example: territory assign counties
    """
    with _session() as (_, session):
        registry = IndexRegistry(sessionmaker(session.get_bind()))
        with _stages() as progress:
            result = assign_layer(session, layer=layer, registry=registry, progress=progress)
        with console.status("committing"):
            session.commit()
    console.print(
        f"[green]{layer}: {result.assigned} assigned[/green], {result.unassigned} unassigned, "
        f"{result.contested} contested, {result.pinned} pinned, in {result.seconds} s"
    )


class KeyRole(StrEnum):
    """A key's role, as the command line spells it."""

    read = "read"
    write = "write"
    admin = "admin"


@keys_cli.command("create")
def keys_create(
    role: Annotated[
        KeyRole,
        typer.Option(
            help="read: GETs, look-ups, analyses, exports; write: also territory, customer, "
            "pin and import changes; admin: also layers and keys."
        ),
    ],
    layers_: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="Comma-separated layers the key is limited to (others look as if they did "
            "not exist). Omit for every layer. Not for admin keys.",
        ),
    ] = None,
    label: Annotated[str, typer.Option(help="Whose key, what for.")] = "",
    replace: Annotated[
        bool,
        typer.Option(
            help="First revoke the keys with the same label (one live key per label: what a "
            "script that makes its own key on every run wants)."
        ),
    ] = False,
) -> None:
    """Create an API key and print it (on stdout, alone): it is shown this once only.

    Example: territory keys create --role write --layers partners-2026 --label "acme crm"
    """
    names = None if layers_ is None else [n.strip() for n in layers_.split(",") if n.strip()]
    try:
        body = KeyCreate(role=role.value, layers=names, label=label)
    except ValidationError as exc:
        console.print(f"[red]error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None
    with _session() as (_, session):
        key, token = issue(
            session, role=body.role, layers=body.layers, label=body.label, replace=replace
        )
        session.commit()
        scope = "every layer" if key.layers is None else ", ".join(key.layers)
        console.print(f"[green]key {key.id} created[/green]: role {key.role}, {scope}")
    console.print("store it now; it cannot be shown again:")
    typer.echo(token)  # stdout, alone: KEY=$(territory keys create ...) works


@keys_cli.command("list")
def keys_list(
    revoked: Annotated[bool, typer.Option(help="Include revoked keys.")] = False,
) -> None:
    """List the API keys: id, prefix, role, layers, label (never the keys themselves).

    Example: territory keys list --revoked
    """
    table = Table("id", "prefix", "role", "layers", "label", "created", "revoked")
    with _session() as (_, session):
        for key in keys.listing(session, include_revoked=revoked):
            table.add_row(
                str(key.id),
                f"{TOKEN_PREFIX}{key.prefix}_...",
                key.role,
                "every layer" if key.layers is None else ", ".join(key.layers),
                key.label,
                f"{key.created_at:%Y-%m-%d %H:%M}",
                "" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}",
            )
    Console().print(table)


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(min=1, help="The key's id (territory keys list).")],
) -> None:
    """Revoke an API key: every running worker refuses it from then on.

    Example: territory keys revoke 3
    """
    with _session() as (_, session):
        prefix = keys.revoke(session, key_id=key_id).prefix
        session.commit()
    console.print(f"[green]key {key_id} ({TOKEN_PREFIX}{prefix}_...) revoked[/green]")


@cli.command("demo")
def demo_load(
    count: Annotated[int, typer.Option(min=1, help="Demo customers wanted.")] = 50_000,
) -> None:
    """Make sure the demo data is there: boundaries, layers and COUNT customers (idempotent).

    Example: territory demo --count 50000
    """
    boundaries_load(force=False)
    with _session() as (_, session):
        have = customers.count(session)
    if have >= count:
        console.print(f"{have} customers already stored")
        return
    customers_generate(count=count, seed=42)


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs).

    Example: territory serve --port 8000
    """
    # Start and migrate the database once here, so workers find it ready.
    _engine(Settings()).dispose()
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, proxy_headers=True)


def main() -> None:
    """Entry point of the ``territory`` script."""
    cli()
