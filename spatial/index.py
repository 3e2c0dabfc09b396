"""A territory index: which territories of a layer cover a point, and which one owns it.

Structures, and why:

* A **cell tree** (a quadtree over a root grid of ``root_deg``-degree cells) does most of the
  work. A cell is *decided* when every territory that touches it covers it whole: then every
  point in it has the same covering set, owner and rule, answered by array look-ups with no
  geometry at all. Only cells crossed by a border are split, down to ``max_depth``; the
  remaining *leaf* cells keep their few candidate territories.
* Points in leaf cells get the exact test: ``shapely.intersects_xy`` against the candidate's
  **prepared** polygon (a point intersects a polygon exactly when the polygon covers it, border
  included, as PostGIS ``ST_Covers``).
* An ``STRtree`` over the territories finds, for each cell, the territories that touch it while
  the tree is built; the look-up path never walks it.

An index is immutable: a change builds a new one, which replaces the old one whole, so no
reader ever sees half of a change. Coordinates are degrees (EPSG:4326); areas are m².
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from spatial.errors import SpatialError
from spatial.geometry import invalid_lonlat

# The rule that decided an owner; the same words in the engine, the SQL and the docs.
RULES = ("none", "pinned", "only", "priority", "area", "id")
RULE_NONE, RULE_PINNED, RULE_ONLY, RULE_PRIORITY, RULE_AREA, RULE_ID = range(6)

_EMPTY = np.empty(0, dtype=np.int64)
SHORTCUT_DEPTH = 4  # fine grid of root_deg / 16 (1/16 degree with 1-degree roots: 32 MB, US)
_NODE_DECIDED, _NODE_SPLIT, _NODE_LEAF = 0, 1, 2

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Territories:
    """A layer's territories, as arrays: the engine's whole input."""

    ids: IntArray
    geoms: npt.NDArray[np.object_]  # shapely (Multi)Polygons, lon/lat degrees
    priority: IntArray  # lower wins
    area_m2: FloatArray  # geodesic area, the second tie-break (smaller wins)

    def __post_init__(self) -> None:
        sizes = {len(self.ids), len(self.geoms), len(self.priority), len(self.area_m2)}
        if len(sizes) != 1:
            raise SpatialError("ids, geoms, priority and area_m2 must have the same length")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class Owners:
    """Owners of a batch of points, in input order: territory ids (-1 where none)."""

    owner: IntArray  # territory id, -1 when no territory covers the point
    rule: npt.NDArray[np.int8]  # index into RULES
    covering: npt.NDArray[np.int32]  # how many territories cover the point

    def rules(self) -> list[str]:
        """The deciding rule of each point, as words."""
        return [RULES[r] for r in self.rule.tolist()]


@dataclass(frozen=True, eq=False)
class _Answer:
    """Answers being filled in: owner positions (-1 none), rules and covering counts."""

    owner: IntArray
    rule: npt.NDArray[np.int8]
    covering: npt.NDArray[np.int32]

    @classmethod
    def empty(cls, n: int) -> _Answer:
        """n unanswered points: no owner, rule none, covered by nothing."""
        return cls(
            np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int8), np.zeros(n, np.int32)
        )


@dataclass(frozen=True, eq=False)
class _Tree:
    """The cell tree, flattened into arrays; node 0.. are the root grid's cells."""

    x0: float
    y0: float
    root_deg: float
    nx: int
    ny: int
    kind: npt.NDArray[np.int8]  # decided / split / leaf
    value: IntArray  # decided: answer row; split: first child; leaf: first candidate slot
    count: IntArray  # leaf: number of candidates
    cx: FloatArray  # node origin and size (degrees), to find a point's child
    cy: FloatArray
    size: FloatArray
    candidates: IntArray  # territory positions of the leaves, slot by slot
    answers: _Answer  # one row per covering set met in a decided cell
    answer_sets: list[IntArray] = field(default_factory=list)  # covering positions per answer
    # A shortcut past the top levels: one fine cell (root_deg / 2**shortcut_depth) -> the
    # deepest node down to that depth containing it, so most descents start there.
    shortcut: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    shortcut_depth: int = 0

    def fine_grid(self) -> tuple[float, int, int]:
        """The shortcut grid: cell width (degrees), columns, rows."""
        fine = self.root_deg / 2**self.shortcut_depth
        return fine, self.nx << self.shortcut_depth, self.ny << self.shortcut_depth


class TerritoryIndex:
    """Point-in-territory look-ups over one layer; build once, query many times."""

    def __init__(self, territories: Territories, tree: _Tree, rank: IntArray) -> None:
        self.territories = territories
        self._tree = tree
        self._rank = rank  # position -> rank by (priority, area, id): lower wins

    @classmethod
    def build(
        cls, territories: Territories, *, root_deg: float = 1.0, max_depth: int = 6
    ) -> TerritoryIndex:
        """Index ``territories``: rank them, then split cells until borders are localised."""
        shapely.prepare(territories.geoms)
        rank = _ranks(territories)
        tree = _build_tree(territories, rank, root_deg=root_deg, max_depth=max_depth)
        return cls(territories, tree, rank)

    def __len__(self) -> int:
        return len(self.territories)

    def owners(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> Owners:
        """Owner, deciding rule and covering count of every point (degrees), in input order."""
        x, y = _checked(lon, lat)
        node = self._descend(x, y)
        out = _Answer.empty(x.size)
        self._answer_decided(node, out)
        self._answer_leaves(x, y, node, out)
        # Positions -> ids; -1 (no owner) picks the appended -1.
        ids = np.append(self.territories.ids, np.int64(-1))
        return Owners(owner=ids[out.owner], rule=out.rule, covering=out.covering)

    def owner_of(self, lon: float, lat: float) -> tuple[int, str, int]:
        """(owner id or -1, rule, covering count) of one point: the scalar fast path.

        One point through the vectorised ``owners`` pays for a dozen array operations; here
        the descent reads single items, so a decided cell answers in a few microseconds.
        """
        x, y = float(lon), float(lat)
        if not (math.isfinite(x) and math.isfinite(y) and abs(x) <= 180 and abs(y) <= 90):
            raise SpatialError(
                f"point [{lon}, {lat}] is outside lon -180..180 / lat -90..90", field="point"
            )
        node = self._node_of(x, y)
        t = self._tree
        if node < 0:
            return -1, RULES[RULE_NONE], 0
        if t.kind.item(node) == _NODE_DECIDED:
            row = t.value.item(node)
            pos, rule, n = (
                t.answers.owner.item(row),
                t.answers.rule.item(row),
                t.answers.covering.item(row),
            )
        else:
            pos, rule, n = self._exact_one(node, x, y)
        return (self.territories.ids.item(pos) if pos >= 0 else -1), RULES[rule], n

    def _node_of(self, x: float, y: float) -> int:
        t = self._tree
        fine, nxf, nyf = t.fine_grid()
        ix = _cell_index_one(x, t.x0, fine)
        iy = _cell_index_one(y, t.y0, fine)
        if not (0 <= ix < nxf and 0 <= iy < nyf):
            return -1
        node = t.shortcut.item(iy * nxf + ix)
        kind, value, cx, cy, size = t.kind, t.value, t.cx, t.cy, t.size
        while kind.item(node) == _NODE_SPLIT:
            half = size.item(node) / 2.0
            east = 1 if x >= cx.item(node) + half else 0  # the same test as _descend
            north = 2 if y >= cy.item(node) + half else 0
            node = value.item(node) + east + north
        return int(node)

    def _exact_one(self, node: int, x: float, y: float) -> tuple[int, int, int]:
        t = self._tree
        start = t.value.item(node)
        cands = t.candidates[start : start + t.count.item(node)]
        hits = [c for c in cands.tolist() if shapely.intersects_xy(self.territories.geoms[c], x, y)]
        if not hits:
            return -1, RULE_NONE, 0
        if len(hits) == 1:
            return hits[0], RULE_ONLY, 1
        hits.sort(key=self._rank.item)
        rule = _tie_rule(np.array(hits[:1]), np.array(hits[1:2]), self.territories)
        return hits[0], int(rule[0]), len(hits)

    def covering(self, lon: float, lat: float) -> IntArray:
        """Ids of every territory covering one point, best-ranked first."""
        x, y = _checked([lon], [lat])
        node = int(self._descend(x, y)[0])
        tree = self._tree
        if node < 0:
            return _EMPTY
        if tree.kind[node] == _NODE_DECIDED:
            positions = tree.answer_sets[int(tree.value[node])]
        else:
            start = int(tree.value[node])
            cands = tree.candidates[start : start + int(tree.count[node])]
            hit = np.array(
                [shapely.intersects_xy(self.territories.geoms[c], x[0], y[0]) for c in cands]
            )
            positions = cands[hit] if cands.size else _EMPTY
        ordered = positions[np.argsort(self._rank[positions], kind="stable")]
        return self.territories.ids[ordered]

    # --- look-up steps --------------------------------------------------------------------

    def _descend(self, x: FloatArray, y: FloatArray) -> IntArray:
        """The node of each point's deepest cell; -1 outside the root grid."""
        t = self._tree
        fine, nxf, nyf = t.fine_grid()
        ix = _cell_index(x, t.x0, fine)
        iy = _cell_index(y, t.y0, fine)
        inside = (ix >= 0) & (ix < nxf) & (iy >= 0) & (iy < nyf)
        node = np.full(x.size, -1, dtype=np.int64)
        node[inside] = t.shortcut[iy[inside] * nxf + ix[inside]]
        todo = np.flatnonzero(inside)
        todo = todo[t.kind[node[todo]] == _NODE_SPLIT]
        while todo.size:
            parent = node[todo]
            half = t.size[parent] / 2.0
            # Children are ordered (SW, SE, NW, NE); a point on a split line goes east/north.
            east = (x[todo] >= t.cx[parent] + half).astype(np.int64)
            north = (y[todo] >= t.cy[parent] + half).astype(np.int64)
            node[todo] = t.value[parent] + east + 2 * north
            todo = todo[t.kind[node[todo]] == _NODE_SPLIT]
        return node

    def _answer_decided(self, node: IntArray, out: _Answer) -> None:
        t = self._tree
        hit = np.flatnonzero(node >= 0)
        hit = hit[t.kind[node[hit]] == _NODE_DECIDED]
        rows = t.value[node[hit]]
        out.owner[hit] = t.answers.owner[rows]
        out.rule[hit] = t.answers.rule[rows]
        out.covering[hit] = t.answers.covering[rows]

    def _answer_leaves(self, x: FloatArray, y: FloatArray, node: IntArray, out: _Answer) -> None:
        t = self._tree
        pts = np.flatnonzero(node >= 0)
        pts = pts[t.kind[node[pts]] == _NODE_LEAF]
        if not pts.size:
            return
        # Every (point, candidate) pair of the leaf cells, tested exactly per candidate.
        counts = t.count[node[pts]]
        pair_pt = np.repeat(pts, counts)
        within = np.arange(pair_pt.size) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_cand = t.candidates[np.repeat(t.value[node[pts]], counts) + within]
        hit = _covers_pairs(self.territories.geoms, pair_cand, x[pair_pt], y[pair_pt])
        _resolve(pair_pt[hit], pair_cand[hit], self._rank, self.territories, out)


# --- building -------------------------------------------------------------------------------


def _cell_index(v: FloatArray, origin: float, step: float) -> IntArray:
    """Index of the cell of width ``step`` holding each value, decided exactly at the edges.

    The division rounds, so a value within an ulp of an edge could land in the neighbour;
    edges (origin + i * step, dyadic numbers) are exact, so comparing with them settles it
    the way the tree's own ``x >= edge`` tests do.
    """
    i = np.floor((v - origin) / step).astype(np.int64)
    i -= v < origin + i * step
    i += v >= origin + (i + 1) * step
    return i


def _cell_index_one(v: float, origin: float, step: float) -> int:
    """``_cell_index`` for one value, without array overhead."""
    i = math.floor((v - origin) / step)
    if v < origin + i * step:
        return i - 1
    return i + 1 if v >= origin + (i + 1) * step else i


def _shortcut(
    kinds: list[npt.NDArray[np.int8]],
    xs: list[FloatArray],
    ys: list[FloatArray],
    grid: tuple[float, float, int, int],
    root_deg: float,
) -> tuple[npt.NDArray[np.int32], int]:
    """Fill the fine grid level by level: each node paints its block, deeper nodes over it."""
    depth = min(SHORTCUT_DEPTH, len(kinds) - 1)
    x0, y0, nx, ny = grid
    fine = root_deg / 2**depth
    nxf = nx << depth
    dense = np.zeros((ny << depth) * nxf, dtype=np.int32)
    first = 0
    for level in range(depth + 1):
        block = 1 << (depth - level)
        fx = np.rint((xs[level] - x0) / fine).astype(np.int64)  # exact: dyadic origins
        fy = np.rint((ys[level] - y0) / fine).astype(np.int64)
        nodes = first + np.arange(fx.size, dtype=np.int64)
        for j in range(block):
            for i in range(block):
                dense[(fy + j) * nxf + fx + i] = nodes
        first += fx.size
    return dense, depth


def _ranks(territories: Territories) -> IntArray:
    """Position -> rank under the ownership rule: priority, then area, then id (all ascending)."""
    order = np.lexsort((territories.ids, territories.area_m2, territories.priority))
    rank = np.empty(len(territories), dtype=np.int64)
    rank[order] = np.arange(len(territories))
    return rank


@dataclass
class _Builder:
    """Growing node arrays while the tree is built level by level."""

    kind: list[npt.NDArray[np.int8]] = field(default_factory=list)
    value: list[IntArray] = field(default_factory=list)
    count: list[IntArray] = field(default_factory=list)
    cx: list[FloatArray] = field(default_factory=list)
    cy: list[FloatArray] = field(default_factory=list)
    size: list[FloatArray] = field(default_factory=list)
    candidates: list[IntArray] = field(default_factory=list)
    n_territories: int = 0
    n_nodes: int = 0
    n_slots: int = 0
    # Answer rows: 0 = covered by nothing, 1 + i = covered by territory i alone, then the sets
    # of two or more territories (overlaps) in the order met.
    shared_sets: dict[tuple[int, ...], int] = field(default_factory=dict)


def _build_tree(
    territories: Territories, rank: IntArray, *, root_deg: float, max_depth: int
) -> _Tree:
    """Split cells crossed by borders, level by level, vectorised over each level's cells."""
    geoms = territories.geoms
    x0, y0, nx, ny = _root_grid(geoms, root_deg)
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny))
    cx: FloatArray = (x0 + ix.ravel() * root_deg).astype(np.float64)
    cy: FloatArray = (y0 + iy.ravel() * root_deg).astype(np.float64)
    size = np.full(cx.size, root_deg)
    # Root cells meet territories by bounding box (STRtree); a child can only meet what its
    # parent met, so deeper levels test those pairs alone, against prepared polygons.
    cell, terr = shapely.STRtree(geoms).query(shapely.box(cx, cy, cx + size, cy + size))
    b = _Builder(n_territories=len(territories))
    for depth in range(max_depth + 1):
        first = b.n_nodes
        level = _Level(cx, cy, size, cell, terr)
        split, cell, terr = _add_level(b, geoms, level, last=depth == max_depth)
        if not split.size:
            break
        # Children of every split cell, in (SW, SE, NW, NE) order, numbered after this level.
        local = split - first
        b.value[-1][local] = b.n_nodes + 4 * np.arange(split.size)
        half = np.repeat(b.size[-1][local] / 2.0, 4)
        cx = np.repeat(b.cx[-1][local], 4) + np.tile([0.0, 1.0, 0.0, 1.0], split.size) * half
        cy = np.repeat(b.cy[-1][local], 4) + np.tile([0.0, 0.0, 1.0, 1.0], split.size) * half
        size = half
    return _finish(b, (x0, y0, nx, ny), root_deg, territories, rank)


@dataclass(frozen=True, eq=False)
class _Level:
    """One level's cells (origin and size, degrees) and the (cell, territory) pairs to test."""

    cx: FloatArray
    cy: FloatArray
    size: FloatArray
    cell: IntArray
    terr: IntArray


def _root_grid(geoms: npt.NDArray[np.object_], root_deg: float) -> tuple[float, float, int, int]:
    if not len(geoms):
        return 0.0, 0.0, 1, 1
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    x0 = np.floor(minx / root_deg) * root_deg
    y0 = np.floor(miny / root_deg) * root_deg
    # floor + 1, not ceil: the grid must hold its far edge too (a point on lon 180 or on the
    # east border of the easternmost territory falls in a cell of the grid).
    nx = int(np.floor((maxx - x0) / root_deg)) + 1
    ny = int(np.floor((maxy - y0) / root_deg)) + 1
    return float(x0), float(y0), nx, ny


def _add_level(
    b: _Builder, geoms: npt.NDArray[np.object_], level: _Level, *, last: bool
) -> tuple[IntArray, IntArray, IntArray]:
    """Append one level's cells; return the cells to split and their children's pairs."""
    first = b.n_nodes
    n = level.cx.size
    boxes = shapely.box(level.cx, level.cy, level.cx + level.size, level.cy + level.size)
    meet = shapely.intersects(geoms[level.terr], boxes[level.cell])
    order = np.lexsort((level.terr[meet], level.cell[meet]))  # grouped by cell, for slices
    cell, terr = level.cell[meet][order], level.terr[meet][order]
    whole = shapely.covers(geoms[terr], boxes[cell])
    touching = np.bincount(cell, minlength=n)
    covered = np.bincount(cell, weights=whole, minlength=n).astype(np.int64)
    decided = touching == covered
    kind = np.where(decided, _NODE_DECIDED, _NODE_LEAF if last else _NODE_SPLIT).astype(np.int8)
    value = _decided_answers(b, cell, terr, touching, decided)
    count = np.zeros(n, dtype=np.int64)
    if last:
        leaves = ~decided
        count[leaves] = touching[leaves]
        value[leaves] = b.n_slots + np.cumsum(count[leaves]) - count[leaves]
        b.candidates.append(terr[leaves[cell]])
        b.n_slots += int(count.sum())
    b.kind.append(kind)
    b.value.append(value)
    b.count.append(count)
    b.cx.append(level.cx)
    b.cy.append(level.cy)
    b.size.append(level.size)
    b.n_nodes += n
    split_local = np.flatnonzero(kind == _NODE_SPLIT)
    # The split cells' pairs, handed down to their four children (numbered 4k .. 4k+3).
    slot = np.full(n, -1, dtype=np.int64)
    slot[split_local] = np.arange(split_local.size)
    inherit = slot[cell] >= 0
    child_cell = (4 * slot[cell[inherit]])[:, None] + np.arange(4)
    child_terr = np.repeat(terr[inherit], 4)
    return first + split_local, child_cell.ravel(), child_terr


def _decided_answers(
    b: _Builder, cell: IntArray, terr: IntArray, touching: IntArray, decided: Any
) -> IntArray:
    """Answer rows of the decided cells (0 elsewhere); only overlaps need a Python loop."""
    value = np.zeros(touching.size, dtype=np.int64)
    single = decided & (touching == 1)
    first_pair = np.cumsum(touching) - touching
    value[single] = 1 + terr[first_pair[single]]
    for c in np.flatnonzero(decided & (touching > 1)):
        key = tuple(terr[first_pair[c] : first_pair[c] + touching[c]].tolist())
        row = b.shared_sets.get(key)
        if row is None:
            row = b.shared_sets[key] = 1 + b.n_territories + len(b.shared_sets)
        value[c] = row
    return value


def _finish(
    b: _Builder,
    grid: tuple[float, float, int, int],
    root_deg: float,
    territories: Territories,
    rank: IntArray,
) -> _Tree:
    n = len(territories)
    sets = [_EMPTY] + [np.array([i]) for i in range(n)]
    sets += [np.array(key, dtype=np.int64) for key in b.shared_sets]
    answers = _Answer.empty(len(sets))
    answers.owner[1 : n + 1] = np.arange(n)
    answers.rule[1 : n + 1] = RULE_ONLY
    answers.covering[1 : n + 1] = 1
    if b.shared_sets:
        shared = sets[n + 1 :]
        rows = np.repeat(np.arange(n + 1, len(sets)), [s.size for s in shared])
        _resolve(rows, np.concatenate(shared), rank, territories, answers)
    x0, y0, nx, ny = grid
    shortcut, shortcut_depth = _shortcut(b.kind, b.cx, b.cy, grid, root_deg)
    return _Tree(
        x0=x0,
        y0=y0,
        root_deg=root_deg,
        nx=nx,
        ny=ny,
        kind=np.concatenate(b.kind),
        value=np.concatenate(b.value),
        count=np.concatenate(b.count),
        cx=np.concatenate(b.cx),
        cy=np.concatenate(b.cy),
        size=np.concatenate(b.size),
        candidates=np.concatenate(b.candidates) if b.candidates else _EMPTY,
        answers=answers,
        answer_sets=sets,
        shortcut=shortcut,
        shortcut_depth=shortcut_depth,
    )


# --- exact tests and the ownership rule -----------------------------------------------------


def _covers_pairs(
    geoms: npt.NDArray[np.object_], cand: IntArray, x: FloatArray, y: FloatArray
) -> npt.NDArray[np.bool_]:
    """For each (candidate, point) pair: does the candidate cover the point? By candidate."""
    hit = np.zeros(cand.size, dtype=bool)
    order = np.argsort(cand, kind="stable")
    sorted_cand = cand[order]
    bounds = np.flatnonzero(np.diff(sorted_cand)) + 1
    for group in np.split(order, bounds):
        if group.size:
            hit[group] = shapely.intersects_xy(geoms[cand[group[0]]], x[group], y[group])
    return hit


def _resolve(
    pt: IntArray, cand: IntArray, rank: IntArray, territories: Territories, out: _Answer
) -> None:
    """Owner and rule of points from their covering (point, territory) pairs."""
    if not pt.size:
        return
    order = np.lexsort((rank[cand], pt))
    pt, cand = pt[order], cand[order]
    starts = np.flatnonzero(np.r_[True, pt[1:] != pt[:-1]])
    sizes = np.diff(np.r_[starts, pt.size])
    points = pt[starts]
    best = cand[starts]
    out.owner[points] = best
    out.covering[points] = sizes
    out.rule[points] = RULE_ONLY
    multi = sizes > 1
    runner = cand[starts[multi] + 1]
    out.rule[points[multi]] = _tie_rule(best[multi], runner, territories)


def _tie_rule(best: IntArray, runner: IntArray, territories: Territories) -> npt.NDArray[np.int8]:
    """Which comparison separated the owner from the runner-up: priority, area or id."""
    p, a = territories.priority, territories.area_m2
    return np.where(
        p[best] != p[runner], RULE_PRIORITY, np.where(a[best] != a[runner], RULE_AREA, RULE_ID)
    ).astype(np.int8)


def _checked(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
    y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
    if x.size != y.size:
        raise SpatialError("lon and lat must have the same length", field="points")
    bad = invalid_lonlat(x, y)
    if bad.size:
        raise SpatialError(
            f"point {int(bad[0])} [{x[bad[0]]}, {y[bad[0]]}] is outside lon -180..180 / "
            "lat -90..90 or not a number",
            field=f"points[{int(bad[0])}]",
        )
    return x, y
