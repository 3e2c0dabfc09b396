"""The service's Prometheus metrics, what observes them, and their exposition for ``/metrics``.

Every label's values are bounded: routes are templates (``/layers/{layer}/coverage``), never raw
paths; methods outside the HTTP set are ``OTHER``; layers are the operator's own layers.

Each process has its own metrics. Under ``uvicorn --workers N``, set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory (cleared before each start) and every worker writes its metrics there;
``/metrics`` of any worker then shows them all (prometheus_client's multiprocess mode: counters
and histograms summed, the index gauges per worker with a ``pid`` label).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:  # app.indexes imports this module
    from app.indexes import LayerIndex

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# From the fast look-up path's tens of microseconds to a whole-layer export's minute.
_HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Bulk assignments: a few ms for a handful of customers to minutes for millions.
_ASSIGN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_HOWS = ("built", "updated", "kept")  # app.indexes.How

REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=_HTTP_BUCKETS,
)
# Gauges are per worker: each worker holds its own indexes, and one may lag another.
INDEX_VERSION = Gauge(
    "territory_index_version_seconds",
    "Version (the layer's last change, Unix time) of the layer's index this worker answers from.",
    ["layer"],
    multiprocess_mode="liveall",
)
INDEX_TERRITORIES = Gauge(
    "territory_index_territories",
    "Territories in the layer's index this worker holds.",
    ["layer"],
    multiprocess_mode="liveall",
)
INDEX_BUILD_SECONDS = Gauge(
    "territory_index_build_seconds",
    "Seconds the latest index of the layer made this way (built, updated, kept) took.",
    ["layer", "how"],
    multiprocess_mode="liveall",
)
ASSIGNMENT_SECONDS = Histogram(
    "territory_assignment_seconds",
    "Duration of bulk assignments (every customer to a layer).",
    buckets=_ASSIGN_BUCKETS,
)
EDIT_BATCH_EDITS = Histogram(
    "territory_edit_batch_edits",
    "Territory edits applied per transaction (app/edits.py): more when more edits wait.",
    buckets=(1, 2, 4, 8, 16, 32),
)
EDIT_BATCH_SECONDS = Histogram(
    "territory_edit_batch_seconds",
    "Duration of a batch of territory edits: the layer's lock held, customers re-assigned.",
    buckets=_HTTP_BUCKETS,
)
DATABASE_ERRORS = Counter(
    "territory_database_errors",
    "Requests failed by the database: unavailable (unreachable, down), data (a value it cannot "
    "store), other.",
    ["kind"],
)

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def multiprocess_dir() -> str | None:
    """The shared metrics directory of multiprocess mode, or None (per-process metrics)."""
    return os.environ.get(MULTIPROC_ENV) or None


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    method = method if method in _METHODS else "OTHER"  # clients may send any token
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)


def observe_index(entry: LayerIndex) -> None:
    """Record the index this worker now answers from for ``entry.layer``."""
    INDEX_VERSION.labels(entry.layer).set(entry.version.timestamp())
    INDEX_TERRITORIES.labels(entry.layer).set(len(entry.index))
    INDEX_BUILD_SECONDS.labels(entry.layer, entry.how).set(entry.seconds)


def forget_index(layer: str) -> None:
    """Drop a deleted layer's index series (per-process mode; multiprocess files keep them)."""
    if multiprocess_dir():
        return  # prometheus_client cannot remove series from the shared files
    # Older prometheus_clients raise KeyError for a series never set (a layer never indexed).
    with contextlib.suppress(KeyError):
        INDEX_VERSION.remove(layer)
        INDEX_TERRITORIES.remove(layer)
    for how in _HOWS:
        with contextlib.suppress(KeyError):
            INDEX_BUILD_SECONDS.remove(layer, how)


def observe_database_error(kind: str) -> None:
    """Count a request failed by the database (``kind``: unavailable, data or other)."""
    DATABASE_ERRORS.labels(kind).inc()


def render() -> bytes:
    """The metrics in Prometheus' text format: this process's, or all workers' in multiprocess
    mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


def worker_stopped() -> None:
    """In multiprocess mode, drop this worker's index gauges: it answers no more."""
    path = multiprocess_dir()
    if path is not None:
        # A worker restarted by uvicorn gets a new pid: without this its predecessor's index
        # gauges would be shown for ever (counters and histograms stay summed, as they should).
        multiprocess.mark_process_dead(os.getpid(), path)
