"""Deterministic demo customers placed around real US ZIP-code centroids.

The ``zipcodes`` package ships the USPS ZIP list with centroids. Customers are drawn from the
standard, active ZIP codes of the states, DC and Puerto Rico, denser where a city has many ZIP
codes, jittered by a couple of kilometres, with a log-normal value (a few large accounts, a
long tail of small ones) — the skew a real revenue table has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zipcodes

from app.customer_files import CustomerBatch

# Military and freely associated states have no counties to assign to.
_EXCLUDED_STATES = frozenset({"AA", "AE", "AP", "FM", "MH", "PW"})
JITTER_KM = 2.0  # standard deviation of the offset from the ZIP centroid
_KM_PER_DEG_LAT = 111.32
VALUE_MEDIAN = 5_000.0  # currency units a year
VALUE_SIGMA = 1.2  # of log(value): 5% of customers above ~36,000, 1% above ~81,000

_ADJECTIVES = np.array(
    ["Acme", "Summit", "Pioneer", "Harbor", "Prairie", "Granite", "Redwood", "Liberty",
     "Blue Ridge", "Lakeside", "Northstar", "Evergreen", "Canyon", "Coastal", "Keystone",
     "Frontier", "Riverbend", "Golden", "Ironwood", "Maple"]
)  # fmt: skip
_NOUNS = np.array(
    ["Supply", "Logistics", "Foods", "Dental", "Auto", "Builders", "Energy", "Health",
     "Hardware", "Printing", "Farms", "Labs", "Outfitters", "Motors", "Analytics", "Bakery"]
)  # fmt: skip
_SUFFIXES = np.array(["Inc.", "LLC", "Co.", "Group", "Partners", "& Sons", "Corp."])


@dataclass(frozen=True)
class _Zips:
    code: np.ndarray
    city: np.ndarray
    state: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    weight: np.ndarray


def _zip_table() -> _Zips:
    rows = [
        r
        for r in zipcodes.list_all()
        if r["active"]
        and r["zip_code_type"] == "STANDARD"
        and r["state"] not in _EXCLUDED_STATES
        # Some entries carry "0" for an unknown centroid: that is the Gulf of Guinea.
        and float(r["lat"] or 0) != 0
        and float(r["long"] or 0) != 0
    ]
    city_key = np.array([f"{r['state']}|{r['city']}" for r in rows])
    _, inverse, counts = np.unique(city_key, return_inverse=True, return_counts=True)
    return _Zips(
        code=np.array([r["zip_code"] for r in rows]),
        city=np.array([r["city"] for r in rows]),
        state=np.array([r["state"] for r in rows]),
        lon=np.array([float(r["long"]) for r in rows]),
        lat=np.array([float(r["lat"]) for r in rows]),
        # Cities with many ZIP codes are big: sqrt keeps them busy without emptying the country.
        weight=np.sqrt(counts[inverse]).astype(float),
    )


# Segment thresholds are quantiles of the value distribution itself, so each customer's
# segment depends on its own value only: z(0.95) = 1.645, z(0.75) = 0.674.
_ENTERPRISE = VALUE_MEDIAN * np.exp(VALUE_SIGMA * 1.645)
_MID_MARKET = VALUE_MEDIAN * np.exp(VALUE_SIGMA * 0.674)
BLOCK = 10_000  # customers drawn per seeded block: the first N never depend on the total


def _segments(value: np.ndarray) -> np.ndarray:
    return np.where(
        value >= _ENTERPRISE, "Enterprise", np.where(value >= _MID_MARKET, "Mid-Market", "SMB")
    )


def _draw(zips: _Zips, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    pick = rng.choice(zips.code.size, size=count, p=zips.weight / zips.weight.sum())
    lat = zips.lat[pick] + rng.normal(0.0, JITTER_KM / _KM_PER_DEG_LAT, count)
    # A degree of longitude shrinks with cos(latitude); keep the jitter round in km.
    lon_scale = _KM_PER_DEG_LAT * np.cos(np.radians(zips.lat[pick]))
    lon = zips.lon[pick] + rng.normal(0.0, 1.0, count) * JITTER_KM / lon_scale
    value = np.round(rng.lognormal(np.log(VALUE_MEDIAN), VALUE_SIGMA, count), 2)
    words = [a[rng.integers(0, a.size, count)] for a in (_ADJECTIVES, _NOUNS, _SUFFIXES)]
    return {
        "pick": pick,
        "lon": (lon + 180.0) % 360.0 - 180.0,
        "lat": np.clip(lat, -90.0, 90.0),
        "value": value,
        "name": np.char.add(
            np.char.add(np.char.add(words[0], " "), np.char.add(words[1], " ")), words[2]
        ),
    }


def generate(count: int, *, seed: int = 42) -> CustomerBatch:
    """``count`` demo customers; the same seed gives the same customers, whatever the count."""
    zips = _zip_table()
    # Every block draws BLOCK customers and the last is cut, so a prefix never changes.
    blocks = [
        _draw(zips, np.random.default_rng([seed, b]), BLOCK) for b in range(-(-count // BLOCK))
    ]
    cols = {k: np.concatenate([blk[k] for blk in blocks])[:count] for k in blocks[0]}
    pick = cols["pick"]
    attributes = [
        {"zip": z, "city": c, "state": s, "segment": g, "demo": True}
        for z, c, s, g in zip(
            zips.code[pick].tolist(),
            zips.city[pick].tolist(),
            zips.state[pick].tolist(),
            _segments(cols["value"]).tolist(),
            strict=True,
        )
    ]
    return CustomerBatch(
        external_id=[f"demo-{i:07d}" for i in range(1, count + 1)],
        name=cols["name"].tolist(),
        lon=cols["lon"],
        lat=cols["lat"],
        value=cols["value"],
        attributes=attributes,
    )
