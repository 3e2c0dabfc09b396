"""What ``create_app``'s lifespan sets up in the worker process beyond the app itself."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.factory import create_app
from app.settings import ApiSettings, Settings


def test_the_worker_s_young_garbage_threshold_comes_from_the_settings(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gc.get_threshold()
    monkeypatch.setenv("TERRITORY_API_GC_THRESHOLD", "12345")
    tuned = settings.model_copy(update={"api": ApiSettings()})
    try:
        with TestClient(create_app(tuned)):
            # The young generation's threshold only; the older ones are left as they were.
            assert gc.get_threshold() == (12_345, *before[1:])
    finally:
        gc.set_threshold(*before)
    assert ApiSettings().gc_threshold == 12_345
    monkeypatch.setenv("TERRITORY_API_GC_THRESHOLD", "0")
    with pytest.raises(ValueError, match="gc_threshold"):
        ApiSettings()
