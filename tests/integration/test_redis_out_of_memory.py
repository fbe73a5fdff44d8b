"""A Redis at ``maxmemory`` (policy noeviction) refuses adds: the producer is told so plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import BrokerOutOfMemory, BrokerUnavailable
from tests.support.flood import add_until_refused
from tests.support.processes import RedisServer, producer_for
from tests.support.waiting import eventually

PASSWORD = "oom-canary-password-3c1e"  # noqa: S105 - a test value that must never be printed


@pytest.mark.timeout(60)
async def test_adds_refused_for_memory_say_redis_is_out_of_memory(
    tmp_path: Path, queue_name: str
) -> None:
    server = RedisServer(tmp_path, password=PASSWORD, maxmemory="3mb")
    server.start()
    # No reserve: the adds go on until Redis itself refuses (as a producer without Corral's
    # reserve, e.g. a Node one, would make it).
    producer = producer_for(server.url, queue_name, redis_memory_reserve=0)
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


@pytest.mark.timeout(60)
async def test_adds_stop_at_the_reserve_so_a_worker_can_still_drain(
    tmp_path: Path, queue_name: str
) -> None:
    """With a reserve, adds are refused before Redis is full, and a worker can then take and
    finish every job (at maxmemory it could not: taking a job writes). The default 5 % is
    meant for real sizes; on this 3 MB Redis a worker's own connections need a quarter."""
    server = RedisServer(tmp_path, password=PASSWORD, maxmemory="3mb")
    server.start()
    producer = producer_for(
        server.url, queue_name, handlers="tests.support.it_handlers", redis_memory_reserve=0.25
    )
    jobs = [{"name": "noop", "data": {"blob": "x" * 4096}} for _ in range(50)]
    try:
        refused = await add_until_refused(lambda: producer.add_bulk_jobs(jobs), most=100)
        single = await add_until_refused(
            lambda: producer.add_job("noop", {"blob": "x" * 4096}), most=500
        )
        status = await producer.get_queue_status()
        queued = sum(status["counts"].values())
        await producer.start_worker(execution_log=False)
        drained = await eventually(
            producer.get_queue_status,
            until=lambda s: s["counts"]["completed"] + s["counts"]["failed"] == queued,
            timeout_s=30,
        )
    finally:
        await producer.graceful_shutdown(1000)
        server.kill()
    for refusal in (refused, single):
        assert isinstance(refusal, BrokerOutOfMemory), repr(refusal)
        message = str(refusal)
        assert message.startswith(f"Redis at 127.0.0.1:{server.port} is nearly out of memory")
        assert "adds are refused above 75%" in message
        assert PASSWORD not in message
    assert queued > 0
    assert drained["counts"]["failed"] == 0
