"""Execution-log rows (``core.executions``): the tuple form the worker's log writer buffers must
say exactly what the record says, and fold exactly as ``ExecutionRecord.over``."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.core.executions import ExecutionRecord, as_row, fold, schedule_of
from corral.core.jobs import JobExecutionStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = uuid.UUID("0b7e4f5c-8d1e-4a53-9c55-3f0c2b1d9e77")


def _records() -> st.SearchStrategy[ExecutionRecord]:
    maybe = st.none
    return st.builds(
        ExecutionRecord,
        execution_id=st.just("job-1"),
        enqueued_ms=st.just(1000),
        status=st.sampled_from(list(JobExecutionStatus)),
        job_id=maybe() | st.just(SCHEDULE),
        handler_name=maybe() | st.sampled_from(["report", "sync"]),
        queue=maybe() | st.just("corral"),
        started_at=maybe() | st.just(T0),
        finished_at=maybe() | st.just(T0 + timedelta(seconds=2)),
        duration_ms=maybe() | st.integers(0, 5000),
        result=maybe() | st.just({"ok": True}) | st.just(0),
        error_message=maybe() | st.just("KeyError: 'x'"),
        stacktrace=maybe() | st.just("Traceback ..."),
        retry_count=st.integers(0, 3),
        trigger=maybe() | st.sampled_from(["schedule", "manual"]),
        updated_at=maybe() | st.just(T0 + timedelta(seconds=3)),
    )


def test_a_row_holds_the_record_fields_in_their_order() -> None:
    record = ExecutionRecord(
        execution_id="job-1",
        enqueued_ms=1000,
        status=JobExecutionStatus.FAILED,
        job_id=SCHEDULE,
        handler_name="report",
        queue="corral",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        duration_ms=1000,
        result={"n": 1},
        error_message="boom",
        stacktrace="Traceback ...",
        retry_count=2,
        trigger="schedule",
        updated_at=T0 + timedelta(seconds=2),
    )
    row = as_row(record)
    assert row == tuple(getattr(record, f.name) for f in fields(ExecutionRecord))
    assert type(row[2]) is str  # the status' value, not the enum member


def test_a_row_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="sleeping"):
        as_row(ExecutionRecord(execution_id="x", status="sleeping"))  # type: ignore[arg-type]


@given(_records(), _records())
def test_folding_rows_is_folding_records(later: ExecutionRecord, earlier: ExecutionRecord) -> None:
    assert fold(as_row(later), as_row(earlier)) == as_row(later.over(earlier))


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        (f"sched-{SCHEDULE}-1772366400000", (SCHEDULE, "schedule")),
        (f"manual-{SCHEDULE}-1772366400000", (SCHEDULE, "manual")),
        ("sched-not-a-uuid-1", (None, None)),
        (f"sched-{str(SCHEDULE).upper()}-1", (None, None)),
        ("1234", (None, None)),
        (f"x-sched-{SCHEDULE}-1", (None, None)),
    ],
)
def test_schedule_of(job_id: str, expected: tuple[uuid.UUID | None, str | None]) -> None:
    assert schedule_of(job_id) == expected
