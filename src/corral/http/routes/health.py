"""``/health`` (liveness) and ``/health/ready`` (readiness); both open, neither shows a secret.

* ``/health`` answers 200 ``{"status": "ok"}`` while the process serves HTTP; it touches
  nothing else, so a Redis outage never gets the API restarted.
* ``/health/ready`` pings Redis and the database and reads the cluster's state (live worker
  heartbeats, scheduler heartbeats when schedulers report them, backlog, pause). It is 200 when
  Redis and the database both answer — the API can serve — and 503 otherwise; ``details`` says
  what is wrong either way (``problems`` lists what needs attention without making the API
  unready, e.g. a backlog with no live worker). Error texts come from Corral's errors, whose
  messages name host:port and never a password; anything else is shown by its type only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from corral.errors import CorralError
from corral.http.deps import manager as get_manager
from corral.http.names import to_camel
from corral.http.schemas import HealthOut
from corral.manager import JobQueueManager

router = APIRouter(tags=["health"])
Manager = Annotated[JobQueueManager, Depends(get_manager)]


def _failure(exc: Exception) -> str:
    if isinstance(exc, CorralError):
        return f"unreachable: {exc}"
    if isinstance(exc, TimeoutError):
        return "unreachable: no answer in time"
    return f"error: {type(exc).__name__}"


async def _redis(qm: JobQueueManager, timeout_s: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout_s):
            report = await qm.health_check()
            details = dict(report.details)
            details["health"] = report.status
            if details.get("redis") == "ok":
                details["schedulers_alive"] = await qm.live_schedulers()
    except Exception as exc:
        return {"redis": _failure(exc), "health": "unhealthy"}
    return details


async def _database(qm: JobQueueManager, timeout_s: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout_s):
            latency_ms = await qm.ping_database()
    except Exception as exc:
        return {"database": _failure(exc)}
    return {"database": "ok", "database_latency_ms": round(latency_ms, 2)}


@router.get("/health", response_model=HealthOut, response_model_exclude_none=True)
async def liveness() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/health/ready",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Redis or the database is down"}},
)
async def readiness(qm: Manager) -> JSONResponse:
    timeout_s = qm.settings.redis_connect_timeout_s + 5.0
    redis, database = await asyncio.gather(_redis(qm, timeout_s), _database(qm, timeout_s))
    details = {"queue": qm.queue_name, **redis, **database}
    ready = details.get("redis") == "ok" and details.get("database") == "ok"
    body = HealthOut(
        status="ready" if ready else "unready",
        details={to_camel(key): value for key, value in details.items()},
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if ready else 503)
