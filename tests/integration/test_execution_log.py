"""Every execution gets one row in system_job_execution_logs, written by the worker."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from corral import JobExecutionStatus, JobQueueManager
from corral.core.executions import ExecutionRecord
from corral.core.queries import ExecutionQuery
from tests.support.waiting import eventually


async def _rows(qm: JobQueueManager, **filters: Any) -> list[ExecutionRecord]:
    rows, _total = await qm._rt.execution_log().search(ExecutionQuery(limit=500, **filters))
    return rows


async def test_completed_and_failed_jobs_are_logged(qm: JobQueueManager) -> None:
    ok = await qm.add_job("record", {"tag": "a"})
    bad = await qm.add_job("fail", {}, attempts=3, backoff=50)
    await qm.start_worker(execution_log=True)

    def settled(rows: list[ExecutionRecord]) -> bool:
        by_id = {r.execution_id: r for r in rows}
        return (
            ok in by_id
            and by_id[ok].status == JobExecutionStatus.COMPLETED
            and bad in by_id
            and by_id[bad].status == JobExecutionStatus.FAILED
        )

    rows = await eventually(lambda: _rows(qm), until=settled, timeout_s=15)
    by_id = {r.execution_id: r for r in rows}
    done = by_id[ok]
    assert done.result == {"started": done.result["started"], "tag": "a"}
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.duration_ms is not None
    assert done.duration_ms >= 0
    assert done.retry_count == 0
    assert done.handler_name == "record"
    assert done.job_id is None
    failed = by_id[bad]
    assert failed.retry_count == 2  # third attempt
    assert "boom on attempt 3" in (failed.error_message or "")
    assert len(rows) == 2  # one row per job, upserted through its retries


async def test_scheduled_runs_are_linked_to_their_schedule(qm: JobQueueManager) -> None:
    from corral.scheduler import TaskScheduler

    admin = TaskScheduler(qm.settings, handlers=["tests.support.it_handlers"])
    scheduler = TaskScheduler(qm.settings)
    try:
        schedule = await admin.create(
            name="linked",
            handler_name="noop",
            cron_expression="* * * * * *",
            domain="t",
            timezone="UTC",
        )
        await scheduler.initialize()
        manual = await admin.trigger_now(schedule.id)
        await qm.start_worker(execution_log=True)
        rows = await eventually(
            lambda: _rows(qm, job_id=schedule.id),
            until=lambda rs: (
                any(r.trigger == "schedule" and r.status == "completed" for r in rs)
                and any(r.execution_id == manual and r.status == "completed" for r in rs)
            ),
            timeout_s=15,
        )
    finally:
        await scheduler.close()
        await admin.close()
    assert {r.trigger for r in rows} == {"schedule", "manual"}
    # The scheduler's "waiting" row and the worker's rows land on one row per run.
    assert len({r.execution_id for r in rows}) == len(rows)
    assert all(r.job_id == schedule.id for r in rows)
    assert all(r.handler_name == "noop" for r in rows)


async def _wipe_queue(qm: JobQueueManager) -> None:
    """What an empty Redis looks like to this queue: every key gone, its id counter too."""
    client = aioredis.Redis.from_url(qm.settings.redis_url.get_secret_value())
    try:
        keys = [k async for k in client.scan_iter(match=f"corraltest:{qm.settings.queue}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _run_three(qm: JobQueueManager, handler: str, tag: str) -> list[ExecutionRecord]:
    """Run three jobs; the whole log once they are in it. Shuts ``qm`` down."""
    ids = [await qm.add_job(handler, {"tag": f"{tag}-{i}"}) for i in range(3)]
    await qm.start_worker(execution_log=True)
    try:
        return await eventually(
            lambda: _rows(qm),
            until=lambda rs: (
                sum(r.handler_name == handler and r.status == "completed" for r in rs) == len(ids)
            ),
            timeout_s=15,
        )
    finally:
        await qm.graceful_shutdown(2000)


async def test_history_survives_a_redis_that_starts_again_empty(qm: JobQueueManager) -> None:
    """BullMQ's job ids are a per-queue counter in Redis: after a flush, a failover that lost it
    or a restored backup, ids 1, 2, 3... come again. Earlier rows must stay as they were."""
    before = await _run_three(qm, "record", "before")
    await _wipe_queue(qm)
    rows = await _run_three(JobQueueManager(qm.settings), "noop", "after")
    assert len(rows) == 6, [(r.execution_id, r.handler_name) for r in rows]
    assert sorted(r.handler_name or "" for r in rows) == ["noop"] * 3 + ["record"] * 3
    earlier = [r for r in rows if r.handler_name == "record"]
    assert sorted(earlier, key=str) == sorted(before, key=str)
