"""The reconciliation's decisions (``services.reconcile``), without Redis or SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from corral.core.executions import ExecutionRecord
from corral.core.jobs import JobExecutionStatus
from corral.services.reconcile import LOST_REASON, REUSED_REASON, is_lost, missing, verdict

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MS = 1_772_366_400_000


@dataclass(frozen=True)
class Job:
    id: str = "7"
    name: str = "record"
    created_ms: int = MS
    state: str | None = None
    attempts_made: int = 0
    processed_ms: int | None = None
    finished_ms: int | None = None
    failed_reason: str | None = None
    result: Any = None


def _row(enqueued_ms: int = MS, status: JobExecutionStatus = JobExecutionStatus.ACTIVE) -> Any:
    return ExecutionRecord(execution_id="7", enqueued_ms=enqueued_ms, status=status)


def test_a_job_present_and_unfinished_leaves_its_row_alone() -> None:
    assert verdict(_row(), Job(), queue="q", now=NOW) is None


def test_an_absent_job_or_a_newer_one_with_the_id_fails_the_row() -> None:
    lost = verdict(_row(), None, queue="q", now=NOW)
    assert lost is not None
    assert (lost.status, lost.error_message, lost.finished_at) == ("failed", LOST_REASON, NOW)
    assert is_lost(lost)
    reused = verdict(_row(), Job(created_ms=MS + 1), queue="q", now=NOW)
    assert reused is not None
    assert reused.error_message == REUSED_REASON


def test_a_legacy_row_is_failed_only_when_its_id_is_absent() -> None:
    assert verdict(_row(enqueued_ms=0), Job(created_ms=MS), queue="q", now=NOW) is None
    assert verdict(_row(enqueued_ms=0), None, queue="q", now=NOW) is not None


def test_a_finished_job_gives_its_row_its_outcome() -> None:
    job = Job(state="completed", processed_ms=MS + 10, finished_ms=MS + 60, result={"x": 1})
    settled = verdict(_row(), job, queue="q", now=NOW)
    assert settled is not None
    assert not is_lost(settled)
    assert (settled.status, settled.result, settled.duration_ms) == ("completed", {"x": 1}, 50)
    failed = Job(state="failed", attempts_made=3, finished_ms=MS + 9, failed_reason="boom")
    row = verdict(_row(enqueued_ms=0), failed, queue="q", now=NOW)
    assert row is not None
    assert (row.status, row.error_message, row.retry_count, row.enqueued_ms) == (
        "failed",
        "boom",
        2,
        0,
    )


def test_only_old_enough_jobs_without_a_row_get_one() -> None:
    jobs = [
        ("delayed", Job(id="1", created_ms=MS)),
        ("waiting", Job(id="2", created_ms=MS + 5_000)),  # too young
        ("active", Job(id="3", created_ms=MS, state="completed", finished_ms=MS + 1)),
        ("waiting", Job(id="4", created_ms=MS)),  # has a row
    ]
    records = missing(jobs, {("4", MS)}, queue="q", created_before_ms=MS + 1_000, now=NOW)
    assert [(r.execution_id, r.status) for r in records] == [
        ("1", "delayed"),
        ("3", "completed"),  # finished since it was listed
    ]
