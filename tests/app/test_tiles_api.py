"""Vector tiles and TileJSON: features, attributes and positions against independent oracles.

Tiles are decoded by a small protobuf reader here (the MVT 2.1 schema); positions are checked
against web-mercator arithmetic done in Python, ids against PostGIS predicates.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.repositories import tiles as repo

LAYER = "tiles-test"
MVT = "application/vnd.mapbox-vector-tile"
EXTENT = 4096
HALF_WORLD_M = 20037508.342789244  # web mercator: half the world's width, metres
EARTH_RADIUS_M = 6378137.0
# The tile the drawn territories and customers are placed in: central US, zoom 8.
Z, X, Y = 8, 56, 96


# --- a minimal MVT (protobuf) reader ---------------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs of one message: ints for varints, bytes for the rest."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise AssertionError(f"wire type {wire} is not in MVT")
        out.append((number, value))
    return out


def _packed(buf: bytes) -> list[int]:
    values, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        values.append(v)
    return values


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _value(buf: bytes) -> Any:
    ((number, raw),) = _fields(buf)
    decode = {
        1: lambda r: r.decode(),
        2: lambda r: struct.unpack("<f", r)[0],
        3: lambda r: struct.unpack("<d", r)[0],
        4: lambda r: r if r < 2**63 else r - 2**64,
        5: lambda r: r,
        6: _zigzag,
        7: bool,
    }
    return decode[number](raw)


@dataclass
class Feature:
    """One decoded feature: id, type (1 point, 3 polygon), properties, rings/points."""

    id: int | None
    type: int
    properties: dict[str, Any]
    parts: list[list[tuple[int, int]]] = field(default_factory=list)  # tile units


def _geometry(commands: list[int]) -> list[list[tuple[int, int]]]:
    parts: list[list[tuple[int, int]]] = []
    x = y = i = 0
    while i < len(commands):
        op, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if op == 7:  # ClosePath
            continue
        if op == 1:  # MoveTo starts a part (each point of a multipoint is one)
            for _ in range(count):
                x += _zigzag(commands[i])
                y += _zigzag(commands[i + 1])
                i += 2
                parts.append([(x, y)])
            continue
        assert op == 2, op
        for _ in range(count):
            x += _zigzag(commands[i])
            y += _zigzag(commands[i + 1])
            i += 2
            parts[-1].append((x, y))
    return parts


def decode(tile: bytes) -> dict[str, list[Feature]]:
    """Layer name -> its features."""
    layers: dict[str, list[Feature]] = {}
    for number, raw in _fields(tile):
        assert number == 3  # Tile.layers
        name, features = _layer(raw)
        layers[name] = features
    return layers


def _layer(raw: bytes) -> tuple[str, list[Feature]]:
    fields = _fields(raw)
    one = dict(fields)
    assert one.get(5, 4096) == EXTENT and one[15] == 2  # extent, version
    keys = [v.decode() for n, v in fields if n == 3]
    values = [_value(v) for n, v in fields if n == 4]
    return one[1].decode(), [_feature(v, keys, values) for n, v in fields if n == 2]


def _feature(raw: bytes, keys: list[str], values: list[Any]) -> Feature:
    one = dict(_fields(raw))
    tags = _packed(one.get(2, b""))
    props = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
    return Feature(one.get(1), one.get(3, 0), props, _geometry(_packed(one.get(4, b""))))


# --- web mercator, in Python ------------------------------------------------------------------


def _tile_size_m(z: int) -> float:
    return 2 * HALF_WORLD_M / 2**z


def tile_units(lon: float, lat: float, z: int = Z, x: int = X, y: int = Y) -> tuple[float, float]:
    """Where lon/lat falls in tile z/x/y, in tile units (y down), unrounded."""
    mx = math.radians(lon) * EARTH_RADIUS_M
    my = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * EARTH_RADIUS_M
    size = _tile_size_m(z)
    left, top = -HALF_WORLD_M + x * size, HALF_WORLD_M - y * size
    return (mx - left) / size * EXTENT, (top - my) / size * EXTENT


def lonlat(ux: float, uy: float, z: int = Z, x: int = X, y: int = Y) -> tuple[float, float]:
    """The lon/lat of a position in tile units (the inverse of ``tile_units``)."""
    size = _tile_size_m(z)
    mx = -HALF_WORLD_M + x * size + ux / EXTENT * size
    my = HALF_WORLD_M - y * size - uy / EXTENT * size
    lat = math.degrees(2 * math.atan(math.exp(my / EARTH_RADIUS_M)) - math.pi / 2)
    return math.degrees(mx / EARTH_RADIUS_M), lat


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    """A GeoJSON polygon whose corners sit at these tile units of tile Z/X/Y."""
    corners = [lonlat(x0, y0), lonlat(x1, y0), lonlat(x1, y1), lonlat(x0, y1)]
    ring = [[lon, lat] for lon, lat in corners[::-1]]  # counter-clockwise in lon/lat
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


# --- fixtures --------------------------------------------------------------------------------


DRAWN = {
    # name: (box in tile units of Z/X/Y, owner)
    "inside": ((800, 1000, 1600, 2000), "Ann"),
    "next-door": ((1600, 1000, 2000, 2000), "Ann"),  # shares an edge with "inside"
    "across-east-edge": ((3500, 1000, 4600, 1500), None),
    "in-west-buffer": ((-50, 3000, -20, 3100), "Bob"),  # the buffer is 64 units wide
    "far-away": ((8 * EXTENT, 0, 9 * EXTENT, 500), "Cy"),
}


@pytest.fixture
def drawn(client: TestClient) -> dict[str, int]:
    """A layer of four drawn boxes placed around tile Z/X/Y; name -> territory id."""
    assert client.post("/layers", json={"name": LAYER}).status_code == 201
    ids = {}
    for name, (box, owner) in DRAWN.items():
        properties = {"name": name} | ({"owner": owner} if owner else {})
        feature = {"type": "Feature", "geometry": _box(*box), "properties": properties}
        made = client.post(f"/layers/{LAYER}/territories", json=feature)
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
    return ids


def _customers(client: TestClient, points: list[tuple[str, float, float, float]]) -> None:
    body = [
        {"external_id": eid, "lon": lon, "lat": lat, "value": value}
        for eid, lon, lat, value in points
    ]
    assert client.post("/customers", json=body).status_code == 200


def _tile(client: TestClient, url: str, **headers: str) -> dict[str, list[Feature]]:
    got = client.get(url, headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == MVT
    return decode(got.content)


# --- layer tiles -----------------------------------------------------------------------------


def test_a_tile_holds_the_territories_in_it_and_its_buffer(
    client: TestClient, drawn: dict[str, int]
) -> None:
    features = _tile(client, f"/tiles/{LAYER}/{Z}/{X}/{Y}.mvt")["territories"]
    by_id = {f.id: f for f in features}
    far = drawn["far-away"]
    assert set(by_id) == {tid for tid in drawn.values() if tid != far}
    inside = by_id[drawn["inside"]]
    assert inside.type == 3 and inside.properties == {
        "name": "inside",
        "owner": "Ann",
        "customer_count": 0,
        "color": inside.properties["color"],
    }
    # The box lands where web mercator puts it (within a unit of rounding), y pointing down.
    (ring,) = inside.parts
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx((800, 1000, 1600, 2000), abs=1)
    # Clipped at the buffer: 64 units beyond the east edge, not the box's 4600.
    (across,) = by_id[drawn["across-east-edge"]].parts
    assert max(p[0] for p in across) == EXTENT + 64
    assert "owner" not in by_id[drawn["across-east-edge"]].properties  # NULL: left out


def test_an_empty_tile_is_204(client: TestClient, drawn: dict[str, int]) -> None:
    empty = client.get(f"/tiles/{LAYER}/{Z}/{X - 3}/{Y}.mvt")
    assert empty.status_code == 204 and empty.content == b""
    assert empty.headers["etag"] and empty.headers["cache-control"] == "no-cache"
    assert client.get("/tiles/counties/5/0/20.mvt").status_code == 204  # the Pacific


@pytest.mark.parametrize(
    ("tile", "least"),  # least: counties in the tile, pairs of them touching
    [
        ((7, 33, 49), (50, 100)),  # Kentucky and its neighbours: 120 counties or so
        ((4, 0, 8), (3, 0)),  # American Samoa, in the first column: the buffer crosses -180°
    ],
)
def test_counties_tile_ids_match_postgis(
    client: TestClient, session: Session, tile: tuple[int, int, int], least: tuple[int, int]
) -> None:
    z, x, y = tile
    features = _tile(client, f"/tiles/counties/{z}/{x}/{y}.mvt")["territories"]
    found = {f.id for f in features}
    assert len(found) == len(features)  # each territory once

    def meeting(margin: float) -> set[int]:
        """Counties meeting the tile plus ``margin`` tile units (box corners from Python)."""
        west, north = lonlat(-margin, -margin, z, x, y)
        east, south = lonlat(EXTENT + margin, EXTENT + margin, z, x, y)
        rows = session.execute(
            text(
                "SELECT t.id FROM territories t JOIN layers l ON l.id = t.layer_id "
                "WHERE l.name = 'counties' AND ST_Intersects(t.geom, "
                "ST_MakeEnvelope(:w, :s, :e, :n, 4326))"
            ),
            {"w": west, "s": south, "e": east, "n": north},
        )
        return {r.id for r in rows}

    in_tile, in_buffer = meeting(0.0), meeting(64)
    session.rollback()
    assert len(in_tile) >= least[0]
    assert in_tile <= found <= in_buffer
    rows = session.execute(
        text("SELECT id, name FROM territories WHERE id = ANY(:i)"), {"i": list(found)}
    )
    names = {r.id: r.name for r in rows}
    assert {f.id: f.properties["name"] for f in features} == names
    touching = session.execute(
        text(
            "SELECT a.id AS a, b.id AS b FROM territories a JOIN territories b "
            "ON a.id < b.id AND ST_Intersects(a.geom, b.geom) "
            "WHERE a.id = ANY(:i) AND b.id = ANY(:i)"
        ),
        {"i": list(found)},
    ).all()
    session.rollback()
    color = {f.id: f.properties["color"] for f in features}
    assert len(touching) >= least[1]
    assert all(color[a] != color[b] for a, b in touching)


def test_colours_and_counts_are_the_coverage_maps(
    client: TestClient, drawn: dict[str, int]
) -> None:
    inside = DRAWN["inside"][0]
    lon, lat = lonlat((inside[0] + inside[2]) / 2, (inside[1] + inside[3]) / 2)
    _customers(client, [("a", lon, lat, 10), ("b", lon + 0.01, lat, 20)])
    assert client.post(f"/layers/{LAYER}/assign").status_code == 200
    coverage = client.get(f"/layers/{LAYER}/coverage").json()["features"]
    expected = {
        f["id"]: (f["properties"]["color"], f["properties"]["customer_count"]) for f in coverage
    }
    features = _tile(client, f"/tiles/{LAYER}/{Z}/{X}/{Y}.mvt")["territories"]
    got = {f.id: (f.properties["color"], f.properties["customer_count"]) for f in features}
    assert got == {k: expected[k] for k in got}
    assert got[drawn["inside"]][1] == 2
    assert got[drawn["inside"]][0] != got[drawn["next-door"]][0]  # they touch


def test_etag_changes_with_the_layer_and_its_assignments(
    client: TestClient, drawn: dict[str, int]
) -> None:
    url = f"/tiles/{LAYER}/{Z}/{X}/{Y}.mvt"
    first = client.get(url)
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    assert client.get(url).headers["etag"] == tag  # nothing changed
    again = client.get(url, headers={"if-none-match": f'W/{tag}, "other"'})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert client.get(f"/tiles/{LAYER}/{Z}/{X + 1}/{Y}.mvt").headers["etag"] != tag
    # A territory edit: a new tag, the old one gets the new tile, which shows the edit.
    patched = client.patch(f"/layers/{LAYER}/territories/{drawn['inside']}", json={"owner": "Zoe"})
    assert patched.status_code == 200
    edited = client.get(url, headers={"if-none-match": tag})
    assert edited.status_code == 200 and edited.headers["etag"] != tag
    owners = {f.id: f.properties.get("owner") for f in decode(edited.content)["territories"]}
    assert owners[drawn["inside"]] == "Zoe"
    # The assignments change (a first assignment, then a customer written): new tags again.
    tag2 = edited.headers["etag"]
    assert client.post(f"/layers/{LAYER}/assign").status_code == 200
    tag3 = client.get(url).headers["etag"]
    inside = DRAWN["inside"][0]
    _customers(client, [("c", *lonlat(inside[0] + 10, inside[1] + 10), 5)])
    assigned = client.get(url, headers={"if-none-match": tag3})
    assert assigned.status_code == 200
    assert len({tag, tag2, tag3, assigned.headers["etag"]}) == 4
    counts = {f.id: f.properties["customer_count"] for f in decode(assigned.content)["territories"]}
    assert counts[drawn["inside"]] == 1


def test_simplification_keeps_the_shape_to_a_pixel(client: TestClient, session: Session) -> None:
    # Colorado at z4 has few vertices after simplification, but its box is kept to a pixel
    # (16 tile units): simplification must not move the outline.
    z, x, y = 4, 3, 6
    features = _tile(client, f"/tiles/states/{z}/{x}/{y}.mvt")["territories"]
    colorado = next(f for f in features if f.properties["name"] == "Colorado")
    w, s, e, n = session.execute(
        text(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM territories t "
            "JOIN layers l ON l.id = t.layer_id WHERE l.name = 'states' AND t.name = 'Colorado'"
        )
    ).one()
    session.rollback()
    (x0, y1), (x1, y0) = tile_units(w, s, z, x, y), tile_units(e, n, z, x, y)
    points = [p for part in colorado.parts for p in part]
    box = (min(p[0] for p in points), min(p[1] for p in points),
           max(p[0] for p in points), max(p[1] for p in points))  # fmt: skip
    assert box == pytest.approx((x0, y0, x1, y1), abs=16)
    assert repo.simplify_tolerance_deg(z) == pytest.approx(360 / (256 * 16) / 4)


# --- customer tiles --------------------------------------------------------------------------


def test_customer_points_land_where_mercator_puts_them(
    client: TestClient, session: Session
) -> None:
    z, x, y = 12, X * 16, Y * 16  # the north-west sixteenth of tile Z/X/Y, at zoom 12
    spots = {"p0": (100.4, 200.2), "p1": (4000.0, 4090.0), "p2": (2048.6, 17.3)}
    values = {"p0": 100.5, "p1": 0.0, "p2": 1234.25}
    points = [(eid, *lonlat(*spot, z, x, y), values[eid]) for eid, spot in spots.items()]
    _customers(client, [*points, ("elsewhere", -70.0, 42.0, 1)])
    rows = session.execute(text("SELECT id, external_id FROM customers"))
    ids = {r.id: r.external_id for r in rows}
    session.rollback()
    features = _tile(client, f"/tiles/customers/{z}/{x}/{y}.mvt")["customers"]
    assert sorted(ids[f.id] for f in features if f.id is not None) == ["p0", "p1", "p2"]
    for f in features:
        eid = ids[f.id] if f.id is not None else ""
        assert f.type == 1
        assert f.properties == {"value": pytest.approx(values[eid]), "count": 1}
        assert f.parts == [[pytest.approx(spots[eid], abs=1)]]
    assert client.get(f"/tiles/customers/{z}/{x + 1}/{y + 3}.mvt").status_code == 204


def test_customers_cluster_by_grid_at_low_zoom(client: TestClient) -> None:
    z, x, y = 6, X // 4, Y // 4
    assert z < repo.CLUSTER_BELOW_ZOOM
    near = [(1000.1, 1000.1), (1000.5, 1001.0), (1010.0, 1020.0)]  # one 64-unit cell
    points = [
        (f"n{i}", *lonlat(ux, uy, z, x, y), 10.0 * (i + 1)) for i, (ux, uy) in enumerate(near)
    ]
    points.append(("alone", *lonlat(3000.0, 200.0, z, x, y), 7.25))
    _customers(client, points)
    features = _tile(client, f"/tiles/customers/{z}/{x}/{y}.mvt")["customers"]
    got = sorted((f.properties["count"], f.properties["value"], f.parts[0][0]) for f in features)
    mean = (sum(p[0] for p in near) / 3, sum(p[1] for p in near) / 3)
    assert [(c, v) for c, v, _ in got] == [(1, pytest.approx(7.25)), (3, pytest.approx(60.0))]
    assert got[0][2] == pytest.approx((3000, 200), abs=1)
    assert got[1][2] == pytest.approx(mean, abs=1)  # at the mean position of the three
    assert all(f.id is None for f in features)


def test_customer_tile_etag_follows_its_content(client: TestClient) -> None:
    z, x, y = 12, X * 16, Y * 16
    _customers(client, [("one", *lonlat(10, 10, z, x, y), 1)])
    url = f"/tiles/customers/{z}/{x}/{y}.mvt"
    tag = client.get(url).headers["etag"]
    assert client.get(url, headers={"if-none-match": tag}).status_code == 304
    _customers(client, [("one", *lonlat(20, 10, z, x, y), 1)])  # moved within the tile
    moved = client.get(url, headers={"if-none-match": tag})
    assert moved.status_code == 200 and moved.headers["etag"] != tag


# --- TileJSON, errors, the engine --------------------------------------------------------------


def test_tilejson_of_a_layer(client: TestClient, drawn: dict[str, int], session: Session) -> None:
    got = client.get(f"/tiles/{LAYER}.json")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    doc = got.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == [f"http://testserver/tiles/{LAYER}/{{z}}/{{x}}/{{y}}.mvt"]
    (vector_layer,) = doc["vector_layers"]
    assert vector_layer["id"] == "territories"
    assert vector_layer["fields"] == {
        "name": "String", "owner": "String", "customer_count": "Number", "color": "Number"
    }  # fmt: skip
    extent = session.execute(
        text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
             "FROM territories t JOIN layers l ON l.id = t.layer_id WHERE l.name = :n) x"),
        {"n": LAYER},
    ).one()  # fmt: skip
    session.rollback()
    assert doc["bounds"] == pytest.approx(list(extent))
    lon, lat, zoom = doc["center"]
    assert extent[0] < lon < extent[2] and extent[1] < lat < extent[3] and 0 <= zoom <= 14
    assert 0 == doc["minzoom"] < doc["maxzoom"] == 14
    # The template works as it is.
    url = doc["tiles"][0].format(z=Z, x=X, y=Y).removeprefix("http://testserver")
    assert _tile(client, url)["territories"]


def test_tilejson_of_the_customers(client: TestClient) -> None:
    doc = client.get("/tiles/customers.json").json()
    assert doc["tiles"] == ["http://testserver/tiles/customers/{z}/{x}/{y}.mvt"]
    assert doc["vector_layers"][0]["id"] == "customers"
    assert set(doc["vector_layers"][0]["fields"]) == {"value", "count"}
    west, south, east, north = doc["bounds"]
    assert -180 <= west <= east <= 180 and -85.06 < south <= north < 85.06


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/tiles/counties/4/16/0.mvt", 404, "x"),
        ("/tiles/counties/4/0/16.mvt", 404, "y"),
        ("/tiles/counties/4/-1/0.mvt", 404, "x"),
        ("/tiles/counties/23/0/0.mvt", 404, "z"),
        ("/tiles/customers/0/1/0.mvt", 404, "x"),
        ("/tiles/counties/4/a/0.mvt", 422, "path.x"),
        ("/tiles/nope/0/0/0.mvt", 404, "layer"),
        ("/tiles/nope.json", 404, "layer"),
    ],
)
def test_bad_tiles_are_problems_naming_the_coordinate(
    client: TestClient, path: str, status: int, field: str
) -> None:
    got = client.get(path)
    assert got.status_code == status
    assert got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert problem.get("field", (problem.get("errors") or [{}])[0].get("field")) == field


def test_the_engine_plans_every_query_for_its_values(client: TestClient) -> None:
    # A generic plan of a tile query cannot see its tile: p95 went from 8 to 40 ms.
    app: Any = client.app
    with app.state.engine.connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
