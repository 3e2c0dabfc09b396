"""Assignment benchmark (issue 3): our territory engine against the usual alternatives, one run.

Builds a scratch database (``territory_bench_assign`` on the embedded cluster, dropped and
re-created at the start and dropped at the end), loads the reference boundaries and N demo
customers, and measures on the counties layer, side by side:

1. ours, engine alone: ``TerritoryIndex.owners(lon, lat)`` on prebuilt arrays (index build,
   and its update after one county is edited, reported separately);
2. ours, end to end: ``app.assign.assign_layer`` (read customers, owners, COPY, commit);
3. ``geopandas.sjoin(points, counties, predicate="within")``, the call alone;
4. shapely ``STRtree`` bbox query + prepared ``contains_xy`` per candidate;
5. PostGIS: ``INSERT ... SELECT`` joining customers to territories on ``ST_Covers`` over GiST,
   same tie-break, two SQL forms (LATERAL ... LIMIT 1 and DISTINCT ON);
6. single-point latency: ``index.owners([x], [y])`` (and ``covering``) against a prepared
   ``ST_Covers`` query per point;
7. resident memory of a process holding the counties index and N customers' assignments.

Every contender is checked against ours; ours is checked against PostGIS on every customer
(owner and rule). Any owner difference makes the run fail (exit status 1) after the report.
HTTP figures (GET/POST /lookup) are not measured here. See bench/README.md.

    .venv/bin/python -m bench.bench_assign --customers 1000000
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import geopandas
import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

import spatial.index as spatial_index
from app import boundaries, demo, embedded
from app.assign import AssignResult, assign_layer
from app.db import make_engine, migrate
from app.indexes import IndexRegistry, LayerIndex
from app.repositories import assignments
from app.repositories import customers as customers_repo
from app.repositories import layers as layer_repo
from app.settings import DatabaseSettings, EmbeddedSettings, Settings
from bench.bench_store import (
    BenchmarkError,
    execute,
    info_line,
    measure,
    peak_rss_mib,
    scalar,
    settle,
)
from spatial.index import RULES, Owners, Territories, TerritoryIndex

T = TypeVar("T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

BENCH_DB = "territory_bench_assign"  # never territory, territory_test nor territory_bench
LAYER = "counties"
WARMUP_POINTS = 10_000
LATENCY_POINTS = 10_000
LATENCY_WARMUP = 1_000
SQL_TABLE = "bench_assignments"
RSS_TARGET_BYTES = 600 * 1000 * 1000  # "600 MB", read strictly as 10^6 bytes (572 MiB)

BUILD = "0. Index build (counties)"
BULK = "1. Assign N customers"
POINT = "2. Single point"

# The ownership rule in SQL (as app/repositories/assignments.py), plus the deciding rule from
# the runner-up, so the row written is the same as ours. No customer is pinned in the bench,
# so the SQL skips the pin check that assign_layer makes.
_RULE = (
    "CASE WHEN o.n = 1 THEN 'only' WHEN o.priority <> o.p2 THEN 'priority' "
    "WHEN o.area_m2 <> o.a2 THEN 'area' ELSE 'id' END"
)
_LATERAL = f"""
INSERT INTO {SQL_TABLE} (layer_id, customer_id, territory_id, rule)
SELECT :layer_id, c.id, o.id, {_RULE}
FROM customers c
CROSS JOIN LATERAL (
    SELECT t.id, t.priority, t.area_m2, count(*) OVER () AS n,
           lead(t.priority) OVER w AS p2, lead(t.area_m2) OVER w AS a2
    FROM territories t
    WHERE t.layer_id = :layer_id AND ST_Covers(t.geom, c.geom)
    WINDOW w AS (ORDER BY t.priority, t.area_m2, t.id)
    ORDER BY t.priority, t.area_m2, t.id
    LIMIT 1
) o
{{where}}
"""
_DISTINCT_ON = f"""
INSERT INTO {SQL_TABLE} (layer_id, customer_id, territory_id, rule)
SELECT o.layer_id, o.customer_id, o.id, {_RULE}
FROM (
    SELECT DISTINCT ON (c.id) t.layer_id, c.id AS customer_id, t.id, t.priority, t.area_m2,
           count(*) OVER w AS n, lead(t.priority) OVER w AS p2, lead(t.area_m2) OVER w AS a2
    FROM customers c
    JOIN territories t ON t.layer_id = :layer_id AND ST_Covers(t.geom, c.geom)
    {{where}}
    WINDOW w AS (PARTITION BY c.id ORDER BY t.priority, t.area_m2, t.id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ORDER BY c.id, t.priority, t.area_m2, t.id
) o
"""
_SQL_FORMS = (
    ("PostGIS INSERT ... SELECT, LATERAL ... LIMIT 1", _LATERAL),
    ("PostGIS INSERT ... SELECT, DISTINCT ON", _DISTINCT_ON),
)
# One point, the same rule: what an endpoint asking PostGIS per request would run.
_POINT_SQL = (
    "SELECT t.id FROM territories t WHERE t.layer_id = %s "
    "AND ST_Covers(t.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) "
    "ORDER BY t.priority, t.area_m2, t.id LIMIT 1"
)
_COMPARE = f"""
SELECT count(*) FILTER (WHERE a.customer_id IS NULL) AS only_sql,
       count(*) FILTER (WHERE b.customer_id IS NULL) AS only_ours,
       count(*) FILTER (WHERE a.territory_id <> b.territory_id) AS owner_differs,
       count(*) FILTER (WHERE a.rule <> b.rule) AS rule_differs
FROM (SELECT * FROM assignments WHERE layer_id = :layer_id) a
FULL JOIN {SQL_TABLE} b ON b.customer_id = a.customer_id
"""

console = Console(stderr=True)


@dataclass
class Row:
    """One line of the results table."""

    section: str
    contender: str
    points: int
    seconds: float | None
    ratio: float | None = None  # contender / ours engine (bulk) or / ours p50 (single point)
    p50_us: float | None = None
    p99_us: float | None = None
    note: str = ""


@dataclass
class Bench:
    """What every measurement needs, and what they found."""

    engine: Engine
    layer_id: int
    entry: LayerIndex
    found: dict[str, Any]  # assignments.engine_input of the layer
    ids: IntArray  # customers, ordered by id
    lon: FloatArray
    lat: FloatArray
    repeat: int
    rows: list[Row] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # key figures for the targets
    notes: list[str] = field(default_factory=list)  # breakdowns and checks
    failures: list[str] = field(default_factory=list)  # differences: the run fails
    owners: Owners | None = None  # ours, engine alone
    registry: IndexRegistry | None = None  # the worker-like registry holding ``entry``

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def index(self) -> TerritoryIndex:
        return self.entry.index

    def rank(self) -> IntArray:
        """Territory position -> rank under the ownership rule (priority, area, id)."""
        f = self.found
        order = np.lexsort((f["ids"], f["area_m2"], f["priority"]))
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size)
        return rank

    def ours_ratio(self, seconds: float) -> float:
        return seconds / self.seconds["engine"]


# --- helpers -------------------------------------------------------------------------------


def _step(label: str, run: Callable[[], T]) -> T:
    console.log(f"[bold]{label}[/bold] ...")
    started = time.perf_counter()
    result = run()
    console.log(f"{label}: done in {time.perf_counter() - started:.1f} s")
    return result


def _timed(run: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


@contextmanager
def timed_calls(targets: list[tuple[Any, str]]) -> Iterator[dict[str, float]]:
    """Wrap ``owner.name`` for each target so every call adds its seconds under ``name``.

    A wrapper costs about a microsecond per call; the wrapped functions are called a few
    thousand times at most per run, so the phases add up to the measured total.
    """
    spent: dict[str, float] = {}
    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    for owner, name, fn in originals:
        setattr(owner, name, wrap(name, fn))
    try:
        yield spent
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def owners_from_pairs(n: int, pt: IntArray, cand: IntArray, rank: IntArray, ids: IntArray) -> Any:
    """Owner id of each of n points (-1: none) from covering (point, territory position) pairs."""
    owner = np.full(n, -1, dtype=np.int64)
    if pt.size:
        order = np.lexsort((rank[cand], pt))
        pt, cand = pt[order], cand[order]
        first = np.r_[True, pt[1:] != pt[:-1]]
        owner[pt[first]] = ids[cand[first]]
    return owner


def vm_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes (/proc/self/status)."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


# --- setup ---------------------------------------------------------------------------------


@contextmanager
def scratch_database(keep: bool, name: str = BENCH_DB) -> Iterator[str]:
    """The URL of a fresh scratch database ``name`` on the embedded cluster; dropped at the end."""
    cluster = EmbeddedSettings()
    embedded.ensure_running(cluster)
    embedded.wait_ready(cluster)
    embedded.drop_database(cluster, name)
    try:
        yield embedded.ensure_database(cluster, name)
    finally:
        if not keep:
            embedded.drop_database(cluster, name)
            console.log(f"dropped database {name}")


def load_data(engine: Engine, count: int, seed: int) -> list[str]:
    """Boundaries, both layers and ``count`` demo customers, committed; returns setup notes."""
    seconds, batch = _timed(lambda: demo.generate(count, seed=seed))
    notes = [f"demo.generate({count:,}, seed={seed}) {seconds:.1f} s"]
    with Session(engine) as session:
        seconds, loaded = _timed(lambda: boundaries.load(session, data_dir=Settings().data_dir))
        session.commit()
    notes.append(f"boundaries.load {seconds:.1f} s ({loaded.counties:,} counties)")
    with Session(engine) as session:
        seconds, done = _timed(lambda: customers_repo.upsert(session, batch=batch))
        session.commit()
    if done.inserted != count:
        raise BenchmarkError(f"customers.upsert inserted {done.inserted}, expected {count}")
    notes.append(f"customers.upsert {seconds:.1f} s")
    for table in ("customers", "territories", "assignments"):
        settle(engine, table)
    return notes


def make_bench(engine: Engine, repeat: int) -> tuple[Bench, list[Row]]:
    """The layer's index (timed: read, parse, build) and the customers' points (untimed)."""
    with Session(engine) as session:
        layer_id = layer_repo.get_by_name(session, name=LAYER).id
        read_s, found = _timed(lambda: assignments.engine_input(session, layer_id=layer_id))
        ids, lon, lat = assignments.customer_points(session)
    n_terr = int(found["ids"].size)
    parse_s, _ = _timed(lambda: shapely.from_wkb(found["wkb"]))

    def fresh() -> Territories:
        geoms = np.asarray(shapely.from_wkb(found["wkb"]), dtype=object)
        return Territories(found["ids"], geoms, found["priority"], found["area_m2"])

    pending: list[Territories] = []

    def check(index: TerritoryIndex) -> None:
        if len(index) != n_terr:
            raise BenchmarkError(f"index holds {len(index)} territories, expected {n_terr}")

    TerritoryIndex.build(fresh())  # warm-up
    timing, _ = measure(
        lambda: TerritoryIndex.build(pending.pop()),
        prepare=lambda: pending.append(fresh()),  # unprepared geometries every run
        verify=check,
        repeat=repeat,
    )
    registry = IndexRegistry(sessionmaker(engine))
    get_s, entry = _timed(lambda: registry.get(LAYER))
    check(entry.index)
    cells = entry.index._cells
    shape = (
        f"fine grid of {cells.grid.size:,} cells, {cells.n_blocks:,} blocks, "
        f"{cells.leaf_count.size:,} leaves, {cells.candidates.size:,} leaf candidate slots"
    )
    rows = [
        Row(BUILD, "read territories (assignments.engine_input)", n_terr, read_s, note="SQL + WKB"),
        Row(BUILD, "shapely.from_wkb", n_terr, parse_s, note="WKB -> geometries"),
        Row(
            BUILD,
            "TerritoryIndex.build",
            n_terr,
            timing.median,
            note=f"{timing.note}fresh, unprepared geometries each run; {shape}",
        ),
        Row(BUILD, "IndexRegistry.get (read + parse + build)", n_terr, get_s, note="as a worker"),
    ]
    rows += index_update_rows(engine, lon, lat, repeat)
    bench = Bench(engine, layer_id, entry, found, ids, lon, lat, repeat, registry=registry)
    return bench, rows


# The territory edit of the index-update rows: Alpine County, CA (06003) reshaped to itself
# plus El Dorado County (06017), which it then overlaps; then put back as it was.
EDITED = "06003"
_RESHAPE = (
    "UPDATE territories SET geom = (SELECT ST_Multi(ST_Union(geom)) FROM territories "
    "WHERE layer_id = :layer_id AND code IN ('06003', '06017')) "
    "WHERE layer_id = :layer_id AND code = :code"
)
_RESTORE = (
    "UPDATE territories SET geom = ST_GeomFromWKB(:wkb, 4326) "
    "WHERE layer_id = :layer_id AND code = :code"
)


def _edit_county(engine: Engine, wkb: bytes | None) -> None:
    """Reshape the edited county (``wkb`` None) or restore it, and mark the layer changed."""
    with Session(engine) as session:
        layer = layer_repo.get_by_name(session, name=LAYER)
        params = {"layer_id": layer.id, "code": EDITED}
        if wkb is None:
            session.execute(text(_RESHAPE), params)
        else:
            session.execute(text(_RESTORE), params | {"wkb": wkb})
        layer_repo.touch(session, layer=layer)
        session.commit()


def _updated(registry: IndexRegistry) -> tuple[float, LayerIndex]:
    """Seconds of one refresh after an edit, and the entry, which must be an update."""
    seconds, entry = _timed(lambda: registry.refresh(LAYER))
    if entry.how != "updated":
        raise BenchmarkError(f"index after one territory edit: {entry.how}, not updated")
    return seconds, entry


def index_update_rows(engine: Engine, lon: FloatArray, lat: FloatArray, repeat: int) -> list[Row]:
    """One county edited and put back: a worker's index update, timed and checked at N points.

    A registry of its own, so the bench's keeps the index built above; the database ends as it
    started, and the bench's registry finds it unchanged ("kept") on its next refresh.
    """
    registry = IndexRegistry(sessionmaker(engine))
    base = registry.get(LAYER)
    original = scalar(engine, f"SELECT ST_AsBinary(geom) FROM territories WHERE layer_id = "
                      f"{base.layer_id} AND code = '{EDITED}'")  # fmt: skip
    refresh_s: list[float] = []
    for _ in range(repeat):
        _edit_county(engine, None)
        seconds, edited = _updated(registry)
        refresh_s.append(seconds)
        _edit_county(engine, bytes(original))
        refresh_s.append(_updated(registry)[0])
    index = edited.index
    at = int(np.flatnonzero(index.territories.ids == _edited_id(engine, base.layer_id))[0])
    t = index.territories
    upserts = Territories(t.ids[at : at + 1], t.geoms[at : at + 1], t.priority[at : at + 1],
                          t.area_m2[at : at + 1])  # fmt: skip
    timing, changed = measure(lambda: base.index.with_changes(upserts), prepare=lambda: None,
                              verify=lambda i: None, repeat=repeat)  # fmt: skip
    check = _same_as_fresh([edited.index, changed], lon, lat, base.index)
    n_terr = len(index)
    return [
        Row(BUILD, "TerritoryIndex.with_changes (one county reshaped)", n_terr, timing.median,
            note=f"{timing.note}{changed.rebuilt_roots:,} of {changed.root_cells:,} root cells "
            f"rebuilt; {check}"),
        Row(BUILD, "IndexRegistry.refresh after one territory edit (read + compare + update)",
            n_terr, statistics.median(refresh_s),
            note=f"median of {len(refresh_s)} refreshes, each after one committed edit (the "
            f"county reshaped, then put back): engine_input, WKB digests compared, the changed "
            f"territory parsed, with_changes; as a worker after the NOTIFY"),
    ]  # fmt: skip


def _edited_id(engine: Engine, layer_id: int) -> int:
    """The territory id of the edited county."""
    return int(scalar(engine, f"SELECT id FROM territories WHERE layer_id = {layer_id} "
                      f"AND code = '{EDITED}'"))  # fmt: skip


def _same_as_fresh(
    updated: list[TerritoryIndex], lon: FloatArray, lat: FloatArray, before: TerritoryIndex
) -> str:
    """Check that updated indexes answer as a fresh build of their territories at N points."""
    want = TerritoryIndex.build(updated[0].territories).owners(lon, lat)
    for index in updated:
        got = index.owners(lon, lat)
        for name in ("owner", "rule", "covering"):
            if not np.array_equal(getattr(got, name), getattr(want, name)):
                raise BenchmarkError(f"updated index: {name} differs from a fresh build's")
    old = before.owners(lon, lat)
    moved = (want.owner != old.owner) | (want.rule != old.rule) | (want.covering != old.covering)
    return (
        f"the registry's and this update both identical to a fresh build (owner, rule, "
        f"covering) at all {lon.size:,} points, {int(moved.sum()):,} of which answer otherwise "
        "after the edit"
    )


# --- 1. engine alone -----------------------------------------------------------------------


def bench_engine(bench: Bench) -> None:
    index, lon, lat = bench.index, bench.lon, bench.lat
    index.owners(lon[:WARMUP_POINTS], lat[:WARMUP_POINTS])  # warm-up

    def check(found: Owners) -> None:
        if found.owner.size != bench.n:
            raise BenchmarkError(f"engine: {found.owner.size} owners for {bench.n} points")

    timing, found = measure(
        lambda: index.owners(lon, lat), prepare=lambda: None, verify=check, repeat=bench.repeat
    )
    bench.owners = found
    bench.seconds["engine"] = timing.median
    owned = int((found.owner >= 0).sum())
    contested = int((found.covering > 1).sum())
    note = (
        f"{timing.note}owner + rule + covering count of every point; {owned:,} owned, "
        f"{bench.n - owned:,} in no county, {contested:,} on shared borders (covered by 2+)"
    )
    bench.rows.append(Row(BULK, "ours: engine, index.owners(lon, lat)", bench.n, timing.median,
                          1.0, note=note))  # fmt: skip
    bench.notes += engine_breakdown(bench)


def engine_breakdown(bench: Bench, runs: int = 3) -> list[str]:
    """Where index.owners spends its time (median of ``runs`` wrapped runs), and the cells."""
    targets: list[tuple[Any, str]] = [
        (spatial_index, "_checked"),
        (TerritoryIndex, "_descend"),
        (TerritoryIndex, "_answer_decided"),
        (TerritoryIndex, "_answer_leaves"),
        (spatial_index, "_covers_pairs"),
        (spatial_index, "_resolve"),
        (shapely, "intersects_xy"),
    ]
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        with timed_calls(targets) as spent:
            total, _ = _timed(lambda: bench.index.owners(bench.lon, bench.lat))
        samples.append(spent | {"total": total})
    med = {k: statistics.median(s.get(k, 0.0) for s in samples) for k in samples[0]}
    leaves = med["_answer_leaves"]
    parts = {
        "input check (_checked)": med["_checked"],
        "descend the cell tree (_descend)": med["_descend"],
        "decided cells (_answer_decided)": med["_answer_decided"],
        "leaf pairs built (_answer_leaves minus the two below)": leaves
        - med.get("_covers_pairs", 0.0)
        - med.get("_resolve", 0.0),
        "exact tests (_covers_pairs), of which GEOS intersects_xy": med.get("_covers_pairs", 0.0),
        "owner of leaf points (_resolve)": med.get("_resolve", 0.0),
        "rest (answers allocated, positions -> ids)": med["total"]
        - med["_checked"]
        - med["_descend"]
        - med["_answer_decided"]
        - leaves,
    }
    text_parts = [
        f"{name} {seconds * 1000:.0f} ms ({seconds / med['total']:.0%})"
        for name, seconds in parts.items()
    ]
    geos = med.get("intersects_xy", 0.0)
    return [
        f"Engine breakdown, N = {bench.n:,} (median of {runs} runs, each phase wrapped; total "
        f"{med['total'] * 1000:.0f} ms): "
        + "; ".join(text_parts)
        + f". GEOS intersects_xy alone: {geos * 1000:.0f} ms.",
        cell_stats(bench),
    ]


def cell_stats(bench: Bench) -> str:
    """How the points fall in the cell tree: decided cells, leaves, pairs tested exactly."""
    index = bench.index
    cells = index._cells
    x, y = spatial_index._checked(bench.lon, bench.lat)
    code = index._descend(x, y)  # < 0: an answer row (decided cell), else 2 * leaf
    f = cells.frame
    inside = (
        (x >= f.x0) & (x < f.x0 + f.nx * f.root_deg) & (y >= f.y0) & (y < f.y0 + f.ny * f.root_deg)
    )
    kind = np.where(code[inside] < 0, 0, 2)
    leaf_nodes = code[inside][kind == 2] >> 1
    counts = cells.leaf_count[leaf_nodes]
    pairs = int(counts.sum())
    used = np.unique(leaf_nodes).size
    return (
        f"Cells: {int((kind == 0).sum()):,} points ({(kind == 0).mean():.1%}) land in decided "
        f"cells (no geometry), {leaf_nodes.size:,} ({leaf_nodes.size / bench.n:.1%}) in "
        f"{used:,} distinct leaf cells, giving {pairs:,} (point, candidate) pairs for the exact "
        f"test ({pairs / max(leaf_nodes.size, 1):.2f} per leaf point); "
        f"{int((~inside).sum()):,} points outside the root grid."
    )


# --- 2. end to end -------------------------------------------------------------------------


def _assign(engine: Engine, registry: IndexRegistry | None, commit: bool) -> AssignResult:
    assert registry is not None
    with Session(engine) as session:
        # The registry holds the layer's index already: refresh() finds it current.
        result = assign_layer(session, layer=LAYER, registry=registry)
        if commit:
            session.commit()
        else:
            session.rollback()
    return result


def _empty_assignments(engine: Engine) -> None:
    execute(engine, "TRUNCATE assignments")
    settle(engine, "assignments")


def bench_end_to_end(bench: Bench) -> None:
    engine = bench.engine
    _empty_assignments(engine)
    _assign(engine, bench.registry, commit=False)  # warm-up, rolled back

    def check(result: AssignResult) -> None:
        stored = scalar(
            engine, f"SELECT count(*) FROM assignments WHERE layer_id = {bench.layer_id}"
        )
        if result.assigned + result.unassigned != bench.n or stored != result.assigned:
            raise BenchmarkError(f"assign_layer: {result}, {stored} rows stored, N = {bench.n}")

    targets: list[tuple[Any, str]] = [
        (assignments, "customer_points"),
        (assignments, "pinned"),
        (TerritoryIndex, "owners"),
        (assignments, "replace"),
    ]
    with timed_calls(targets) as spent:
        timing, result = measure(
            lambda: _assign(engine, bench.registry, commit=True),
            prepare=lambda: _empty_assignments(engine),
            verify=check,
            repeat=bench.repeat,
        )
    seconds = timing.median
    bench.seconds["end_to_end"] = seconds
    runs = len(timing.samples)
    phases = ", ".join(f"{name} {total / runs:.2f} s" for name, total in spent.items())
    rest = seconds - sum(spent.values()) / runs
    note = (
        f"{timing.note}one transaction, committed: locks, binary COPY into a fresh table, which "
        f"replaces the layer's partition of assignments (PK, 2 indexes and 2 foreign keys "
        f"built and checked on attach); {result.assigned:,} rows written; per run: {phases}, "
        f"rest (lock, index refresh check, np.isin, mark_assigned, commit) {rest:.2f} s"
    )
    bench.rows.append(Row(BULK, "ours: end to end, assign_layer + commit", bench.n, seconds,
                          bench.ours_ratio(seconds), note=note))  # fmt: skip


# --- 3. geopandas.sjoin and 4. STRtree ------------------------------------------------------


def explain_differences(bench: Bench, owner: IntArray, who: str, predicate: str) -> str:
    """Compare a contender's owners with ours; every difference must be a border point.

    ``within`` / ``contains_xy`` leave out a polygon's border, ``ST_Covers`` (ours) keeps it.
    A difference is explained when the exact covering set, recomputed with shapely for that
    point alone, resolves to our owner. Anything else is a failure.
    """
    assert bench.owners is not None
    ours = bench.owners.owner
    differ = np.flatnonzero(owner != ours)
    if not differ.size:
        return f"{who}: same owner as ours for all {bench.n:,} points"
    geoms = np.asarray(shapely.from_wkb(bench.found["wkb"]), dtype=object)
    tree = shapely.STRtree(geoms)
    points = shapely.points(bench.lon[differ], bench.lat[differ])
    pt, cand = tree.query(points, predicate="intersects")
    exact = owners_from_pairs(differ.size, pt, cand, bench.rank(), bench.found["ids"])
    unexplained = int((exact != ours[differ]).sum())
    text_ = (
        f"{who}: {differ.size:,} points differ from ours, {differ.size - unexplained:,} of them "
        f"on a border that {predicate} leaves out and ST_Covers keeps"
    )
    if unexplained:
        bench.failures.append(f"{who}: {unexplained} differences from ours are NOT border points")
        text_ += f"; {unexplained} UNEXPLAINED"
    return text_


def bench_sjoin(bench: Bench) -> None:
    wkb = bench.found["wkb"]
    built, (points, counties) = _timed(
        lambda: (
            geopandas.GeoDataFrame(
                geometry=geopandas.points_from_xy(bench.lon, bench.lat, crs="EPSG:4326")
            ),
            geopandas.GeoDataFrame(
                {"position": np.arange(len(wkb))},
                geometry=shapely.from_wkb(wkb),
                crs="EPSG:4326",
            ),
        )
    )
    geopandas.sjoin(points.iloc[:WARMUP_POINTS], counties, predicate="within")  # warm-up, sindex
    timing, joined = measure(
        lambda: geopandas.sjoin(points, counties, predicate="within"),
        prepare=lambda: None,
        verify=lambda j: None,
        repeat=bench.repeat,
    )
    pt = joined.index.to_numpy(dtype=np.int64)
    cand = joined["position"].to_numpy(dtype=np.int64)
    owner = owners_from_pairs(bench.n, pt, cand, bench.rank(), bench.found["ids"])
    del joined
    check = explain_differences(bench, owner, "geopandas.sjoin", "within")
    seconds = timing.median
    bench.seconds["sjoin"] = seconds
    note = (
        f"{timing.note}the call alone: points GeoDataFrame prebuilt (with the counties one, "
        f"{built:.1f} s, untimed), counties sindex built in the warm-up; gives (point, county) "
        f"pairs, no tie-break; {check}"
    )
    bench.rows.append(Row(BULK, 'geopandas.sjoin(predicate="within")', bench.n, seconds,
                          bench.ours_ratio(seconds), note=note))  # fmt: skip


def strtree_pairs(
    tree: shapely.STRtree, geoms: Any, points: Any, x: FloatArray, y: FloatArray
) -> tuple[IntArray, IntArray]:
    """(point, territory) pairs: bbox query, then prepared contains_xy per candidate territory."""
    pt, cand = tree.query(points)  # bounding boxes only
    hit = np.zeros(cand.size, dtype=bool)
    order = np.argsort(cand, kind="stable")
    bounds = np.flatnonzero(np.diff(cand[order])) + 1
    # One vectorised call per territory: faster than contains_xy over the whole pair array at
    # once (geometry array of 1.4M references), 0.76 vs 0.90 s in a trial at 1M.
    for group in np.split(order, bounds):
        if group.size:
            where = pt[group]
            hit[group] = shapely.contains_xy(geoms[cand[group[0]]], x[where], y[where])
    return pt[hit], cand[hit]


def bench_strtree(bench: Bench) -> None:
    x, y = bench.lon, bench.lat
    geoms = np.asarray(shapely.from_wkb(bench.found["wkb"]), dtype=object)

    def build() -> tuple[shapely.STRtree, Any]:
        shapely.prepare(geoms)
        return shapely.STRtree(geoms), shapely.points(x, y)

    built, (tree, points) = _timed(build)
    w = WARMUP_POINTS
    strtree_pairs(tree, geoms, points[:w], x[:w], y[:w])  # warm-up
    timing, (pt, cand) = measure(
        lambda: strtree_pairs(tree, geoms, points, x, y),
        prepare=lambda: None,
        verify=lambda p: None,
        repeat=bench.repeat,
    )
    owner = owners_from_pairs(bench.n, pt, cand, bench.rank(), bench.found["ids"])
    check = explain_differences(bench, owner, "STRtree + contains_xy", "contains_xy")
    seconds = timing.median
    bench.seconds["strtree"] = seconds
    note = (
        f"{timing.note}STRtree.query(points) (bboxes) -> prepared contains_xy, one vectorised "
        f"call per candidate county; tree, prepare() and point geometries prebuilt ({built:.1f}"
        f" s, untimed); gives (point, county) pairs, no tie-break; {check}"
    )
    bench.rows.append(Row(BULK, "shapely STRtree bbox query + prepared contains_xy", bench.n,
                          seconds, bench.ours_ratio(seconds), note=note))  # fmt: skip


# --- 5. PostGIS ----------------------------------------------------------------------------


def create_sql_table(engine: Engine) -> None:
    """A scratch table shaped like assignments: columns, checks, indexes and foreign keys."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {SQL_TABLE}"))
        conn.execute(text(f"CREATE TABLE {SQL_TABLE} (LIKE assignments INCLUDING ALL)"))
        fks = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'assignments'::regclass AND contype = 'f' ORDER BY conname"
            )
        ).all()
        for name, definition in fks:
            conn.execute(text(f"ALTER TABLE {SQL_TABLE} ADD CONSTRAINT bench_{name} {definition}"))


def _sql_insert(engine: Engine, sql: str, layer_id: int, timeout_ms: int, commit: bool) -> int:
    with engine.connect() as conn:
        conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
        inserted = conn.execute(text(sql), {"layer_id": layer_id}).rowcount
        if commit:
            conn.commit()
        else:
            conn.rollback()
    return int(inserted)


def plan_shape(engine: Engine, sql: str, layer_id: int) -> str:
    """The plan's nodes, top down (EXPLAIN, costs off)."""
    with engine.connect() as conn:
        lines = list(
            conn.execute(text("EXPLAIN (COSTS OFF) " + sql), {"layer_id": layer_id}).scalars()
        )
    # The first line and the "->" lines are plan nodes; the others are their properties.
    nodes = [lines[0].strip()] + [
        line.split("->", 1)[1].strip() for line in lines[1:] if line.lstrip().startswith("->")
    ]
    return " > ".join(nodes)


def compare_with_sql(bench: Bench, who: str) -> str:
    """Ours against the SQL table: the engine's owners (arrays) and assign_layer's rows (SQL)."""
    with bench.engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT customer_id, territory_id, rule FROM {SQL_TABLE} ORDER BY customer_id")
        ).all()
        only_sql, only_ours, owner_differs, rule_differs = conn.execute(
            text(_COMPARE), {"layer_id": bench.layer_id}
        ).one()
    assert bench.owners is not None
    sql_owner = np.full(bench.n, -1, dtype=np.int64)
    sql_rule = np.full(bench.n, "none", dtype=object)
    if rows:
        table = np.array([(r[0], r[1]) for r in rows], dtype=np.int64)
        at = np.searchsorted(bench.ids, table[:, 0])
        sql_owner[at] = table[:, 1]
        sql_rule[at] = [r[2] for r in rows]
    engine_owner_diff = int((sql_owner != bench.owners.owner).sum())
    engine_rule_diff = int((sql_rule != np.array(RULES, dtype=object)[bench.owners.rule]).sum())
    table_diff = int(only_sql + only_ours + owner_differs)
    if engine_owner_diff or table_diff:
        bench.failures.append(
            f"{who}: OWNERS DIFFER from ours: engine {engine_owner_diff:,}, assign_layer rows "
            f"{table_diff:,} (only SQL {only_sql}, only ours {only_ours}, other owner "
            f"{owner_differs})"
        )
    if engine_rule_diff or rule_differs:
        bench.failures.append(
            f"{who}: RULES DIFFER from ours: engine {engine_rule_diff:,}, rows {rule_differs:,}"
        )
    return (
        f"vs ours: {engine_owner_diff} owner and {engine_rule_diff} rule differences (engine "
        f"arrays, all {bench.n:,} customers), {table_diff} owner and {rule_differs} rule "
        "differences (assign_layer's rows, SQL FULL JOIN)"
    )


def bench_postgis(bench: Bench, timeout_ms: int) -> None:
    engine = bench.engine
    create_sql_table(engine)
    warm_max = int(bench.ids[min(WARMUP_POINTS, bench.n) - 1])
    best = float("inf")
    for contender, template in _SQL_FORMS:
        sql = template.format(where="")
        warm = template.format(where=f"WHERE c.id <= {warm_max}")
        _empty_sql_table(engine)
        _sql_insert(engine, warm, bench.layer_id, timeout_ms, commit=False)  # warm-up
        timing, _ = measure(
            _sql_run(engine, sql, bench.layer_id, timeout_ms),
            prepare=lambda: _empty_sql_table(engine),
            verify=_sql_check(bench, contender),
            repeat=bench.repeat,
        )
        seconds = timing.median
        best = min(best, seconds)
        agreement = compare_with_sql(bench, contender)
        note = (
            f"{timing.note}one statement + commit into an empty {SQL_TABLE} (LIKE assignments "
            f"INCLUDING ALL + the same foreign keys), owner and rule computed in SQL, no pin "
            f"check; plan: {plan_shape(engine, sql, bench.layer_id)}; {agreement}"
        )
        bench.rows.append(Row(BULK, contender, bench.n, seconds, bench.ours_ratio(seconds),
                              note=note))  # fmt: skip
    bench.seconds["postgis"] = best
    execute(engine, f"DROP TABLE {SQL_TABLE}")


def _sql_run(engine: Engine, sql: str, layer_id: int, timeout_ms: int) -> Callable[[], int]:
    return lambda: _sql_insert(engine, sql, layer_id, timeout_ms, commit=True)


def _sql_check(bench: Bench, who: str) -> Callable[[int], None]:
    assert bench.owners is not None
    expected = int((bench.owners.owner >= 0).sum())

    def check(inserted: int) -> None:
        if inserted != expected:
            bench.failures.append(f"{who}: inserted {inserted:,} rows, ours owns {expected:,}")

    return check


def _empty_sql_table(engine: Engine) -> None:
    execute(engine, f"TRUNCATE {SQL_TABLE}")
    settle(engine, SQL_TABLE)


# --- 6. single point -----------------------------------------------------------------------


def _latencies(call: Callable[[float, float], T], xs: list[float], ys: list[float]) -> Any:
    """Per-call microseconds and results, after LATENCY_WARMUP untimed calls."""
    for x, y in zip(xs[:LATENCY_WARMUP], ys[:LATENCY_WARMUP], strict=True):
        call(x, y)
    micros = np.empty(len(xs))
    results: list[T] = []
    clock = time.perf_counter_ns
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        started = clock()
        results.append(call(x, y))
        micros[i] = (clock() - started) / 1000.0
    return micros, results


def _point_row(name: str, micros: Any, ours_p50: float | None, note: str) -> Row:
    p50, p99 = (float(v) for v in np.percentile(micros, [50, 99]))
    ratio = None if ours_p50 is None else p50 / ours_p50
    return Row(POINT, name, micros.size, float(micros.sum() / 1e6), ratio, p50, p99, note)


def _point_bench(
    bench: Bench, name: str, call: Callable[[float, float], int], sample: Any, note: str
) -> tuple[Row, Any]:
    """Latency of ``call`` on every sampled point, checked against the bulk owners."""
    xs, ys, expected = sample
    micros, found = _latencies(call, xs, ys)
    diff = int((np.array(found, dtype=np.int64) != expected).sum())
    if diff:
        bench.failures.append(f"single point, {name}: {diff} owners differ from the bulk owners")
    ours = bench.seconds.get("point_p50_us")
    row = _point_row(name, micros, ours, f"{note}; {diff} differ from the bulk owners")
    if ours is None:
        bench.seconds["point_p50_us"] = row.p50_us or 0.0
        row.ratio = 1.0
    return row, micros


def point_breakdown(bench: Bench, sample: Any, micros: Any) -> str:
    """Where one index.owners([x], [y]) call spends its time, and p50 by kind of cell."""
    xs, ys, _ = sample
    index = bench.index
    targets: list[tuple[Any, str]] = [
        (spatial_index, "_checked"),
        (TerritoryIndex, "_descend"),
        (TerritoryIndex, "_answer_decided"),
        (TerritoryIndex, "_answer_leaves"),
    ]
    with timed_calls(targets) as spent:
        total, _ = _timed(lambda: [index.owners([x], [y]) for x, y in zip(xs, ys, strict=True)])
    calls = len(xs)
    parts = {name.strip("_"): seconds for name, seconds in spent.items()}
    parts["rest (Owners, ids with -1 appended, wrappers)"] = total - sum(spent.values())
    text_parts = [f"{name} {sec / calls * 1e6:.1f} µs" for name, sec in parts.items()]
    x, y = spatial_index._checked(xs, ys)
    kind = np.where(index._descend(x, y) < 0, 0, 2)  # decided cell (answer row) or leaf
    by_kind = [
        f"{label} {float(np.percentile(micros[kind == k], 50)):.1f} µs ({int((kind == k).sum()):,})"
        for k, label in ((0, "decided cell"), (2, "leaf cell"))
        if (kind == k).any()
    ]
    return (
        f"Single-point breakdown, mean per index.owners([x], [y]) call over the {calls:,} "
        f"sampled points, each phase wrapped ({total / calls * 1e6:.1f} µs a call with the "
        f"wrappers): {'; '.join(text_parts)}. p50 by cell kind: {', '.join(by_kind)}."
    )


def bench_single_point(bench: Bench, timeout_ms: int) -> None:
    assert bench.owners is not None
    rng = np.random.default_rng(20_251_123)
    pick = rng.choice(bench.n, size=min(LATENCY_POINTS, bench.n), replace=False)
    sample = (bench.lon[pick].tolist(), bench.lat[pick].tolist(), bench.owners.owner[pick])
    index = bench.index
    base = f"{pick.size:,} random customers, {LATENCY_WARMUP} untimed warm-up calls; "

    def owners(x: float, y: float) -> int:
        return int(index.owners([x], [y]).owner[0])

    def covering(x: float, y: float) -> int:
        ids = index.covering(x, y)
        return int(ids[0]) if ids.size else -1

    def owner_of(x: float, y: float) -> int:
        return index.owner_of(x, y)[0]

    def both(x: float, y: float) -> int:
        index.covering(x, y)
        return owner_of(x, y)

    ours = [
        ("ours: index.owner_of(x, y)", owner_of, "scalar fast path: owner, rule, covering count"),
        ("ours: index.owners([x], [y])", owners, "the vectorised call with one point"),
        ("ours: index.covering(x, y)", covering, "every covering id, best-ranked first"),
        ("ours: owner_of + covering (GET /lookup's engine work)", both, "no HTTP"),
    ]
    for name, call, what in ours:
        row, micros = _point_bench(bench, name, call, sample, base + what)
        bench.rows.append(row)
        if call is owners:
            bench.notes.append(point_breakdown(bench, sample, micros))

    dsn = embedded.server_dsn(EmbeddedSettings(), BENCH_DB)
    options = f"-c jit=off -c statement_timeout={timeout_ms}"
    with psycopg.connect(dsn, autocommit=True, options=options) as conn:

        def ask(x: float, y: float) -> int:
            row = conn.execute(_POINT_SQL, (bench.layer_id, x, y), prepare=True).fetchone()
            return -1 if row is None else int(row[0])

        note = (
            base + "psycopg prepare=True, autocommit, loopback TCP, one row fetched; same rule "
            "(ORDER BY priority, area_m2, id LIMIT 1)"
        )
        name = "PostGIS: prepared ST_Covers query per point"
        bench.rows.append(_point_bench(bench, name, ask, sample, note)[0])


# --- 7. resident memory --------------------------------------------------------------------


def _malloc_trim() -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def rss_here(bench: Bench) -> dict[str, Any]:
    """VmRSS of this process holding only the index and the assignment arrays (of the rest)."""
    assert bench.owners is not None
    keep: dict[str, npt.NDArray[Any]] = {
        "ids": bench.ids,
        "owner": bench.owners.owner,
        "rule": bench.owners.rule,
        "covering": bench.owners.covering,
    }
    entry = bench.entry
    arrays = sum(a.nbytes for a in keep.values())
    bench.found = {}
    bench.lon = bench.lat = np.empty(0)
    bench.owners = None
    gc.collect()
    untrimmed = vm_status()
    trimmed = _malloc_trim()
    after = vm_status()
    assert entry.index is not None and keep
    return {"untrimmed": untrimmed["VmRSS"], "rss": after["VmRSS"], "hwm": after["VmHWM"],
            "arrays": arrays, "trimmed": trimmed}  # fmt: skip


def rss_worker(url: str) -> dict[str, Any]:
    """VmRSS of a fresh process that does what a worker does: index + N assignments."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_assign", "--rss-probe", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchmarkError(f"RSS probe failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def rss_probe(url: str) -> int:
    """The worker-like process: imports the app, builds the index, assigns, holds the arrays."""
    import app.factory  # noqa: F401, PLC0415  (a worker has every route module loaded)

    settings = Settings(database=DatabaseSettings(url=url))
    engine = make_engine(url, settings)
    registry = IndexRegistry(sessionmaker(engine))
    entry = registry.get(LAYER)
    with Session(engine) as session:
        ids, lon, lat = assignments.customer_points(session)
    found = entry.index.owners(lon, lat)
    engine.dispose()
    gc.collect()
    held = (
        ids.nbytes
        + lon.nbytes
        + lat.nbytes
        + sum(a.nbytes for a in (found.owner, found.rule, found.covering))
    )
    status = vm_status()
    print(json.dumps({"rss": status["VmRSS"], "hwm": status["VmHWM"], "held": held,
                      "customers": int(ids.size), "territories": len(entry.index)}))  # fmt: skip
    return 0


# --- the report ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _per_second(row: Row) -> str:
    if row.p50_us is not None:
        return f"{1e6 / row.p50_us:,.0f}"
    if row.section == BUILD or not row.seconds:
        return ""
    return f"{row.points / row.seconds:,.0f}"


def _cells(row: Row) -> list[str]:
    return [
        row.section,
        row.contender,
        f"{row.points:,}",
        _fmt(row.seconds, 3),
        _per_second(row),
        _fmt(row.p50_us, 1),
        _fmt(row.p99_us, 1),
        _fmt(row.ratio),
        row.note,
    ]


HEADERS = ("Benchmark", "Contender", "Points", "Seconds", "Points/s", "p50 µs", "p99 µs", "x ours")


def _escaped(cells: list[str]) -> list[str]:
    return [escape(cell) for cell in cells]


def rich_table(title: str, headers: tuple[str, ...], rows: list[list[str]], right: int) -> Table:
    table = Table(title=title, show_lines=True)
    for i, header in enumerate(headers):
        justify = "right" if 2 <= i < right else "left"
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(headers: tuple[str, ...], rows: list[list[str]], right: int) -> str:
    aligns = ["---:" if 2 <= i < right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def targets(bench: Bench, rss: dict[str, Any], worker: dict[str, Any]) -> list[list[str]]:
    """The issue's targets, each with what was measured and met / NOT met."""
    s = bench.seconds

    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    def ratio(name: str, other: str, need: float) -> list[str]:
        got = s[other] / s["engine"]
        return [name, f">= {need:g}x", f"{got:.1f}x ({s[other]:.3f} s / {s['engine']:.3f} s)",
                verdict(got >= need)]  # fmt: skip

    e2e = s["postgis"] / s["end_to_end"]
    return [
        ratio("engine vs geopandas.sjoin (call alone)", "sjoin", 10),
        ratio("engine vs STRtree + prepared contains_xy", "strtree", 3),
        ratio("engine vs PostGIS join (faster SQL form)", "postgis", 50),
        ["end to end (assign_layer + commit) vs PostGIS join", "<= 1/5 of its time (>= 5x)",
         f"{e2e:.1f}x ({s['end_to_end']:.2f} s vs {s['postgis']:.2f} s)", verdict(e2e >= 5)],
        ["single point, index.owner_of(x, y) p50", "<= 10 µs",
         f"{s['point_p50_us']:.1f} µs", verdict(s["point_p50_us"] <= 10)],
        ["RSS, worker-like fresh process (index + assignments)", "<= 600 MB (10^6 B)",
         f"{worker['rss'] / 1e6:,.0f} MB ({_mib(worker['rss'])})",
         verdict(worker["rss"] <= RSS_TARGET_BYTES)],
        ["RSS, this process after the run (rest dropped, malloc_trim)", "<= 600 MB (10^6 B)",
         f"{rss['rss'] / 1e6:,.0f} MB ({_mib(rss['rss'])})",
         verdict(rss["rss"] <= RSS_TARGET_BYTES)],
        ["agreement: ours vs PostGIS (owner, rule) and every other check", "0 differences",
         "0" if not bench.failures else f"{len(bench.failures)} failed check(s)",
         verdict(not bench.failures)],
        ["GET /lookup rps and p99; POST /lookup 100,000 points", "see issue 3",
         "not measured by this script (no HTTP)", "out of scope"],
    ]  # fmt: skip


def memory_notes(rss: dict[str, Any], worker: dict[str, Any]) -> list[str]:
    return [
        f"RSS, this process after every measurement (/proc/self/status): {_mib(rss['untrimmed'])}"
        f" after dropping everything but the counties LayerIndex and the N customers' assignment "
        f"arrays (ids int64, owner int64, rule int8, covering int32: {_mib(rss['arrays'])}) and "
        f"gc.collect(); {_mib(rss['rss'])} after malloc_trim(0) (returned memory: "
        f"{rss['trimmed']}). It still holds every library the benchmark imported (geopandas, "
        "pandas, pyogrio, SQLAlchemy, psycopg, rich) and what the allocator keeps from the run. "
        f"Peak (VmHWM) {_mib(rss['hwm'])}.",
        f"RSS, fresh worker-like process (`--rss-probe`): imports app.factory (every route), "
        f"builds the counties index through IndexRegistry.get, reads {worker['customers']:,} "
        f"customers (assignments.customer_points) and assigns them, then holds ids, lon, lat, "
        f"owner, rule and covering ({_mib(worker['held'])}): VmRSS {_mib(worker['rss'])}, peak "
        f"(VmHWM) {_mib(worker['hwm'])}; no malloc_trim, as in a worker.",
    ]


def report(bench: Bench, args: argparse.Namespace, context: dict[str, Any]) -> int:
    out = Console(width=240)
    cells = [_cells(row) for row in bench.rows]
    title = f"Assignment benchmark (issue 3): N = {args.customers:,} customers, layer {LAYER}"
    out.print(rich_table(title, (*HEADERS, "Notes"), [_escaped(c) for c in cells], len(HEADERS)))
    goal_headers = ("Target (issue 3)", "Required", "Measured", "Verdict")
    goals = targets(bench, context["rss"], context["worker"])
    out.print(rich_table("Targets", goal_headers, [_escaped(g) for g in goals], 0))
    notes = [
        *bench.notes,
        *memory_notes(context["rss"], context["worker"]),
        f"Setup (not contenders): {'; '.join(context['setup'])}.",
        "x ours = contender seconds / ours engine seconds (> 1: slower than ours); for single "
        "points, p50 / ours owners p50. Points/s for single points is 1e6 / p50.",
        "HTTP figures (GET /lookup rps and p99 at 500 req/s, POST /lookup with 100,000 points) "
        "are out of scope for this script.",
        f"Peak RSS of the benchmark process: {peak_rss_mib():,.0f} MiB (ru_maxrss).",
        f"Load average at start {context['load_start']}, at end {loadavg()} (2 cores).",
        f"{context['info']}; shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), "
        f"numpy {np.__version__}",
        f"started {context['started']:%Y-%m-%d %H:%M} UTC; command: `{context['command']}`",
    ]
    for line in notes:
        out.print("- " + escape(line))
    failed = bench.failures
    for failure in failed:
        out.print(f"[bold red]FAIL: {escape(failure)}[/bold red]")
    markdown = "\n".join(
        [
            markdown_table((*HEADERS, "Notes"), cells, len(HEADERS)),
            "",
            markdown_table(goal_headers, goals, 0),
            "",
            *(f"- {line}" for line in notes),
            *(f"- **FAIL: {failure}**" for failure in failed),
        ]
    )
    print("\n<!-- markdown -->\n" + markdown)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n", encoding="utf-8")
    return 1 if failed else 0


# --- the run ---------------------------------------------------------------------------------


def run_benchmarks(bench: Bench, timeout_ms: int) -> None:
    _step("1 ours: engine alone", lambda: bench_engine(bench))
    _step("2 ours: end to end (assign_layer)", lambda: bench_end_to_end(bench))
    _step("3 geopandas.sjoin", lambda: bench_sjoin(bench))
    _step("4 STRtree + contains_xy", lambda: bench_strtree(bench))
    _step("5 PostGIS INSERT ... SELECT", lambda: bench_postgis(bench, timeout_ms))
    _step("6 single point", lambda: bench_single_point(bench, timeout_ms))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss_probe:
        return rss_probe(args.rss_probe)
    context: dict[str, Any] = {
        "started": datetime.now(UTC),
        "load_start": loadavg(),
        "command": shlex.join([".venv/bin/python", "-m", "bench.bench_assign", *args.argv]),
    }
    with scratch_database(args.keep) as url:
        settings = Settings(
            database=DatabaseSettings(url=url, statement_timeout_ms=args.statement_timeout_ms)
        )
        engine = make_engine(url, settings)
        try:
            migrate(engine)
            context["setup"] = _step(
                "setup: boundaries + customers",
                lambda: load_data(engine, args.customers, args.seed),
            )
            bench, build_rows = _step("0 index build", lambda: make_bench(engine, args.repeat))
            bench.rows += build_rows
            run_benchmarks(bench, args.sql_timeout_s * 1000)
            context["info"] = info_line(engine)
            context["worker"] = _step("7 RSS, worker-like process", lambda: rss_worker(url))
        finally:
            engine.dispose()
    context["rss"] = rss_here(bench)
    return report(bench, args, context)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_assign",
        description="Assignment benchmark (issue 3): our territory engine against "
        "geopandas.sjoin, shapely STRtree + contains_xy and PostGIS, on the counties layer and "
        f"N demo customers, in a scratch database ({BENCH_DB}) on the embedded cluster.",
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--seed", type=int, default=42, help="demo.generate seed (default 42)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs per contender; the median is reported"
    )
    parser.add_argument("--keep", action="store_true", help=f"keep {BENCH_DB} at the end")
    parser.add_argument(
        "--statement-timeout-ms",
        type=int,
        default=DatabaseSettings.model_fields["statement_timeout_ms"].default,
        help="the engine's statement_timeout, which ours runs under (default: the app's own)",
    )
    parser.add_argument(
        "--sql-timeout-s",
        type=int,
        default=1800,
        help="statement_timeout of the PostGIS contenders' INSERT ... SELECT (default 1800)",
    )
    parser.add_argument("--markdown", help="also write the Markdown tables to this file")
    parser.add_argument("--rss-probe", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.customers < WARMUP_POINTS or args.repeat < 1:
        parser.error(f"--customers must be >= {WARMUP_POINTS}, --repeat >= 1")
    return args


if __name__ == "__main__":
    raise SystemExit(main())
