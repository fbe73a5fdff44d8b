"""The worker's completion path (``hotpath.Completion`` through ``batching``) against a real
Redis: results stored as BullMQ stores them, retention honoured, the next job fetched with the
completion, when many jobs finish in one burst."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from corral import Job, JobQueueManager, job_handler
from corral.core.handlers import HandlerRegistry
from tests.support.waiting import eventually

JOBS = 60


def _all_finished(status: dict[str, Any]) -> bool:
    counts = status["counts"]
    return not any(counts[state] for state in ("waiting", "prioritized", "active", "delayed"))


async def test_a_burst_of_completions_keeps_results_and_retention(
    qm: JobQueueManager, redis_url: str, queue_name: str
) -> None:
    @job_handler("square")
    async def square(job: Job) -> dict[str, Any]:
        return {"n": job.data["n"], "square": job.data["n"] ** 2, "text": "é✓"}

    registry = HandlerRegistry()
    registry.register(square)
    kept = await qm.add_bulk_jobs(
        [
            {"name": "square", "data": {"n": n}, "options": {"remove_on_complete": False}}
            for n in range(JOBS)
        ]
    )
    await qm.start_worker(registry, concurrency=10)
    status = await eventually(qm.get_queue_status, until=_all_finished)
    assert status["counts"]["failed"] == 0
    assert status["counts"]["completed"] == JOBS
    for n, job_id in enumerate(kept):
        info = await qm.get_job(job_id)
        assert info.state == "completed"
        assert info.result == {"n": n, "square": n * n, "text": "é✓"}
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key = f"{qm.settings.prefix}:{queue_name}"
        raw = await client.hget(f"{key}:{kept[3]}", "returnvalue")
        assert json.loads(raw or "null") == {"n": 3, "square": 9, "text": "é✓"}
        # BullMQ's "keep n" trims the whole completed set each time such a job completes
        trimmed = await qm.add_bulk_jobs(
            [
                {"name": "square", "data": {"n": n}, "options": {"remove_on_complete": 5}}
                for n in range(JOBS)
            ]
        )
        await eventually(qm.get_queue_status, until=_all_finished)
        completed = await client.zrange(f"{key}:completed", 0, -1)
        assert len(completed) == 5
        assert set(completed) <= set(trimmed)
    finally:
        await client.aclose()
