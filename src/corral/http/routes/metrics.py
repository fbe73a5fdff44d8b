"""``/metrics``: Prometheus text format, cluster-wide, read from Redis at scrape time.

Behind a bearer token, ``CORRAL_METRICS_TOKEN`` or the admin token (the app adds
``require_metrics``): the figures describe the deployment to anyone who can read them. They
are read on the monitoring Redis client, away from the connections the work uses. Labels
carry only the queue name and job states: no payloads, no URLs. When Redis does not answer the
scrape still succeeds with ``corral_redis_up 0`` and nothing else, so the outage is itself a
series to alert on. The figures and their names are described in ``corral/adapters/prometheus.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from corral.errors import BrokerUnavailable
from corral.http.deps import Manager
from corral.services.monitoring import metric_figures

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(qm: Manager) -> Response:
    rt = qm.runtime
    figures: dict[str, Any]
    try:
        figures = await metric_figures(await rt.monitor(), backlog=rt.execution_log_backlog())
    except BrokerUnavailable:
        figures = {"queue": qm.queue_name, "redis_up": False}
    body, content_type = rt.exposition(figures)
    return Response(content=body, media_type=content_type)
