"""Reconciling the execution log with Redis (``services.reconcile``) on real Redis and on
SQLite AND PostgreSQL (the parametrised ``sql_engine``).

The states a process killed between its two writes leaves are made directly, without hooks in
the code: a job added to Redis with no row is "killed after the add, before the row"; a row
inserted for an id Redis does not have is "killed after the row, before the add" (or Redis lost
its data); a row left ``active`` while Redis finished the job is a worker killed before its
buffered row was written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corral import JobExecutionStatus, JobQueueManager
from corral.adapters.bullmq.connection import make_client
from corral.adapters.bullmq.queue import BullQueue
from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.core.executions import ExecutionRecord
from corral.core.queries import ExecutionQuery
from corral.scheduler import TaskScheduler
from corral.services.reconcile import LOST_REASON, REUSED_REASON, Reconciler
from corral.settings import CorralSettings
from tests.integration import sql_conftest
from tests.support.waiting import eventually

execution_log = sql_conftest.execution_log
migrated = sql_conftest.migrated
sql_engine = sql_conftest.sql_engine

WAITING = JobExecutionStatus.WAITING
ACTIVE = JobExecutionStatus.ACTIVE
DELAYED = JobExecutionStatus.DELAYED
COMPLETED = JobExecutionStatus.COMPLETED
FAILED = JobExecutionStatus.FAILED
PAUSED = JobExecutionStatus.PAUSED


@pytest.fixture
async def bull(redis_url: str, queue_name: str) -> AsyncIterator[BullQueue]:
    queue = BullQueue(make_client(redis_url), redis_url, name=queue_name, prefix="corraltest")
    yield queue
    await queue.close()


def _reconciler(
    bull: BullQueue, log: SqlExecutionLog, *, grace_s: float = 0.0, page: int = 200
) -> Reconciler:
    return Reconciler(bull, log, queue=bull.name, grace_s=grace_s, page=page)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row(
    execution_id: str,
    status: JobExecutionStatus,
    *,
    queue: str,
    enqueued_ms: int | None = None,
    age_s: float = 5.0,
    **fields: Any,
) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=execution_id,
        enqueued_ms=_now_ms() if enqueued_ms is None else enqueued_ms,
        status=status,
        queue=queue,
        handler_name="record",
        updated_at=datetime.now(UTC) - timedelta(seconds=age_s),
        **fields,
    )


async def _rows(log: SqlExecutionLog) -> dict[str, ExecutionRecord]:
    rows, _ = await log.search(ExecutionQuery(limit=500))
    return {row.execution_id: row for row in rows}


async def _rows_of(log: SqlExecutionLog, execution_id: str) -> list[ExecutionRecord]:
    rows, _ = await log.search(ExecutionQuery(limit=500))
    return sorted(
        (row for row in rows if row.execution_id == execution_id), key=lambda r: r.enqueued_ms
    )


async def _state(qm: JobQueueManager, job_id: str) -> str:
    return str((await qm.get_job(job_id)).state)


# -- a row without its job ---------------------------------------------------------------------
async def test_rows_whose_job_is_gone_end_failed_with_the_reason(
    bull: BullQueue, qm: JobQueueManager, execution_log: SqlExecutionLog
) -> None:
    queue = bull.name
    present = await qm.add_job("record", {}, delay=60_000)
    present_ms = (await qm.get_job(present)).created_at_ms
    reused = await qm.add_job("record", {}, delay=60_000, job_id="reused-1")
    reused_ms = (await qm.get_job(reused)).created_at_ms
    await execution_log.upsert_many(
        [
            # killed after the row, before the add (or Redis lost the job)
            _row("ghost-waiting", WAITING, queue=queue),
            _row("ghost-active", ACTIVE, queue=queue, started_at=datetime.now(UTC)),
            _row("ghost-delayed", DELAYED, queue=queue, retry_count=1),
            # the id now belongs to a newer job (Redis started again)
            _row("reused-1", ACTIVE, queue=queue, enqueued_ms=reused_ms - 60_000),
            # left alone: the job is there, however old its row
            _row(present, WAITING, queue=queue, enqueued_ms=present_ms, age_s=3600),
            # left alone: final, paused, or another queue's row
            _row("ghost-completed", COMPLETED, queue=queue),
            _row("ghost-failed", FAILED, queue=queue, error_message="boom"),
            _row("ghost-paused", PAUSED, queue=queue),
            _row("ghost-elsewhere", WAITING, queue=f"{queue}-other"),
        ]
    )

    report = await _reconciler(bull, execution_log).run_once()

    rows = await _rows(execution_log)
    for lost in ("ghost-waiting", "ghost-active", "ghost-delayed"):
        assert rows[lost].status == FAILED, rows[lost]
        assert rows[lost].error_message == LOST_REASON
        assert rows[lost].finished_at is not None
        assert rows[lost].handler_name == "record"  # the row keeps what it knew
    assert rows["ghost-delayed"].retry_count == 1
    assert rows[present].status == WAITING
    assert rows["ghost-completed"].status == COMPLETED
    assert rows["ghost-failed"].error_message == "boom"
    assert rows["ghost-paused"].status == PAUSED
    assert rows["ghost-elsewhere"].status == WAITING
    # The old execution of the reused id failed; the newer job got a row of its own.
    old, new = await _rows_of(execution_log, "reused-1")
    assert (old.enqueued_ms, old.status, old.error_message) == (
        reused_ms - 60_000,
        FAILED,
        REUSED_REASON,
    )
    assert (new.enqueued_ms, new.status) == (reused_ms, DELAYED)
    assert (report.lost, report.settled, report.added) == (4, 0, 1)


async def test_a_stale_row_of_a_finished_job_takes_its_outcome(
    bull: BullQueue, qm: JobQueueManager, execution_log: SqlExecutionLog
) -> None:
    """A worker killed after finishing the job in Redis, before its buffered row was written."""
    ok = await qm.add_job("record", {"tag": "t"})
    bad = await qm.add_job("fail", {}, attempts=1)
    await qm.start_worker(execution_log=False)
    for job_id, final in ((ok, "completed"), (bad, "failed")):
        await eventually(lambda j=job_id: _state(qm, j), until=lambda s, f=final: s == f)
    infos = {job_id: await qm.get_job(job_id) for job_id in (ok, bad)}
    await execution_log.upsert_many(
        [
            _row(j, ACTIVE, queue=bull.name, enqueued_ms=info.created_at_ms)
            for j, info in infos.items()
        ]
    )

    report = await _reconciler(bull, execution_log).run_once()

    rows = await _rows(execution_log)
    assert rows[ok].status == COMPLETED
    assert rows[ok].result == {"started": rows[ok].result["started"], "tag": "t"}
    assert rows[ok].finished_at is not None
    assert rows[ok].error_message is None
    assert rows[bad].status == FAILED
    assert "boom on attempt 1" in (rows[bad].error_message or "")
    assert (report.lost, report.settled, report.added) == (0, 2, 0)


async def test_a_row_younger_than_the_grace_period_is_left_alone(
    bull: BullQueue, execution_log: SqlExecutionLog
) -> None:
    await execution_log.upsert_many([_row("ghost-young", WAITING, queue=bull.name, age_s=0)])
    report = await _reconciler(bull, execution_log, grace_s=60).run_once()
    assert (await _rows(execution_log))["ghost-young"].status == WAITING
    assert report.rows_checked == 0


# -- a job without its row ---------------------------------------------------------------------
async def test_jobs_without_a_row_get_one_with_their_state(
    bull: BullQueue, qm: JobQueueManager, execution_log: SqlExecutionLog
) -> None:
    """Killed after the add, before the row: every state a job can be found in."""
    ok = await qm.add_job("record", {"tag": "done"})
    bad = await qm.add_job("fail", {}, attempts=1)
    running = await qm.add_job("record", {"sleep": 30})
    await qm.start_worker(execution_log=False)
    await eventually(lambda: _state(qm, ok), until=lambda s: s == "completed")
    await eventually(lambda: _state(qm, bad), until=lambda s: s == "failed")
    await eventually(lambda: _state(qm, running), until=lambda s: s == "active")
    later = await qm.add_job("record", {}, delay=60_000)
    sched = "sched-0b5e7a4c-8f7e-4a57-9d3c-2f1e0a9b8c7d-1767225600"
    scheduled = await qm.add_job("noop", {}, delay=60_000, job_id=sched)
    logged = await qm.add_job("record", {}, delay=60_000)
    logged_ms = (await qm.get_job(logged)).created_at_ms
    await execution_log.upsert_many([_row(logged, DELAYED, queue=bull.name, enqueued_ms=logged_ms)])
    await qm.pause()
    waiting = await qm.add_job("record", {})

    report = await _reconciler(bull, execution_log).run_once()

    rows = await _rows(execution_log)
    assert rows[ok].status == COMPLETED
    assert rows[ok].result == {"started": rows[ok].result["started"], "tag": "done"}
    assert rows[ok].started_at is not None
    assert rows[ok].finished_at is not None
    assert rows[ok].duration_ms is not None
    assert rows[bad].status == FAILED
    assert "boom on attempt 1" in (rows[bad].error_message or "")
    assert rows[running].status == ACTIVE
    assert rows[running].started_at is not None
    assert rows[later].status == DELAYED
    assert rows[waiting].status == WAITING
    assert rows[scheduled].trigger == "schedule"
    assert str(rows[scheduled].job_id) == "0b5e7a4c-8f7e-4a57-9d3c-2f1e0a9b8c7d"
    for job_id in (ok, bad, running, later, waiting, scheduled):
        info = await qm.get_job(job_id)
        assert rows[job_id].enqueued_ms == info.created_at_ms
        assert rows[job_id].queue == bull.name
        assert rows[job_id].handler_name == info.name
    assert len(rows) == 7  # the six, plus the one that already had a row
    assert report.added == 6
    # Idempotent: a second pass finds nothing to do.
    again = await _reconciler(bull, execution_log).run_once()
    assert (again.added, again.lost, again.settled) == (0, 0, 0)


async def test_a_job_younger_than_the_grace_period_gets_no_row_yet(
    bull: BullQueue, qm: JobQueueManager, execution_log: SqlExecutionLog
) -> None:
    await qm.add_job("record", {}, delay=60_000)
    report = await _reconciler(bull, execution_log, grace_s=60).run_once()
    assert report.added == 0
    assert await _rows(execution_log) == {}


async def test_a_pass_does_a_page_of_work_and_the_next_ones_the_rest(
    bull: BullQueue, qm: JobQueueManager, execution_log: SqlExecutionLog
) -> None:
    await execution_log.upsert_many(
        [_row(f"ghost-{n}", WAITING, queue=bull.name) for n in range(5)]
    )
    jobs = [await qm.add_job("record", {}, delay=60_000) for _ in range(7)]
    reconciler = _reconciler(bull, execution_log, page=2)
    reports = [await reconciler.run_once() for _ in range(4)]
    assert [r.lost for r in reports] == [2, 2, 1, 0]
    # Each pass reads the newest page and the next page of a cursor through the rest.
    assert [r.added for r in reports] == [4, 2, 1, 0]
    rows = await _rows(execution_log)
    assert all(rows[f"ghost-{n}"].status == FAILED for n in range(5))
    assert all(rows[job_id].status == DELAYED for job_id in jobs)


# -- races with the writers ---------------------------------------------------------------------
async def test_a_late_completed_write_after_the_verdict_wins(
    bull: BullQueue, execution_log: SqlExecutionLog
) -> None:
    """A worker's buffered ``completed`` (held through a database outage) lands after the pass
    failed the row because the job had already been removed from Redis."""
    row = _row("late-1", ACTIVE, queue=bull.name, started_at=datetime.now(UTC))
    await execution_log.upsert_many([row])
    assert (await _reconciler(bull, execution_log).run_once()).lost == 1
    assert (await _rows(execution_log))["late-1"].status == FAILED

    finished = datetime.now(UTC)
    await execution_log.upsert_many(
        [
            ExecutionRecord(
                execution_id="late-1",
                enqueued_ms=row.enqueued_ms,
                status=COMPLETED,
                finished_at=finished,
                result={"ok": True},
                updated_at=finished,
            )
        ]
    )
    final = (await _rows(execution_log))["late-1"]
    assert (final.status, final.result, final.finished_at) == (COMPLETED, {"ok": True}, finished)
    assert final.error_message is None  # not "lost: ..." on a completed row
    # ...and a still later "waiting" (the scheduler's, held longer) moves nothing back.
    await execution_log.upsert_many(
        [ExecutionRecord(execution_id="late-1", enqueued_ms=row.enqueued_ms, status=WAITING)]
    )
    assert (await _rows(execution_log))["late-1"].status == COMPLETED


async def test_a_verdict_never_overwrites_a_write_made_after_the_row_was_read(
    bull: BullQueue, execution_log: SqlExecutionLog
) -> None:
    """The pass read an ``active`` row; the worker's ``completed`` commits before the verdict."""
    row = _row("race-1", ACTIVE, queue=bull.name)
    await execution_log.upsert_many([row])
    [(_, seen)] = await execution_log.unsettled(
        bull.name,
        statuses=["active"],
        updated_before=datetime.now(UTC),
        after_row=0,
        limit=10,
    )
    assert seen.updated_at is not None
    done = ExecutionRecord(
        execution_id="race-1",
        enqueued_ms=row.enqueued_ms,
        status=COMPLETED,
        updated_at=datetime.now(UTC),
    )
    await execution_log.upsert_many([done])
    lost = ExecutionRecord(
        execution_id="race-1",
        enqueued_ms=row.enqueued_ms,
        status=FAILED,
        error_message=LOST_REASON,
        updated_at=datetime.now(UTC),
    )
    applied = await execution_log.settle(
        lost, seen_status="active", seen_updated_at=seen.updated_at
    )
    assert applied is False
    assert (await _rows(execution_log))["race-1"].status == COMPLETED
    # The same verdict on the row as it is now is applied (the comparison is exact on both
    # databases, not defeated by how each stores times).
    [(_, again)] = await execution_log.unsettled(
        bull.name,
        statuses=["completed"],
        updated_before=datetime.now(UTC),
        after_row=0,
        limit=10,
    )
    assert again.updated_at is not None
    assert await execution_log.settle(
        lost, seen_status="completed", seen_updated_at=again.updated_at
    )


async def test_a_row_added_for_a_job_never_replaces_the_workers_row(
    bull: BullQueue, execution_log: SqlExecutionLog
) -> None:
    """The worker's row commits between the pass finding it missing and inserting it."""
    ms = _now_ms()
    await execution_log.upsert_many([_row("both-1", COMPLETED, queue=bull.name, enqueued_ms=ms)])
    inserted = await execution_log.insert_missing(
        [_row("both-1", ACTIVE, queue=bull.name, enqueued_ms=ms), _row("new-1", ACTIVE, queue="q")]
    )
    assert inserted == 1
    rows = await _rows(execution_log)
    assert rows["both-1"].status == COMPLETED
    assert rows["new-1"].status == ACTIVE


# -- in the scheduler ---------------------------------------------------------------------------
async def test_only_one_replica_claims_a_period(bull: BullQueue) -> None:
    claims = await asyncio.gather(*(bull.claim("reconcile", f"s{n}", 5000) for n in range(5)))
    assert sorted(claims) == [False, False, False, False, True]


async def test_a_running_scheduler_reconciles_every_interval(
    settings: CorralSettings, qm: JobQueueManager
) -> None:
    fast = settings.replace(**{"reconcile_interval_s": 0.2, "reconcile_grace_s": 0.0})
    log = qm._rt.execution_log()
    orphan = _row("ghost-1", WAITING, queue=qm.queue_name)
    await log.upsert_many([orphan])
    job = await qm.add_job("record", {}, delay=60_000)
    async with TaskScheduler(fast) as scheduler:
        await scheduler.initialize()
        rows = await eventually(
            lambda: _rows(log),
            until=lambda rows: rows["ghost-1"].status == FAILED and job in rows,
        )
        assert scheduler.reconciler is not None
        assert scheduler.reconciler.stats.passes >= 1
    assert rows["ghost-1"].error_message == LOST_REASON
    assert rows[job].status == DELAYED
