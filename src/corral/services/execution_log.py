"""The execution-log writer: workers report job lifecycle steps; rows reach SQL in batches.

Reports are merged in memory by ``(execution_id, enqueued_ms)`` (the latest state wins,
earlier fields such as ``started_at`` are kept), so a job that starts and ends between two
flushes is one row, and upserted every ``flush_interval_s`` or ``max_batch`` rows, so the
database never sits on the job path. A database outage delays rows: they stay buffered and are
retried with a capped backoff; they are never dropped and jobs never wait for them.

The hooks run on the job path for every job, so they do little: a start is noted as the
attempt itself, and the outcome's row (``core.executions.ExecutionRow``, a plain tuple) replaces
the note, as it holds everything the start's row would have; times stay milliseconds until the
SQL adapter writes them. A start still running at a flush is written as its ``active`` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from corral.core.attempts import Attempt, AttemptOutcome
from corral.core.backoff import RetryPolicy
from corral.core.executions import (
    ExecutionRow,
    MissedTicks,
    Moment,
    as_row,
    fold,
    missed_record,
    schedule_of,
)
from corral.core.jobs import JobExecutionStatus
from corral.supervision import Supervisor

if TYPE_CHECKING:  # a worker's log writer never sees a schedule: the cron code stays unloaded
    from corral.core.schedules import ScheduledJob

logger = logging.getLogger(__name__)

_MAX_ERROR: Final = 8000
_MAX_STACKTRACE: Final = 16_000  # the innermost frames, where the error was raised, are kept
_WAITING: Final = JobExecutionStatus.WAITING.value
_ACTIVE: Final = JobExecutionStatus.ACTIVE.value
_COMPLETED: Final = JobExecutionStatus.COMPLETED.value
_DELAYED: Final = JobExecutionStatus.DELAYED.value
_FAILED: Final = JobExecutionStatus.FAILED.value


class LogWrites(Protocol):
    """What the writer needs of an execution log (``core.ports.ExecutionLog``'s writes): the
    worker hands it a log that can do no more (``adapters.sql.driver_log``)."""

    async def prepare(self) -> None: ...

    async def upsert_rows(self, rows: Sequence[ExecutionRow]) -> None: ...


def _now_ms() -> float:
    return time.time() * 1000


class ExecutionLogWriter:
    """Listens to the worker's attempts (``core.ports.AttemptListener``)."""

    def __init__(
        self,
        log: LogWrites,
        *,
        queue: str,
        flush_interval_s: float = 0.5,
        max_batch: int = 500,
    ) -> None:
        self.log = log
        self.queue = queue
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self._pending: dict[tuple[str, int], ExecutionRow | Attempt] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        # Retried every second flush interval, then twice as long after each failure (at most
        # 30 s): a database outage costs a few attempts, not a stream of them.
        self._supervisor = Supervisor(
            logger,
            failure="execution log write failed ({rows} rows kept for retry): {error}",
            event="execlog.write_failed",
            recovery="execution log writes recovered",
            recovered_event="execlog.recovered",
            policy=RetryPolicy(initial_s=flush_interval_s * 2, max_s=30.0),
        )

    @property
    def failures(self) -> int:
        """Flushes failed in a row."""
        return self._supervisor.failures

    # -- lifecycle hooks (sync: called on the job path, only touch memory) ---------------------
    def _put(self, row: ExecutionRow) -> None:
        key = (row[0], row[1])
        previous = self._pending.get(key)
        self._pending[key] = row if previous is None else fold(row, self._row_of(previous))
        self._check_full()

    def _check_full(self) -> None:
        # A full batch flushes early, unless writes are failing: then the backoff decides.
        if len(self._pending) >= self.max_batch and not self.failures:
            self._wake.set()

    def _row(
        self,
        at: Moment,
        job_id: str,
        enqueued_ms: int,
        status: str,
        name: str,
        attempt: int,
        started_at: Moment | None = None,
        finished_at: Moment | None = None,
        duration_ms: int | None = None,
        result: Any = None,
        error_message: str | None = None,
        stacktrace: str | None = None,
    ) -> ExecutionRow:
        schedule_id, trigger = schedule_of(job_id)
        return (
            job_id,
            enqueued_ms,
            status,
            schedule_id,
            name,
            self.queue,
            started_at,
            finished_at,
            duration_ms,
            result,
            error_message,
            stacktrace,
            max(attempt - 1, 0),
            trigger,
            at,
        )

    def _row_of(self, entry: ExecutionRow | Attempt) -> ExecutionRow:
        if not isinstance(entry, Attempt):
            return entry
        return self._row(
            entry.started_ms,
            entry.job_id,
            entry.enqueued_ms,
            _ACTIVE,
            entry.name,
            entry.number,
            entry.started_ms,
        )

    def job_waiting(self, job_id: str, enqueued_ms: int, name: str) -> None:
        self._put(self._row(_now_ms(), job_id, enqueued_ms, _WAITING, name, 1))

    def attempt_started(self, attempt: Attempt) -> None:
        key = (attempt.job_id, attempt.enqueued_ms)
        previous = self._pending.get(key)
        if previous is None or isinstance(previous, Attempt):  # a later start says all
            self._pending[key] = attempt
            self._check_full()
        else:
            self._pending[key] = fold(self._row_of(attempt), previous)

    def attempt_finished(self, outcome: AttemptOutcome) -> None:
        attempt = outcome.attempt
        if outcome.ok:
            status = _COMPLETED
        else:
            status = _DELAYED if outcome.retrying else _FAILED
        error, trace = outcome.error, outcome.stacktrace
        row = self._row(
            _now_ms(),
            attempt.job_id,
            attempt.enqueued_ms,
            status,
            attempt.name,
            attempt.number,
            attempt.started_ms,
            None if outcome.retrying else outcome.finished_ms,
            round(outcome.duration_ms),
            outcome.result,
            None if error is None else error[:_MAX_ERROR],
            None if trace is None else trace[-_MAX_STACKTRACE:],
        )
        key = (row[0], row[1])
        previous = self._pending.get(key)
        # Over a start alone no fold is needed: this row has a value wherever a start's has.
        if previous is None or isinstance(previous, Attempt):
            self._pending[key] = row
            self._check_full()
        else:
            self._pending[key] = fold(row, previous)

    def ticks_missed(
        self, schedule: ScheduledJob, missed: MissedTicks, recorded_at: datetime
    ) -> None:
        """A range of the schedule's ticks was skipped (called by the scheduler replica whose
        commit skipped them, so once per range): one ``missed`` row."""
        record = missed_record(
            schedule.id,
            missed,
            handler_name=schedule.handler_name,
            queue=self.queue,
            recorded_at=recorded_at,
        )
        self._put(as_row(record))

    # -- flushing -----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="corral-execution-log")

    async def _run(self) -> None:
        try:
            await self.log.prepare()
        except Exception as exc:  # the flushes report an outage; this only saves the first one
            logger.debug("execution log not prepared: %s", exc)
        while True:
            with contextlib.suppress(TimeoutError):
                wait = self._supervisor.delay or self.flush_interval_s
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Write what is buffered; True on success (or nothing to do)."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        rows = [self._row_of(entry) for entry in batch.values()]
        try:
            for start in range(0, len(rows), self.max_batch):
                await self.log.upsert_rows(rows[start : start + self.max_batch])
        except BaseException as exc:
            # Put the batch back under anything reported since (newer state wins), also when
            # the flush is cancelled mid-write (``close()`` stops the loop that way): its last
            # flush writes it then. Rewriting rows that did land is harmless (an upsert).
            for key, row in zip(batch, rows, strict=True):
                newer = self._pending.get(key)
                self._pending[key] = row if newer is None else fold(self._row_of(newer), row)
            if not isinstance(exc, Exception):
                raise
            self._supervisor.failed(exc, rows=len(self._pending))
            return False
        self.written += len(batch)
        self._supervisor.recovered()
        return True

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and try to write what is left for up to ``timeout_s``."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._pending and asyncio.get_running_loop().time() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self._pending:
            logger.error(
                "%d execution log rows could not be written before shutdown",
                len(self._pending),
                extra={"event": "execlog.unwritten"},
            )
