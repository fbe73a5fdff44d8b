"""Job ids that name one of the queue's own Redis keys are refused on the way in and never
looked up: the queue's lists, sets and meta hash stay as they were and the queue keeps working.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from corral import JobQueueManager
from corral.errors import InvalidJobOptions, JobNotFound
from tests.support.waiting import eventually

#: A sample of the reserved names (the unit tests go through every one) and ids that can never
#: be valid, such as ones with a ':' that would address another key.
KEY_NAMES = ["wait", "paused", "meta", "id", "events", "stalled-check", "prioritized", "corral"]
NEVER_IDS = ["a:b", "x:events", "meta:", "x" * 129, "\u0661"]


async def _snapshot(redis_url: str, queue_name: str) -> dict[str, Any]:
    """Every key of the queue with its type and content (streams: length only)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        found: dict[str, Any] = {}
        async for key in client.scan_iter(match=f"corraltest:{queue_name}:*", count=1000):
            kind = await client.type(key)
            if kind == "hash":
                found[key] = (kind, await client.hgetall(key))  # type: ignore[misc]
            elif kind == "list":
                found[key] = (kind, await client.lrange(key, 0, -1))  # type: ignore[misc]
            elif kind == "zset":
                found[key] = (kind, await client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                found[key] = (kind, await client.xlen(key))
            else:
                found[key] = (kind, await client.get(key))
        return found
    finally:
        await client.aclose()


async def test_reserved_ids_change_nothing_and_the_queue_keeps_working(
    qm: JobQueueManager, redis_url: str, queue_name: str
) -> None:
    first = await qm.add_job("noop", {"n": 1})
    await qm.pause()
    before = await _snapshot(redis_url, queue_name)
    assert f"corraltest:{queue_name}:meta" in before

    for name in KEY_NAMES:
        with pytest.raises(InvalidJobOptions) as error:
            await qm.add_job("noop", {}, job_id=name)
        assert error.value.path == "options.job_id"
        with pytest.raises(InvalidJobOptions) as error:
            await qm.add_bulk_jobs(
                [{"name": "noop"}, {"name": "noop", "options": {"job_id": name}}]
            )
        assert error.value.path == "jobs[1].options.job_id"

    for job_id in KEY_NAMES + NEVER_IDS:
        with pytest.raises(JobNotFound):
            await qm.get_job(job_id)
        with pytest.raises(JobNotFound):
            await qm.get_job_logs(job_id)
        with pytest.raises(JobNotFound):
            await qm.retry_job(job_id)
        with pytest.raises(JobNotFound):
            await qm.remove_job(job_id)

    assert await _snapshot(redis_url, queue_name) == before
    assert (await qm.get_queue_status())["paused"] is True

    await qm.resume()
    await qm.start_worker(execution_log=False)
    done = await eventually(lambda: qm.get_job(first), until=lambda j: j.state == "completed")
    assert done.data == {"n": 1}
