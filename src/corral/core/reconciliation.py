"""The decisions of a reconciliation pass (see ``services/reconcile.py``), as pure functions:
what a stale unfinished row must become given its job in Redis, and the rows missing for jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from corral.core.executions import ExecutionRecord, schedule_of
from corral.core.jobs import JobExecutionStatus
from corral.core.queue_jobs import FINISHED_STATES, JobFacts

LOST_REASON: Final = (
    "lost: the job is no longer in Redis (Redis data lost, or the job removed before its "
    "outcome was recorded)"
)
REUSED_REASON: Final = (
    "lost: the job is no longer in Redis (its id now belongs to a newer job: the Redis data "
    "was lost and ids started again)"
)
#: Row statuses that wait for a later step. ``completed`` and ``failed`` are final; ``paused``
#: and any other status (``missed`` ticks, which never had a job) are left alone.
UNSETTLED: Final = (
    JobExecutionStatus.WAITING,
    JobExecutionStatus.ACTIVE,
    JobExecutionStatus.DELAYED,
)
#: The BullMQ states a job can be found in, and the row status each one means.
STATUS_OF_STATE: Final[Mapping[str, JobExecutionStatus]] = {
    "waiting": JobExecutionStatus.WAITING,
    "paused": JobExecutionStatus.WAITING,
    "prioritized": JobExecutionStatus.WAITING,
    "waiting-children": JobExecutionStatus.WAITING,
    "delayed": JobExecutionStatus.DELAYED,
    "active": JobExecutionStatus.ACTIVE,
    "completed": JobExecutionStatus.COMPLETED,
    "failed": JobExecutionStatus.FAILED,
}


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def record_of(
    job: JobFacts, status: JobExecutionStatus, *, queue: str, now: datetime
) -> ExecutionRecord:
    """The row Redis's view of ``job`` implies, as the worker would have written it."""
    schedule_id, trigger = schedule_of(job.id)
    finished = status in (JobExecutionStatus.COMPLETED, JobExecutionStatus.FAILED)
    started = job.processed_ms if status != JobExecutionStatus.WAITING else None
    duration = (
        job.finished_ms - job.processed_ms
        if finished and job.finished_ms is not None and job.processed_ms is not None
        else None
    )
    # A finished job's attempts are all made; an active one is in its next attempt.
    attempts = job.attempts_made if finished else job.attempts_made + 1
    return ExecutionRecord(
        execution_id=job.id,
        enqueued_ms=job.created_ms,
        status=status,
        job_id=schedule_id,
        trigger=trigger,
        handler_name=job.name,
        queue=queue,
        started_at=_dt(started),
        finished_at=_dt(job.finished_ms) if finished else None,
        duration_ms=duration,
        result=job.result if status == JobExecutionStatus.COMPLETED else None,
        error_message=job.failed_reason if status == JobExecutionStatus.FAILED else None,
        retry_count=max(attempts - 1, 0),
        updated_at=now,
    )


def verdict(
    row: ExecutionRecord, job: JobFacts | None, *, queue: str, now: datetime
) -> ExecutionRecord | None:
    """What a stale unfinished ``row`` must become given its ``job`` in Redis; None to leave it.

    A row written before creation times were recorded (``enqueued_ms`` 0) cannot tell a newer
    job with its id from its own, so only an absent job condemns it."""
    reused = job is not None and row.enqueued_ms != 0 and job.created_ms != row.enqueued_ms
    if job is None or reused:
        return ExecutionRecord(
            execution_id=row.execution_id,
            enqueued_ms=row.enqueued_ms,
            status=JobExecutionStatus.FAILED,
            finished_at=now,
            error_message=REUSED_REASON if reused else LOST_REASON,
            retry_count=row.retry_count,
            updated_at=now,
        )
    if job.state in FINISHED_STATES:
        settled = record_of(job, STATUS_OF_STATE[job.state], queue=queue, now=now)
        return replace(settled, enqueued_ms=row.enqueued_ms)  # a legacy row keeps its key
    return None


def is_lost(record: ExecutionRecord) -> bool:
    """Whether ``record`` is a :func:`verdict` that the row's job is gone."""
    return record.error_message in (LOST_REASON, REUSED_REASON) and record.handler_name is None


def missing(
    jobs: Sequence[tuple[str, JobFacts]],
    present: set[tuple[str, int]],
    *,
    queue: str,
    created_before_ms: int,
    now: datetime,
) -> list[ExecutionRecord]:
    """Rows for the ``(listed state, job)`` pairs old enough to have one and without one."""
    records: list[ExecutionRecord] = []
    for listed, job in jobs:
        if job.created_ms > created_before_ms or (job.id, job.created_ms) in present:
            continue
        state = job.state if job.state in FINISHED_STATES else listed
        records.append(record_of(job, STATUS_OF_STATE[state], queue=queue, now=now))
    return records
