"""``/health`` (liveness) and ``/health/ready`` (readiness); both open, neither shows a secret.

* ``/health`` answers 200 ``{"status": "ok"}`` while the process serves HTTP; it touches
  nothing else, so a Redis outage never gets the API restarted.
* ``/health/ready`` pings Redis and the database and reads the cluster's state (live worker
  heartbeats, scheduler heartbeats when schedulers report them, backlog, pause). It is 200 when
  Redis and the database both answer — the API can serve — and 503 otherwise. Without
  credentials the answer is the status alone (``ready`` / ``unready``): a probe needs no more,
  and the details (host:port, driver errors, worker counts) are reconnaissance. With the admin
  token (or a dashboard session) ``details`` says what is wrong either way (``problems`` lists
  what needs attention without making the API unready, e.g. a backlog with no live worker).
  Error texts come from Corral's errors, whose messages name host:port and never a password;
  anything else is shown by its type only.

The checks run at most once per :data:`READY_TTL_S` however many probes arrive, all of them
sharing the one answer (see :class:`ReadinessCache`), on Redis connections of their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from corral.errors import BrokerPoolExhausted, CorralError
from corral.http.auth import is_admin
from corral.http.deps import Manager
from corral.http.names import to_camel
from corral.http.schemas import HealthOut
from corral.manager import JobQueueManager

router = APIRouter(tags=["health"])


#: How long one readiness answer is reused: a flood of probes costs Redis and the database about
#: one round of checks per second.
READY_TTL_S = 1.0

Readiness = tuple[bool, dict[str, Any]]


class ReadinessCache:
    """The last readiness answer, reused for ``ttl_s``; while it is being computed, other probes
    wait for that one computation instead of starting their own."""

    def __init__(self, ttl_s: float = READY_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._answer: Readiness | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> Readiness | None:
        if self._answer is not None and time.monotonic() - self._at < self.ttl_s:
            return self._answer
        return None

    async def get(self, compute: Callable[[], Awaitable[Readiness]]) -> Readiness:
        answer = self._fresh()
        if answer is not None:
            return answer
        async with self._lock:
            answer = self._fresh()
            if answer is None:
                answer = await compute()
                self._answer, self._at = answer, time.monotonic()
        return answer


def _failure(exc: Exception) -> str:
    if isinstance(exc, BrokerPoolExhausted):
        return f"busy: {exc}"
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
                monitor = await qm.runtime.monitor()
                details["schedulers_alive"] = await monitor.live_schedulers()
    except Exception as exc:
        return {"redis": _failure(exc), "health": "unhealthy"}
    return details


async def _database(qm: JobQueueManager, timeout_s: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout_s):
            latency_ms = await qm.runtime.ping_database()
    except Exception as exc:
        return {"database": _failure(exc)}
    return {"database": "ok", "database_latency_ms": round(latency_ms, 2)}


@router.get("/health", response_model_exclude_none=True)
async def liveness() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/health/ready",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Redis or the database is down"}},
    description="Status only without credentials; `details` with the admin token or a "
    "dashboard session. Checked at most once a second.",
)
async def readiness(request: Request, qm: Manager) -> JSONResponse:
    show_details = await is_admin(request)

    async def check() -> Readiness:
        timeout_s = qm.settings.redis_connect_timeout_s + 5.0
        redis, database = await asyncio.gather(_redis(qm, timeout_s), _database(qm, timeout_s))
        details = {"queue": qm.queue_name, **redis, **database}
        ready = details.get("redis") == "ok" and details.get("database") == "ok"
        return ready, {to_camel(key): value for key, value in details.items()}

    cache: ReadinessCache = request.app.state.readiness
    ready, details = await cache.get(check)
    body: dict[str, Any] = {"status": "ready" if ready else "unready"}
    if show_details:
        body["details"] = details
    return JSONResponse(body, status_code=200 if ready else 503)
