"""Redis connection pools under concurrency: callers wait for a connection instead of failing,
and an exhausted pool is reported as exhausted, not as an unreachable Redis."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from corral import JobQueueManager
from corral.adapters.bullmq.connection import make_client, ping
from corral.errors import BrokerPoolExhausted, BrokerUnavailable
from corral.http.app import create_app
from corral.settings import CorralSettings
from tests.http.conftest import AUTH, admin_settings


@pytest.mark.parametrize("jobs", [100, 1000])
async def test_concurrent_add_job_on_one_manager_all_succeed(
    qm: JobQueueManager, jobs: int
) -> None:
    """More concurrent adds than the pool has connections (a web app enqueuing from many
    requests at once): every one of them is added."""
    ids = await asyncio.gather(*(qm.add_job("noop", {"n": n}) for n in range(jobs)))
    assert len(set(ids)) == jobs
    status = await qm.get_queue_status()
    assert sum(status["counts"].values()) == jobs  # default priority: "prioritized"


async def test_concurrent_adds_go_to_redis_together_on_one_connection(
    qm: JobQueueManager,
) -> None:
    """A producer's adds are batched: 200 at once take one connection (plus the one the
    memory check's INFO uses), not one each."""
    queue = await qm._rt.queue()
    pool = queue.client.connection_pool
    await asyncio.gather(*(qm.add_job("noop", {"n": n}) for n in range(200)))
    connections = len(pool._available_connections) + len(pool._in_use_connections)
    assert connections <= 2, f"{connections} connections for one burst of adds"


async def test_an_exhausted_pool_says_so(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=1, pool_timeout_s=0.2)
    try:
        held = await client.connection_pool.get_connection()
        try:
            with pytest.raises(BrokerUnavailable) as caught:
                await ping(client, redis_url, timeout_s=5.0)
        finally:
            await client.connection_pool.release(held)
        assert isinstance(caught.value, BrokerPoolExhausted)
        message = str(caught.value)
        assert message.startswith("Redis connection pool exhausted: ")
        assert "all 1 connections to 127.0.0.1:6379 busy for 0.2 s" in message
        assert "not reachable" not in message
        # Once the connection is back, the same client works again.
        assert await ping(client, redis_url, timeout_s=5.0) >= 0
    finally:
        await client.aclose()


async def test_an_exhausted_pool_is_503_busy_over_http(settings: CorralSettings) -> None:
    app = create_app(admin_settings(settings))
    queue = await app.state.manager._rt.queue()
    pool = queue.client.connection_pool
    pool.timeout = 0.2  # the real pool, made impatient so the test is quick
    held = [await pool.get_connection() for _ in range(pool.max_connections)]
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as c:
            answer = await c.post(f"/api/admin/queues/{settings.queue}/jobs", json={"name": "noop"})
            # Health checks have connections of their own: the API still reports ready.
            ready = await c.get("/health/ready")
    finally:
        for connection in held:
            await pool.release(connection)
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()
    assert answer.status_code == 503, answer.text
    message = answer.json()["error"]["message"]
    assert message == "service busy: every Redis connection stayed in use; retry shortly"
    assert ready.status_code == 200, ready.text
