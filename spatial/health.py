"""Layer health checks: narrow gaps, non-contiguous territories, holes, invalid and empty shapes.

Every problem is located (a geometry in lon/lat degrees) and says what is wrong and how to fix
it. Checks that need sound geometry (holes, parts, gaps, unmatched edges) run only on the
territories that are valid and not empty; the others are reported as ``invalid`` or ``empty``.

Widths are metres and areas km², measured on the ellipsoid or in a local metric frame, never in
degrees. Gaps are searched for in degrees with a width wide enough for the layer's highest
latitude (so none is missed), then each one found is measured in metres and kept only if it is
narrower than asked. A gap lies between two territories or more, along them for most of its
outline: the notches where two territories meet a coast are not gaps, nor are slivers under a
centimetre wide (the coordinates' precision). Gaps across the 180° meridian are not looked for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

from spatial.errors import SpatialError
from spatial.geometry import invalid_lonlat
from spatial.measure import geodesic_area_km2


def _exact_km2(geoms: npt.ArrayLike) -> np.ndarray:
    """Areas on the ellipsoid, exactly: a health report measures few shapes."""
    return geodesic_area_km2(geoms, exact=True)


KINDS = ("gap", "noncontiguous", "hole", "invalid", "empty", "overlap_edge")
DEFAULT_GAP_WIDTH_M = 1000.0

_GEOD = Geod(ellps="WGS84")
_A = 6_378_137.0  # WGS 84 semi-major axis, metres
_E2 = 0.006_694_379_990_14  # WGS 84 first eccentricity squared
# Metres in one degree of latitude at the equator (the fewest anywhere) and of longitude there.
_M_PER_DEG_LAT_MIN = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0
_MAX_LAT_FOR_GAPS = 85.0  # degrees: beyond, a degree of longitude is too short to search in
_TOUCH_DEG = 1e-7  # degrees (about 1 cm): closer than this, a gap touches a territory
_DUST_KM2 = 1e-6  # 1 m²: smaller pieces between territories are floating-point noise
# Narrower than the coordinates' precision (7 decimals of a degree, about 1 cm): noise too.
_MIN_WIDTH_M = 0.01
_ENCLOSED = 2 / 3  # share of a gap's outline along territories: less, it is a coastal notch
_AREA_FILLED = 0.999  # share of a hole that other territories cover for it to be an enclave
_LOCATION = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
GeomArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Problem:
    """One located problem of a layer; ``territories`` are ids, ``measures`` km², m or counts."""

    kind: str
    geometry: BaseGeometry | None  # lon/lat degrees; None when there is nowhere to point at
    territories: tuple[int, ...]
    reason: str
    measures: dict[str, float | int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Layer:
    """The territories under check: ids, names, geometries and which are sound."""

    ids: IntArray
    names: list[str]
    geoms: GeomArray
    sound: IntArray  # positions of the valid, non-empty territories

    def name(self, pos: int) -> str:
        return f"'{self.names[pos]}' ({int(self.ids[pos])})"

    def names_of(self, positions: Iterable[int]) -> str:
        listed = [self.name(int(p)) for p in positions]
        return ", ".join(listed[:-1]) + f" and {listed[-1]}" if len(listed) > 1 else listed[0]


def check_layer(
    ids: npt.ArrayLike,
    names: Sequence[str],
    geoms: npt.ArrayLike,
    *,
    gap_width_m: float = DEFAULT_GAP_WIDTH_M,
    kinds: Iterable[str] = KINDS,
) -> list[Problem]:
    """Every problem of the given kinds among the territories (geometries in lon/lat degrees)."""
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise SpatialError(f"unknown kinds {sorted(unknown)}; use {list(KINDS)}", field="kinds")
    if not gap_width_m > 0:
        raise SpatialError("gap_width_m must be a positive number of metres", field="gap_width_m")
    arr = np.asarray(geoms, dtype=object).ravel()
    empty = np.flatnonzero(shapely.is_missing(arr) | shapely.is_empty(arr))
    invalid = _invalid_positions(arr, empty)
    sound = np.setdiff1d(np.arange(arr.size), np.r_[empty, invalid]).astype(np.int64)
    layer = _Layer(np.asarray(ids, dtype=np.int64).ravel(), list(names), arr, sound)
    checks = {
        "empty": lambda: _empty(layer, empty),
        "invalid": lambda: _invalid(layer, invalid),
        "hole": lambda: _holes(layer),
        "noncontiguous": lambda: _noncontiguous(layer),
        "gap": lambda: _gaps(layer, gap_width_m),
        "overlap_edge": lambda: _unmatched_edges(layer),
    }
    return [p for kind in KINDS if kind in wanted for p in checks[kind]()]


def summary(problems: Iterable[Problem], kinds: Iterable[str] = KINDS) -> dict[str, int]:
    """Problems per kind (every kind asked for, 0 included)."""
    counts = dict.fromkeys(kinds, 0)
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return counts


def search_width_deg(width_m: float, max_abs_lat: float) -> float:
    """Degrees spanning at least ``width_m`` metres in any direction up to ``max_abs_lat``.

    A degree of longitude shrinks with the cosine of the latitude (111,320 m at the equator,
    about 35.6 km at 71° N in Alaska) and a degree of latitude is never under 110,574 m, so the
    shortest degree decides: a gap ``width_m`` wide is never wider than this many degrees.
    """
    lat = min(abs(max_abs_lat), _MAX_LAT_FOR_GAPS)
    shortest = min(_M_PER_DEG_LAT_MIN, _M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)))
    return width_m / shortest


# --- empty and invalid -----------------------------------------------------------------------


def _invalid_positions(arr: GeomArray, empty: IntArray) -> IntArray:
    present = np.setdiff1d(np.arange(arr.size), empty)
    coords, owner = shapely.get_coordinates(arr[present], return_index=True)
    out_of_range = present[np.unique(owner[invalid_lonlat(coords[:, 0], coords[:, 1])])]
    not_valid = present[~shapely.is_valid(arr[present])]
    return np.union1d(out_of_range, not_valid).astype(np.int64)


def _empty(layer: _Layer, empty: IntArray) -> list[Problem]:
    return [
        Problem(
            "empty",
            None,
            (int(layer.ids[i]),),
            f"Territory {layer.name(i)} has an empty geometry, so it covers nothing: give it "
            "a shape (PUT or PATCH its geometry) or delete it.",
        )
        for i in empty.tolist()
    ]


def _invalid(layer: _Layer, invalid: IntArray) -> list[Problem]:
    problems = []
    for i in invalid.tolist():  # few by nature: GEOS explains one geometry at a time
        geom = layer.geoms[i]
        coords = shapely.get_coordinates(geom)
        bad = invalid_lonlat(coords[:, 0], coords[:, 1])
        if bad.size:
            lon, lat = coords[bad[0]]
            why = f"coordinate [{lon}, {lat}] is outside lon -180..180 / lat -90..90"
            where = shapely.Point(lon, lat) if np.isfinite([lon, lat]).all() else None
        else:
            why = shapely.is_valid_reason(geom)
            found = _LOCATION.search(why)
            where = (
                shapely.Point(float(found.group(1)), float(found.group(2)))
                if found
                else shapely.box(*shapely.bounds(geom)).centroid
            )
        problems.append(
            Problem(
                "invalid",
                where,
                (int(layer.ids[i]),),
                f"Territory {layer.name(i)} is invalid ({why}): look-ups and overlays cannot "
                "trust it. Redraw its rings there, or send the shape again with ?repair=true "
                "to repair it with make_valid.",
                {},
            )
        )
    return problems


# --- holes ----------------------------------------------------------------------------------


def _holes(layer: _Layer) -> list[Problem]:
    polys, owner = shapely.get_parts(layer.geoms[layer.sound], return_index=True)
    n_rings = shapely.get_num_interior_rings(polys)
    if not n_rings.sum():
        return []
    of_poly = np.repeat(np.arange(polys.size), n_rings)
    # The k-th ring of each polygon: position within its run of equal polygon numbers.
    k = np.arange(of_poly.size) - np.repeat(np.cumsum(n_rings) - n_rings, n_rings)
    holes = shapely.polygons(shapely.get_interior_ring(polys[of_poly], k))
    owners = layer.sound[owner[of_poly]]
    area = _exact_km2(holes)
    covered, fillers = _covered_by_others(layer, holes, owners)
    return [
        Problem(
            "hole",
            shapely.orient_polygons(holes[h], exterior_cw=False),
            (int(layer.ids[owners[h]]), *(int(layer.ids[f]) for f in fillers[h])),
            _hole_reason(layer, int(owners[h]), area[h], covered[h], fillers[h]),
            {"area_km2": float(area[h]), "uncovered_km2": float(max(area[h] - covered[h], 0.0))},
        )
        for h in range(holes.size)
    ]


def _covered_by_others(
    layer: _Layer, holes: GeomArray, owners: IntArray
) -> tuple[FloatArray, list[list[int]]]:
    """Area (km²) of each hole that other territories cover, and those territories."""
    tree = shapely.STRtree(layer.geoms[layer.sound])
    hole_at, other = tree.query(holes, predicate="intersects")
    other = layer.sound[other]
    keep = other != owners[hole_at]
    hole_at, other = hole_at[keep], other[keep]
    shared = _exact_km2(shapely.intersection(holes[hole_at], layer.geoms[other]))
    covered = np.zeros(holes.size)
    np.add.at(covered, hole_at, shared)
    fillers: list[list[int]] = [[] for _ in range(holes.size)]
    for h, o in zip(hole_at[shared > 0].tolist(), other[shared > 0].tolist(), strict=True):
        fillers[h].append(o)
    return covered, fillers


def _hole_reason(layer: _Layer, owner: int, area: float, covered: float, fillers: list[int]) -> str:
    head = f"Territory {layer.name(owner)} has a hole of {area:.4g} km²"
    if area > 0 and covered >= _AREA_FILLED * area:
        return (
            f"{head} that {layer.names_of(fillers)} fill(s): an enclave, nothing to fix unless "
            "the hole itself is a drawing mistake."
        )
    return (
        f"{head}, {area - covered:.4g} km² of which no territory of the layer covers: "
        "customers there have no owner. Remove the interior ring if it is a mistake, or draw "
        "a territory over it."
    )


# --- non-contiguous territories -----------------------------------------------------------------


def _noncontiguous(layer: _Layer) -> list[Problem]:
    geoms = layer.geoms[layer.sound]
    multi = np.flatnonzero(shapely.get_num_geometries(geoms) > 1)
    if not multi.size:
        return []
    parts, owner = shapely.get_parts(geoms[multi], return_index=True)
    area = _exact_km2(parts)
    piece = _pieces(parts, owner)
    piece_area = np.zeros(parts.size)
    np.add.at(piece_area, piece, area)
    # The main piece of each territory: the largest (its parts' areas added up).
    order = np.lexsort((-piece_area[piece], owner))
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    main = np.empty(multi.size, dtype=np.int64)
    main[owner[first]] = piece[first]
    detached = piece != main[owner]
    problems = []
    for t in np.unique(owner[detached]).tolist():
        mine = owner == t
        n_pieces = np.unique(piece[mine]).size
        gone = np.flatnonzero(mine & detached)
        pos = int(layer.sound[multi[t]])
        problems.append(
            Problem(
                "noncontiguous",
                shapely.orient_polygons(shapely.multipolygons(parts[gone]), exterior_cw=False),
                (int(layer.ids[pos]),),
                f"Territory {layer.name(pos)} is in {n_pieces} separate pieces: the "
                f"{gone.size} part(s) apart from the main one are shown ({area[gone].sum():.4g}"
                " km²). Islands are expected; otherwise remove the stray parts or make them a "
                "territory of their own.",
                {
                    "parts": int(mine.sum()),
                    "pieces": int(n_pieces),
                    "area_km2": float(area[gone].sum()),
                    "main_area_km2": float(area[mine & ~detached].sum()),
                },
            )
        )
    return problems


def _pieces(parts: GeomArray, owner: IntArray) -> IntArray:
    """A piece label per part: parts of one territory joined across the 180° meridian share it.

    RFC 7946 splits a shape crossing the antimeridian into parts on either side; those parts
    touch along lon 180 = -180 and are one piece on the ground, not separate ones.
    """
    labels = np.arange(parts.size, dtype=np.int64)
    bounds = shapely.bounds(parts)
    west = np.flatnonzero(bounds[:, 0] <= -180.0)
    east = np.flatnonzero(bounds[:, 2] >= 180.0)
    if not (west.size and east.size):
        return labels
    moved = shapely.transform(parts[west], lambda c: c + np.array([360.0, 0.0]))
    w, e = shapely.STRtree(parts[east]).query(moved, predicate="intersects")
    a, b = west[w], east[e]
    shares_edge = shapely.length(shapely.intersection(moved[w], parts[b])) > 0
    a, b = a[(owner[a] == owner[b]) & shares_edge], b[(owner[a] == owner[b]) & shares_edge]
    while a.size:  # smallest label spreads along the joins until nothing changes
        new = labels.copy()
        np.minimum.at(new, a, labels[b])
        np.minimum.at(new, b, labels[a])
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


# --- coverage: narrow gaps and unmatched edges ---------------------------------------------------


def _unmatched_edges(layer: _Layer) -> list[Problem]:
    geoms = layer.geoms[layer.sound]
    if geoms.size < 2:
        return []
    edges = shapely.coverage_invalid_edges(geoms)
    flagged = np.flatnonzero(~shapely.is_empty(edges))
    if not flagged.size:
        return []
    length = geodesic_length_m(edges[flagged])
    near, other = shapely.STRtree(geoms).query(
        edges[flagged], predicate="dwithin", distance=_TOUCH_DEG
    )
    problems = []
    for k, f in enumerate(flagged.tolist()):
        pos = int(layer.sound[f])
        others = [int(layer.sound[o]) for o in other[near == k].tolist() if o != f]
        with_whom = f" ({layer.names_of(others)})" if others else ""
        problems.append(
            Problem(
                "overlap_edge",
                edges[f],
                (int(layer.ids[pos]), *(int(layer.ids[o]) for o in others)),
                f"Edges of {layer.name(pos)} ({length[k]:.0f} m) do not match those of its "
                f"neighbours{with_whom}: the borders cross, overlap or nearly meet there. Snap "
                "them onto one shared border (the overlaps analysis shows any overlapping area).",
                {"length_m": float(length[k])},
            )
        )
    return problems


def _gaps(layer: _Layer, width_m: float) -> list[Problem]:
    geoms = layer.geoms[layer.sound]
    if geoms.size < 2:
        return []
    bounds = shapely.total_bounds(geoms)
    width_deg = search_width_deg(width_m, max(abs(bounds[1]), abs(bounds[3])))
    # GEOS flags the edges lying within width_deg of another territory without matching it:
    # only those territories can border a narrow gap, so only they are closed below.
    near = shapely.coverage_invalid_edges(geoms, gap_width=width_deg)
    flagged = np.flatnonzero(~shapely.is_empty(near))
    if flagged.size < 2:
        return []
    # Their neighbours within the width too: GEOS may flag one side of a gap and not the other
    # when the width nears the size of the territories.
    tree = shapely.STRtree(geoms)
    nearby = tree.query(geoms[flagged], predicate="dwithin", distance=width_deg)[1]
    closed = np.union1d(flagged, nearby)
    pieces = _uncovered(_closing_gaps(geoms[closed], width_deg), geoms, closed)
    # Slivers of floating-point dust (µm²) where borders cross are no gaps.
    pieces = pieces[_exact_km2(pieces) >= _DUST_KM2]
    if not pieces.size:
        return []
    # A gap lies between two territories or more, next to edges GEOS flagged.
    at_edge = np.unique(
        shapely.STRtree(near[flagged]).query(pieces, predicate="dwithin", distance=_TOUCH_DEG)[0]
    )
    piece_at, other = tree.query(pieces[at_edge], predicate="dwithin", distance=_TOUCH_DEG)
    counts = np.bincount(piece_at, minlength=at_edge.size)
    enclosed = _enclosed_share(pieces[at_edge], piece_at, geoms[other]) >= _ENCLOSED
    between = at_edge[(counts >= 2) & enclosed]
    # Widths to a centimetre, or a thousandth of the width asked for if coarser.
    widths = local_widths_m(pieces[between], tolerance_m=max(width_m / 1000, 0.01))
    keep = (widths <= width_m) & (widths >= _MIN_WIDTH_M)
    gaps, widths = pieces[between][keep], widths[keep]
    bordering = [
        layer.sound[other[piece_at == k]] for k in np.flatnonzero((counts >= 2) & enclosed)[keep]
    ]
    area = _exact_km2(gaps)
    return [
        Problem(
            "gap",
            shapely.orient_polygons(gaps[g], exterior_cw=False),
            tuple(int(layer.ids[b]) for b in bordering[g]),
            f"A gap of {area[g]:.4g} km², {widths[g]:.0f} m wide, lies between "
            f"{layer.names_of(bordering[g])}: points in it belong to no territory. Move one "
            "border onto the other (snap the vertices) or extend a territory over it; if it "
            "is water, there may be nothing to fix.",
            {"area_km2": float(area[g]), "width_m": float(widths[g])},
        )
        for g in range(gaps.size)
    ]


def _enclosed_share(pieces: GeomArray, piece_at: IntArray, bordering: GeomArray) -> FloatArray:
    """Share of each piece's outline that runs along territories (the rest is open).

    A closing also rounds off concave corners where two territories meet the layer's outer
    edge: such a fillet lies against its territories for about half its outline, its other
    half an arc in the open. A gap lies between territories nearly all along.
    """
    outline = shapely.boundary(pieces)
    along = shapely.length(
        shapely.intersection(outline[piece_at], shapely.buffer(bordering, _TOUCH_DEG))
    )
    shared = np.zeros(pieces.size)
    np.add.at(shared, piece_at, along)
    return np.minimum(shared / shapely.length(outline), 1.0)


def _closing_gaps(geoms: GeomArray, width_deg: float) -> GeomArray:
    """Regions narrower than ``width_deg`` between the territories: closing minus their union.

    A morphological closing (grow by half the width, then shrink back) fills every passage
    narrower than the width and nothing wider, in degrees (see ``search_width_deg``).
    """
    union = shapely.union_all(geoms)
    half = width_deg / 2
    closed = shapely.buffer(shapely.buffer(union, half, quad_segs=16), -half, quad_segs=16)
    found = shapely.get_parts(shapely.difference(closed, union))
    found = found[shapely.get_type_id(found) == 3]
    return np.asarray(found[shapely.area(found) > 0], dtype=object)


def _uncovered(pieces: GeomArray, geoms: GeomArray, closed: IntArray) -> GeomArray:
    """The pieces minus the territories left out of the closing (an enclave may lie there)."""
    if not pieces.size:
        return pieces
    _, other = shapely.STRtree(geoms).query(pieces, predicate="intersects")
    others = np.setdiff1d(other, closed)
    if not others.size:
        return pieces
    rest = shapely.get_parts(shapely.difference(pieces, shapely.union_all(geoms[others])))
    rest = rest[shapely.get_type_id(rest) == 3]
    return np.asarray(rest[shapely.area(rest) > 0], dtype=object)


# --- measures in metres -------------------------------------------------------------------------


def geodesic_length_m(lines: npt.ArrayLike) -> FloatArray:
    """Length (metres, on the WGS 84 ellipsoid) of each linear geometry in lon/lat degrees."""
    arr = np.asarray(lines, dtype=object).ravel()
    parts, owner = shapely.get_parts(arr, return_index=True)
    coords, part = shapely.get_coordinates(parts, return_index=True)
    same = part[1:] == part[:-1]  # consecutive vertices of one line make a segment
    start, end = coords[:-1][same], coords[1:][same]
    _, _, dist = _GEOD.inv(start[:, 0], start[:, 1], end[:, 0], end[:, 1])
    out = np.zeros(arr.size)
    np.add.at(out, owner[part[1:][same]], np.asarray(dist, dtype=np.float64))
    return out


def local_widths_m(polygons: npt.ArrayLike, *, tolerance_m: float) -> FloatArray:
    """Width (metres) of each polygon: the diameter of its largest inscribed circle.

    Measured in a local frame around each polygon (metres east and north of its centroid, with
    the ellipsoid's scale at that latitude): exact enough for gaps a few km across, where a
    degree of longitude would count for 0.3 to 1 degree of latitude.
    """
    arr = np.asarray(polygons, dtype=object).ravel()
    if not arr.size:
        return np.zeros(0)
    centre = shapely.get_coordinates(shapely.centroid(arr))
    _, index = shapely.get_coordinates(arr, return_index=True)
    lat = np.radians(centre[:, 1])
    w = 1 - _E2 * np.sin(lat) ** 2
    east = np.pi / 180 * _A * np.cos(lat) / np.sqrt(w)  # metres per degree of longitude
    north = np.pi / 180 * _A * (1 - _E2) / w**1.5  # metres per degree of latitude
    scale = np.stack([east, north], axis=1)[index]
    origin = centre[index]
    metric = shapely.transform(arr, lambda c: (c - origin) * scale)
    radius = shapely.length(shapely.maximum_inscribed_circle(metric, tolerance_m))
    return np.asarray(2 * radius, dtype=np.float64)
