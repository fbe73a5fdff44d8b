"""The HTTP app: ``create_app()`` for embedding, ``corral api`` to serve it.

The app holds one JobQueueManager and one TaskScheduler (used to manage schedules; firing is
the ``corral scheduler`` processes' job) and closes them on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from corral.errors import ConfigurationError
from corral.http import errors
from corral.http.auth import require_admin, require_metrics
from corral.http.dashboard import routes as dashboard
from corral.http.hosts import AllowedHosts
from corral.http.middleware import BodyLimit, SecurityHeaders
from corral.http.routes import cron, executions, health, jobs, metrics, queues, scheduled_jobs
from corral.manager import JobQueueManager
from corral.scheduler import TaskScheduler
from corral.settings import CorralSettings, load_settings, token_problem

logger = logging.getLogger(__name__)


def create_app(
    settings: CorralSettings | None = None,
    *,
    manager: JobQueueManager | None = None,
    scheduler: TaskScheduler | None = None,
) -> FastAPI:
    """Build the app. In production (CORRAL_ENV=production) a missing CORRAL_ADMIN_TOKEN is a
    start-up error; elsewhere the admin API answers 401 to everything until one is set. Outside
    development a token under 32 characters or padded with spaces is a start-up error."""
    settings = settings or load_settings()
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if settings.environment == "production" and not token:
        raise ConfigurationError("CORRAL_ADMIN_TOKEN: required when CORRAL_ENV=production")
    problem = token_problem(settings)  # again: settings built in code skip their validators
    if problem is not None:
        raise ConfigurationError(problem)
    if not token:
        logger.warning(
            "CORRAL_ADMIN_TOKEN is not set: the admin API and dashboard refuse every request "
            "until it is",
            extra={"event": "api.no_admin_token"},
        )
    qm = manager or JobQueueManager(settings)
    ts = scheduler or TaskScheduler(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await qm.graceful_shutdown(0)
            await ts.close()

    app = FastAPI(
        title="Corral admin API",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the admin token
    )
    app.state.settings = settings
    app.state.manager = qm
    app.state.scheduler = ts
    app.state.admin_token = token
    app.state.metrics_token = (
        settings.metrics_token.get_secret_value() if settings.metrics_token else None
    )
    app.state.readiness = health.ReadinessCache()
    errors.install(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.allowed_host_list:
        app.add_middleware(AllowedHosts, hosts=settings.allowed_host_list)  # outermost
    admin = [Depends(require_admin)]
    for routes in (scheduled_jobs, cron, queues, jobs, executions):
        app.include_router(routes.router, prefix="/api/admin", dependencies=admin)
    app.include_router(health.router)
    app.include_router(metrics.router, dependencies=[Depends(require_metrics)])
    dashboard.install(app)  # GET / and /dashboard/...: the web dashboard

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=admin)
    async def openapi_document() -> dict[str, Any]:
        return app.openapi()

    return app
