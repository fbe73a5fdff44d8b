"""``/health``, ``/health/ready`` and ``/metrics``: cluster figures read from Redis, an honest
readiness answer (its details for the admin only), and no secret in any of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from corral import JobQueueManager
from corral.http.app import create_app
from corral.http.routes.health import Readiness, ReadinessCache
from corral.settings import CorralSettings, Secret
from tests.http.conftest import ADMIN_TOKEN, AUTH, admin_settings
from tests.support.waiting import eventually

BAD_REDIS = "redis://:CANARY-7f3a@127.0.0.1:1/0"
BAD_DATABASE = "postgresql+asyncpg://u:CANARY-9b1c@127.0.0.1:1/x"


@pytest.fixture
async def broken(settings: CorralSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose Redis and database are both unreachable (passwords are canaries)."""
    app = create_app(
        admin_settings(
            settings,
            redis_url=Secret(BAD_REDIS),
            database_url=Secret(BAD_DATABASE),
            redis_connect_timeout_s=1.0,
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _metrics(api: httpx.AsyncClient) -> dict[tuple[str, Any], float]:
    answer = await api.get("/metrics", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return _samples(answer.text)


async def test_liveness_touches_nothing(broken: httpx.AsyncClient) -> None:
    answer = await broken.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


async def test_ready_reports_redis_database_and_workers(
    api: httpx.AsyncClient, api_app: Any, qm: JobQueueManager, queue_name: str
) -> None:
    answer = await api.get("/health/ready")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    details = body["details"]
    assert details["redis"] == "ok"
    assert details["database"] == "ok"
    assert details["queue"] == queue_name
    assert details["workersAlive"] == 0
    assert details["schedulersAlive"] is None  # no scheduler has reported a heartbeat
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as stranger:
        anonymous = await stranger.get("/health/ready")
    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "ready"})
    await qm.start_worker(execution_log=False)
    # One answer serves every probe for up to a second: wait for a fresh one.
    ready = await eventually(
        lambda: api.get("/health/ready"),
        until=lambda r: r.json()["details"]["workersAlive"] == 1,
    )
    assert ready.json()["details"]["health"] == "healthy"


async def test_ready_is_503_with_details_and_no_secret(broken: httpx.AsyncClient) -> None:
    anonymous = await broken.get("/health/ready")
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "unready"})
    answer = await broken.get("/health/ready", headers=AUTH)
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["status"] == "unready"
    assert body["details"]["redis"].startswith("unreachable: ")
    assert "127.0.0.1:1" in body["details"]["redis"]
    assert body["details"]["database"].startswith("unreachable: ")
    assert "CANARY" not in answer.text
    metrics = await broken.get("/metrics", headers=AUTH)
    assert metrics.status_code == 200
    assert _samples(metrics.text) == {("corral_redis_up", ()): 0.0}
    assert "CANARY" not in metrics.text


async def test_metrics_are_the_cluster_counts(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str, redis_url: str
) -> None:
    label = (("queue", queue_name),)
    empty = await _metrics(api)
    assert empty[("corral_jobs_completed_total", label)] == 0
    assert empty[("corral_redis_up", ())] == 1

    base = f"/api/admin/queues/{queue_name}/jobs"
    jobs = [{"name": "noop"}] * 3 + [{"name": "fail", "options": {"attempts": 1}}] * 2
    for body in jobs:
        assert (await api.post(base, json=body)).status_code == 201
    delayed = {"name": "noop", "options": {"delay": 3_600_000}}
    assert (await api.post(base, json=delayed)).status_code == 201
    await qm.start_worker(execution_log=False)

    figures = await eventually(
        lambda: _metrics(api),
        until=lambda m: (
            m[("corral_jobs_completed_total", label)] == 3
            and m[("corral_jobs_failed_total", label)] == 2
        ),
    )
    assert figures[("corral_job_retries_total", label)] == 0
    assert figures[("corral_jobs_stalled_total", label)] == 0
    assert figures[("corral_job_processing_seconds_count", label)] == 5
    assert figures[("corral_job_processing_seconds_sum", label)] >= 0
    assert figures[("corral_workers_alive", label)] == 1
    assert figures[("corral_queue_jobs", (("queue", queue_name), ("state", "delayed")))] == 1
    assert figures[("corral_queue_jobs", (("queue", queue_name), ("state", "failed")))] == 2
    assert figures[("corral_queue_paused", label)] == 0
    assert figures[("corral_scheduler_fires_total", label)] == 0
    assert ("corral_execution_log_backlog", label) not in figures  # the app has no writer
    metrics = await qm.get_metrics()
    assert (metrics.completed_jobs, metrics.failed_jobs) == (3, 2)

    # The scheduler figures come from the hash every scheduler writes when it settles a tick.
    client = redis.Redis.from_url(redis_url)
    try:
        key = f"corraltest:{queue_name}:corral:scheduler"
        client.hset(key, mapping={"fired": 4, "missed": 1, "lateness_ms_sum": 20.0})
    finally:
        client.close()
    figures = await _metrics(api)
    assert figures[("corral_scheduler_fires_total", label)] == 4
    assert figures[("corral_scheduler_missed_ticks_total", label)] == 1
    assert figures[("corral_scheduler_fire_lateness_seconds_count", label)] == 4
    assert figures[("corral_scheduler_fire_lateness_seconds_sum", label)] == pytest.approx(0.02)


async def test_metrics_take_the_metrics_or_the_admin_token(settings: CorralSettings) -> None:
    app = create_app(admin_settings(settings, metrics_token=Secret("scrape-me")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/metrics")).status_code == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = await c.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert good.status_code == 200
        assert (await c.get("/metrics", headers=AUTH)).status_code == 200
        # The scraper's token opens nothing else.
        scraper = {"Authorization": "Bearer scrape-me"}
        assert (await c.get("/api/admin/scheduled-jobs", headers=scraper)).status_code == 401
        assert (await c.get("/health/ready", headers=scraper)).status_code == 401
        assert (await c.get("/health")).status_code == 200
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


async def test_metrics_without_any_token_configured_fail_closed(settings: CorralSettings) -> None:
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
            assert (await c.get("/metrics", headers=headers)).status_code == 401
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


async def test_ready_details_for_a_dashboard_session(api_app: Any) -> None:
    """The dashboard's overview polls /health/ready with its session cookie, no bearer token."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as browser:
        assert (await browser.get("/health/ready")).json() == {"status": "ready"}
        login = await browser.post("/dashboard/login", json={"token": ADMIN_TOKEN})
        assert login.status_code == 200, login.text
        answer = await browser.get("/health/ready")
    assert answer.status_code == 200, answer.text
    assert answer.json()["details"]["redis"] == "ok"


async def test_concurrent_probes_share_one_readiness_check() -> None:
    calls = 0
    release = asyncio.Event()

    async def check() -> Readiness:
        nonlocal calls
        calls += 1
        await release.wait()
        return True, {"redis": "ok"}

    cache = ReadinessCache(ttl_s=3600)
    probes = [asyncio.ensure_future(cache.get(check)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*probes)
    assert calls == 1
    assert answers == [(True, {"redis": "ok"})] * 50
    assert await cache.get(check) == (True, {"redis": "ok"})
    assert calls == 1
    expired = ReadinessCache(ttl_s=0)  # no reuse: each probe checks again
    await expired.get(check)
    await expired.get(check)
    assert calls == 3


async def test_scheduler_clock_skew_in_ready_details_and_metrics(
    api: httpx.AsyncClient, queue_name: str, redis_url: str
) -> None:
    # What a scheduler's heartbeat writes (see adapters/bullmq/fires.py), 2.5 s ahead.
    client = redis.Redis.from_url(redis_url)
    try:
        client.zadd(f"corraltest:{queue_name}:corral:schedulers", {"s1": 1})
        client.set(f"corraltest:{queue_name}:corral:schedulers:skew:s1", "2.5", px=5000)
    finally:
        client.close()
    details = (await api.get("/health/ready")).json()["details"]
    assert details["schedulerClockSkewS"] == {"s1": 2.5}
    assert "scheduler s1 clock is 2.5 s ahead of Redis TIME (more than 1 s)" in details["problems"]
    assert details["health"] == "degraded"
    figures = await _metrics(api)
    labels = (("queue", queue_name), ("scheduler", "s1"))
    assert figures[("corral_scheduler_clock_skew_seconds", labels)] == 2.5
