"""Demo customers: deterministic, plausible, and placed where people are."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import demo
from app.repositories import customers


def test_same_seed_same_customers_and_prefixes_are_stable() -> None:
    small = demo.generate(12_345, seed=7)
    again = demo.generate(12_345, seed=7)
    larger = demo.generate(25_000, seed=7)
    assert small.external_id == again.external_id
    assert np.array_equal(small.lon, again.lon) and np.array_equal(small.value, again.value)
    # The first N customers never depend on how many were asked for.
    assert np.array_equal(small.lat, larger.lat[:12_345])
    assert small.name == larger.name[:12_345]
    assert small.attributes == larger.attributes[:12_345]
    other = demo.generate(12_345, seed=8)
    assert not np.array_equal(small.lon, other.lon)


def test_values_are_skewed_like_revenue() -> None:
    batch = demo.generate(50_000, seed=1)
    median = float(np.median(batch.value))
    mean = float(batch.value.mean())
    # log-normal(median 5,000, sigma 1.2): mean = median * exp(1.2² / 2) ≈ 2.05 x median
    assert median == pytest.approx(5_000, rel=0.05)
    assert mean / median == pytest.approx(2.05, rel=0.1)
    top = np.sort(batch.value)[-len(batch.value) // 20 :]
    assert top.sum() / batch.value.sum() > 0.25  # the top 5% hold over a quarter of the value
    segments = [a["segment"] for a in batch.attributes]
    assert segments.count("Enterprise") / len(segments) == pytest.approx(0.05, abs=0.01)
    assert (batch.value > 0).all()


def test_a_million_customers_can_be_generated() -> None:
    batch = demo.generate(1_000_000, seed=42)
    assert len(batch) == 1_000_000
    assert len(set(batch.external_id)) == 1_000_000
    assert np.isfinite(batch.lon).all() and np.isfinite(batch.lat).all()


def test_customers_land_in_us_states(session: Session, clean: None) -> None:
    batch = demo.generate(2_000, seed=3)
    customers.upsert(session, batch=batch)
    inside, by_state = session.execute(
        text(
            """
            SELECT count(*) FILTER (WHERE s.fips IS NOT NULL),
                   count(*) FILTER (WHERE s.state_code = c.attributes->>'state')
            FROM customers c LEFT JOIN boundaries s
              ON s.level = 'state' AND ST_Covers(s.geom, c.geom)
            """
        )
    ).one()
    session.rollback()
    # A 2 km jitter pushes a few coastal customers into the sea or across a state line.
    assert inside / 2_000 > 0.97
    assert by_state / 2_000 > 0.95
