"""A Redis at ``maxmemory`` (policy noeviction) refuses adds: the producer is told so plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import BrokerOutOfMemory, BrokerUnavailable
from tests.support.flood import add_until_refused
from tests.support.processes import RedisServer, producer_for

PASSWORD = "oom-canary-password-3c1e"  # noqa: S105 - a test value that must never be printed


@pytest.mark.timeout(60)
async def test_adds_refused_for_memory_say_redis_is_out_of_memory(
    tmp_path: Path, queue_name: str
) -> None:
    server = RedisServer(tmp_path, password=PASSWORD, maxmemory="3mb")
    server.start()
    producer = producer_for(server.url, queue_name)
    jobs = [{"name": "noop", "data": {"blob": "x" * 4096}} for _ in range(50)]
    try:
        refused = await add_until_refused(lambda: producer.add_bulk_jobs(jobs), most=100)
        # a refused batch leaves room for a few single jobs
        single = await add_until_refused(
            lambda: producer.add_job("noop", {"blob": "x" * 4096}), most=500
        )
    finally:
        await producer.graceful_shutdown(1000)
        server.kill()
    assert isinstance(refused, BrokerOutOfMemory), repr(refused)
    assert isinstance(single, BrokerOutOfMemory), repr(single)
    message = str(refused)
    assert message.startswith(f"Redis at 127.0.0.1:{server.port} is out of memory")
    assert "raise maxmemory" in message
    assert PASSWORD not in message
    assert isinstance(refused, BrokerUnavailable)  # callers that back off keep working
