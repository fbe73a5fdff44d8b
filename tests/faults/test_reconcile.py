"""D2: processes SIGKILLed between their Redis write and their SQL row, and Redis losing its
data, leave jobs without rows and rows without jobs; the schedulers' reconciliation restores
the pair within its period.

Real processes: two ``corral scheduler`` (one of them SIGKILLed while it fires a schedule every
second) and a ``corral worker`` (SIGKILLed while it runs long jobs, whose rows stay ``active``),
on a private redis-server without persistence that is then SIGKILLed and started empty (every
job gone). The kill points a crash can leave are also made directly, so they are certain to
occur: jobs added with no row (killed after the add, before the row) and ``waiting``/``active``
rows for ids Redis does not have (killed after the row, before the add). Afterwards: 0 orphans
(an unfinished row without its job, or a job without a row), every lost row failed with its
reason, and the schedulers logged what they repaired.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from corral import JobExecutionStatus, JobQueueManager
from corral.adapters.bullmq.connection import make_client
from corral.adapters.bullmq.queue import BullQueue
from corral.core.executions import ExecutionRecord
from corral.core.queries import ExecutionQuery
from corral.core.schedules import ScheduleStatus
from corral.scheduler import TaskScheduler
from corral.services.reconcile import LOST_REASON, REUSED_REASON, STATUS_OF_STATE, UNSETTLED
from corral.settings import load_settings
from tests.support.processes import RedisServer, corral_env, corral_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault

Key = tuple[str, int]  # (execution_id, enqueued_ms)
INTERVAL_S = 1.0
GRACE_S = 2.0
LONG_JOBS = 3


async def _rows(qm: JobQueueManager) -> list[ExecutionRecord]:
    rows, total = await qm._rt.execution_log().search(ExecutionQuery(limit=500))
    assert total < 500
    return rows


async def _orphans(qm: JobQueueManager, bull: BullQueue) -> list[str]:
    """Unfinished rows whose job is not in Redis (or is a newer job with the id), and jobs in
    Redis with no row: each described in a line."""
    rows = [row for row in await _rows(qm) if row.queue == bull.name]
    listed: dict[str, str] = {}
    for state in STATUS_OF_STATE:
        for job_id in await bull.job_ids(state, offset=0, limit=10_000):
            listed.setdefault(job_id, state)
    facts = await bull.job_facts(sorted(listed | {row.execution_id: "" for row in rows}))
    keys = {(row.execution_id, row.enqueued_ms) for row in rows}
    problems = [
        f"row {row.execution_id} ({row.status}) has no job"
        for row in rows
        if row.status in UNSETTLED
        and ((job := facts.get(row.execution_id)) is None or job.created_ms != row.enqueued_ms)
    ]
    for job_id, state in listed.items():
        job = facts.get(job_id)
        if job is not None and (job_id, job.created_ms) not in keys:
            problems.append(f"job {job_id} ({state}) has no row")
    return problems


async def _added(qm: JobQueueManager, name: str, data: dict[str, Any], **options: Any) -> Key:
    job_id = await qm.add_job(name, data, **options)
    return job_id, (await qm.get_job(job_id)).created_at_ms


def _ghost(execution_id: str, status: JobExecutionStatus, queue: str) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=execution_id,
        enqueued_ms=int(time.time() * 1000),
        status=status,
        queue=queue,
        handler_name="record",
        updated_at=datetime.now(UTC) - timedelta(seconds=1),
    )


@pytest.mark.timeout(240)
async def test_sigkills_and_a_redis_wipe_leave_no_orphans_after_a_period(
    tmp_path: Path, queue_name: str, database_url: str
) -> None:
    server = RedisServer(tmp_path)  # no AOF: a restart starts empty
    server.start()
    env = corral_env(
        server.url,
        queue_name,
        database_url,
        CORRAL_RECONCILE_INTERVAL_S=str(INTERVAL_S),
        CORRAL_RECONCILE_GRACE_S=str(GRACE_S),
        CORRAL_CONCURRENCY="5",
        CORRAL_REDIS_CONNECT_TIMEOUT="1",
    )
    settings = load_settings(
        queue=queue_name,
        prefix="corraltest",
        redis_url=server.url,
        database_url=database_url,
        redis_connect_timeout_s=1,
    )
    qm = JobQueueManager(settings)
    admin = TaskScheduler(settings, handlers=["tests.support.it_handlers"])
    bull = BullQueue(make_client(server.url), server.url, name=queue_name, prefix="corraltest")
    started = time.monotonic()
    try:
        await qm._rt.migrate()
        schedule = await admin.create(
            name="every second",
            handler_name="record",
            cron_expression="* * * * * *",
            timezone="UTC",
            domain="t",
            payload={"sleep": 0.2},
        )
        with ExitStack() as stack:
            run = stack.enter_context
            doomed = run(corral_process("scheduler", env, log=tmp_path / "scheduler-1.log"))
            run(corral_process("scheduler", env, log=tmp_path / "scheduler-2.log"))
            worker = run(corral_process("worker", env, log=tmp_path / "worker-1.log"))

            # A worker SIGKILLed while it runs long jobs: their rows say "active".
            long_jobs = [await _added(qm, "record", {"sleep": 60}) for _ in range(LONG_JOBS)]
            await eventually(
                lambda: _rows(qm),
                until=lambda rows: (
                    {(r.execution_id, r.enqueued_ms) for r in rows if r.status == "active"}
                    >= set(long_jobs)
                    and sum(r.trigger == "schedule" for r in rows) >= 3
                ),
                timeout_s=30,
            )
            doomed.kill()  # a scheduler SIGKILLed while it fires every second
            worker.kill()

            # After the row, before the add: rows for jobs Redis never had.
            ghosts = [
                _ghost("ghost-waiting-1", JobExecutionStatus.WAITING, queue_name),
                _ghost("ghost-waiting-2", JobExecutionStatus.WAITING, queue_name),
                _ghost("ghost-active-1", JobExecutionStatus.ACTIVE, queue_name),
            ]
            await qm._rt.execution_log().upsert_many(ghosts)
            # Redis loses its data: every job (the long ones included) is gone.
            server.kill()
            server.start()
            # After the add, before the row: jobs no process will write a row for soon. Redis
            # numbers jobs from 1 again, so they reuse the ids of the long jobs.
            unlogged = [await _added(qm, "record", {}, delay=600_000) for _ in range(3)]

            run(corral_process("worker", env, log=tmp_path / "worker-2.log"))
            run(corral_process("scheduler", env, log=tmp_path / "scheduler-3.log"))
            await eventually(
                lambda: _rows(qm),
                until=lambda rows: any(
                    r.trigger == "schedule" and r.status == "completed" and r.enqueued_ms > 0
                    for r in rows
                    if r.updated_at is not None
                    and r.updated_at > datetime.now(UTC) - timedelta(seconds=2)
                ),
                timeout_s=30,
            )
            # Stop firing, so the check below sees a settled queue.
            await admin.update(schedule.id, status=ScheduleStatus.DISABLED)
            problems = await eventually(
                lambda: _orphans(qm, bull),
                until=lambda problems: not problems,
                timeout_s=GRACE_S + 4 * INTERVAL_S + 20,
                every_s=0.5,
            )
            assert problems == []
            settled_in_s = time.monotonic() - started

            by_key = {(row.execution_id, row.enqueued_ms): row for row in await _rows(qm)}
            for key in [*long_jobs, *(ghost.key for ghost in ghosts)]:
                row = by_key[key]
                assert row.status == "failed", row
                assert row.error_message in (LOST_REASON, REUSED_REASON), row
            for key in unlogged:
                assert by_key[key].status == "delayed"
        logs = "".join(
            (tmp_path / f"scheduler-{n}.log").read_text(errors="replace") for n in (1, 2, 3)
        )
        assert "reconciled the execution log" in logs
    finally:
        await bull.close()
        await admin.close()
        await qm.graceful_shutdown(1000)
        server.kill()
    print(f"\n[reconcile] 0 orphans {settled_in_s:.1f} s after the start of the test")
