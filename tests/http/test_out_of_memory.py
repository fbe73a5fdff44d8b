"""An add refused because Redis is at ``maxmemory`` answers 503 saying so, not "not reachable"."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corral.errors import BrokerOutOfMemory
from corral.http.app import create_app
from corral.settings import CorralSettings, Secret
from tests.http.conftest import AUTH, admin_settings
from tests.support.flood import add_until_refused
from tests.support.processes import RedisServer, producer_for

BLOB = "x" * 4096


@pytest.mark.timeout(60)
async def test_add_refused_for_memory_is_503_out_of_memory(
    settings: CorralSettings, tmp_path: Path, queue_name: str
) -> None:
    server = RedisServer(tmp_path, maxmemory="3mb")
    server.start()
    app = create_app(admin_settings(settings, redis_url=Secret(server.url)))
    producer = producer_for(server.url, queue_name)
    transport = httpx.ASGITransport(app=app)
    try:
        batch = [{"name": "noop", "data": {"b": BLOB}}] * 50
        full = await add_until_refused(lambda: producer.add_bulk_jobs(batch), most=100)
        assert isinstance(full, BrokerOutOfMemory)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as c:
            for _ in range(500):  # a refused batch leaves room for a few single jobs
                answer = await c.post(
                    f"/api/admin/queues/{queue_name}/jobs",
                    json={"name": "noop", "data": {"b": BLOB}},
                )
                if answer.status_code != 201:
                    break
    finally:
        await producer.graceful_shutdown(0)
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()
        server.kill()
    assert answer.status_code == 503, answer.text
    assert answer.json() == {
        "error": {"field": None, "message": "service unavailable: Redis is out of memory"}
    }
