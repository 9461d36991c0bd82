"""/metrics: the ingest workers' counters in the Prometheus text format (any role's token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.deps import Reader
from ingest.metrics import IngestCollector

router = APIRouter(tags=["metrics"])


def _registry(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        # One registry per app (not the global one): each app reads its own database.
        registry = CollectorRegistry()
        registry.register(IngestCollector(request.app.state.pool))
        request.app.state.metrics_registry = registry
    return registry


@router.get("/metrics", response_class=Response)
def metrics(request: Request, principal: Reader) -> Response:
    """Messages received, rows written, dead letters, batch latency, backlog per worker."""
    return Response(generate_latest(_registry(request)), media_type=CONTENT_TYPE_LATEST)
