"""``/metrics``: the service's metrics for Prometheus to scrape."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app import metrics
from app.auth import ADMIN
from app.routes.params import PROBLEMS

# Admin keys only: the series name every layer (index versions and sizes). Prometheus sends
# the key with `authorization: {credentials: <key>}` in its scrape config.
router = APIRouter(tags=["health"], dependencies=[ADMIN], responses=PROBLEMS)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics_text() -> Response:
    """Requests and latency by route, index versions and sizes, assignment durations and
    database errors, in Prometheus' text format (every worker's in multiprocess mode)."""
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
