"""The execution-log record (one row of ``system_job_execution_logs``) as a value."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final, TypeAlias, cast
from uuid import UUID

from corral.core.jobs import JobExecutionStatus
from corral.core.misfire import epoch_ms, missed_id
from corral.core.validation import is_strict_int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRecord:
    """The latest known state of one queue job. Upserted by ``(execution_id, enqueued_ms)``: a
    later record for the same key replaces the earlier one field by field (``None`` keeps the
    stored value).

    ``execution_id`` is the queue's job id. It alone is not unique for all time: BullMQ numbers
    jobs from a counter in Redis, which starts again at 1 whenever the Redis data set does (a
    flush, a restored backup, a failover that lost it), and a caller's own job id may be used
    again once the earlier job is gone. The job's creation time (``enqueued_ms``, ms since the
    epoch, kept by BullMQ through every retry) tells those executions apart, so a new job never
    overwrites an old one's history. Rows written before the column existed carry 0.

    ``job_id`` is the schedule the job came from (None for jobs added directly);
    ``retry_count`` is the number of attempts before the current one; ``stacktrace`` is the
    traceback of the latest failed attempt.
    """

    execution_id: str
    enqueued_ms: int = 0
    status: JobExecutionStatus
    job_id: UUID | None = None
    handler_name: str | None = None
    queue: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    result: Any = None
    error_message: str | None = None
    stacktrace: str | None = None
    retry_count: int = 0
    trigger: str | None = None  # "schedule", "manual" (trigger_now) or None (direct add)
    updated_at: datetime | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The row this record belongs to."""
        return (self.execution_id, self.enqueued_ms)

    def over(self, earlier: ExecutionRecord) -> ExecutionRecord:
        """This record folded over an earlier one for the same row: a ``None`` field keeps the
        earlier value (a later step does not know, e.g., when the job started)."""
        return replace(
            self,
            **{
                name: getattr(earlier, name)
                for name in _FIELDS
                if getattr(self, name) is None and getattr(earlier, name) is not None
            },
        )


_FIELDS = tuple(f.name for f in fields(ExecutionRecord))

# -- rows ------------------------------------------------------------------------------------

#: A time in a row: an aware datetime, or milliseconds since the epoch (a float, UTC) as the
#: worker's log writer notes its jobs' times. The writer meets thousands of jobs a second, and
#: three datetimes per job, made and then formatted as SQLite's text, cost more than turning
#: the milliseconds into that text directly; the SQL adapter makes what each database needs.
Moment: TypeAlias = datetime | float

#: One execution-log row as the worker's log writer buffers it and the SQL adapter writes it:
#: the fields of :class:`ExecutionRecord` in their order, in a plain tuple, with ``status`` as
#: its string value and times as :data:`Moment`. A worker reports two steps of every job; a
#: tuple is the cheapest value to build, merge and hand to a driver, and one of plain values
#: (strings, numbers, times: no result object, no schedule id) is dropped from the garbage
#: collector's watch at its first pass, so a buffer of them does not drive the full collections
#: that stall the event loop for tens of milliseconds.
ExecutionRow: TypeAlias = tuple[
    str,  # execution_id
    int,  # enqueued_ms
    str,  # status
    UUID | None,  # job_id
    str | None,  # handler_name
    str | None,  # queue
    Moment | None,  # started_at
    Moment | None,  # finished_at
    int | None,  # duration_ms
    Any,  # result
    str | None,  # error_message
    str | None,  # stacktrace
    int,  # retry_count
    str | None,  # trigger
    Moment | None,  # updated_at
]


def as_row(record: ExecutionRecord) -> ExecutionRow:
    """``record`` as a row (``status`` validated)."""
    return (
        record.execution_id,
        record.enqueued_ms,
        JobExecutionStatus(record.status).value,
        record.job_id,
        record.handler_name,
        record.queue,
        record.started_at,
        record.finished_at,
        record.duration_ms,
        record.result,
        record.error_message,
        record.stacktrace,
        record.retry_count,
        record.trigger,
        record.updated_at,
    )


def fold(later: ExecutionRow, earlier: ExecutionRow) -> ExecutionRow:
    """``later`` folded over ``earlier`` (rows of the same key): :meth:`ExecutionRecord.over`
    for rows, a ``None`` field keeps the earlier value."""
    return cast(
        ExecutionRow,
        tuple([new if new is not None else old for new, old in zip(later, earlier, strict=True)]),
    )


# -- skipped ticks ---------------------------------------------------------------------------

_TICKS: Final = "missedTicks"
_FIRST: Final = "firstTick"
_LAST: Final = "lastTick"


@dataclass(frozen=True, slots=True, kw_only=True)
class MissedTicks:
    """A range of one schedule's ticks that were skipped, not run: how many, the oldest and the
    newest (nominal times, aware UTC)."""

    count: int
    first: datetime
    last: datetime


def missed_record(
    schedule_id: UUID,
    missed: MissedTicks,
    *,
    handler_name: str,
    queue: str,
    recorded_at: datetime,
) -> ExecutionRecord:
    """The ``missed`` row for a skipped range (see docs/design.md, "Skipped ticks").

    The figures live in ``result`` (no queue job ran, so nothing else uses it) and the row is
    keyed by the oldest skipped tick, so writing the same range again lands on the same row;
    ``started_at``/``finished_at`` stay empty because nothing started or finished.
    """
    return ExecutionRecord(
        execution_id=missed_id(schedule_id, missed.first),
        enqueued_ms=epoch_ms(missed.first),
        status=JobExecutionStatus.MISSED,
        job_id=schedule_id,
        handler_name=handler_name,
        queue=queue,
        trigger="schedule",
        result={
            _TICKS: missed.count,
            _FIRST: missed.first.isoformat(),
            _LAST: missed.last.isoformat(),
        },
        updated_at=recorded_at,
    )


def missed_ticks(record: ExecutionRecord) -> MissedTicks | None:
    """The figures of a ``missed`` row; None for any other row (or a hand-edited one that no
    longer holds them)."""
    result = record.result
    if record.status != JobExecutionStatus.MISSED or not isinstance(result, dict):
        return None
    try:
        count, first, last = result[_TICKS], result[_FIRST], result[_LAST]
        if not is_strict_int(count):
            return None
        return MissedTicks(
            count=count, first=datetime.fromisoformat(first), last=datetime.fromisoformat(last)
        )
    except (KeyError, TypeError, ValueError):
        return None


_SCHEDULED_ID: Final = re.compile(
    r"^(?P<kind>sched|manual)-(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-"
)


_SCHEDULED_PREFIXES: Final = ("sched-", "manual-")


def schedule_of(execution_id: str) -> tuple[UUID | None, str | None]:
    """The schedule a queue job came from, and how ("schedule" or "manual"), from its id."""
    if not execution_id.startswith(_SCHEDULED_PREFIXES):  # most jobs: no regex for them
        return None, None
    match = _SCHEDULED_ID.match(execution_id)
    if match is None:
        return None, None
    return UUID(match["id"]), "schedule" if match["kind"] == "sched" else "manual"
