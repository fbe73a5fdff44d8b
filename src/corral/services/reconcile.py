"""Reconciling the execution log with Redis: every job has a row, every unfinished row a job.

A job and its row are written by separate steps that a crash can separate: a scheduler (or
producer) adds the job and then buffers its ``waiting`` row; a worker moves the job in Redis and
buffers its row for up to half a second. A process killed between the two leaves a job with no
row (its execution never shows in the history), and Redis losing its data leaves ``waiting`` or
``active`` rows whose job is gone (they would say "running" forever). A pass, run periodically
by the schedulers, repairs both:

* **row without job**: an unfinished row (``waiting``, ``active``, ``delayed``) not updated for
  the grace period whose job is absent from Redis, or present with another creation time (a
  newer job reusing the id), ends ``failed`` with :data:`LOST_REASON`. A job present in Redis
  is never orphaned, however long it runs; if it has finished, the row takes its outcome (the
  worker died before writing it).
* **job without row**: a job created more than the grace period ago with no row for its
  ``(id, creation time)`` gets a row with its current state.

The decisions are pure (``core/reconciliation.py``); the pass reads Redis through the queue
broker and the log through the port below. Its writes never overwrite a later real status: a
verdict is applied only if the row is still exactly as it was read (status and
``updated_at``), and a missing row is inserted only if still missing.
A worker's write landing after a verdict is applied as usual (``completed`` replaces ``failed``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

from corral.core.executions import ExecutionRecord
from corral.core.ports import QueueBroker
from corral.core.reconciliation import (
    LOST_REASON,
    REUSED_REASON,
    STATUS_OF_STATE,
    UNSETTLED,
    is_lost,
    missing,
    verdict,
)
from corral.services.scheduling import Clock, utc_now

# The pass's verdicts, named where its callers look for them.
__all__ = [
    "LOST_REASON",
    "REUSED_REASON",
    "STATUS_OF_STATE",
    "UNSETTLED",
    "Reconciler",
    "is_lost",
    "missing",
    "verdict",
]

logger = logging.getLogger(__name__)

DEFAULT_PAGE: Final = 200


class ReconcileLog(Protocol):
    """The SQL side (implemented by ``adapters.sql.execution_log.SqlExecutionLog``)."""

    async def unsettled(
        self,
        queue: str,
        *,
        statuses: Sequence[str],
        updated_before: datetime,
        after_row: int,
        limit: int,
    ) -> list[tuple[int, ExecutionRecord]]: ...

    async def present(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]: ...

    async def insert_missing(self, records: Sequence[ExecutionRecord]) -> int: ...

    async def settle(
        self, record: ExecutionRecord, *, seen_status: str, seen_updated_at: datetime
    ) -> bool: ...


@dataclass(slots=True)
class PassReport:
    """What one pass did: rows checked and written."""

    rows_checked: int = 0
    jobs_checked: int = 0
    lost: int = 0  # rows failed because their job is gone
    settled: int = 0  # rows given the outcome their job has in Redis
    added: int = 0  # rows added for jobs that had none


@dataclass(slots=True)
class ReconcileStats:
    """Since the process started: passes run and failed, and what the last one did."""

    passes: int = 0
    failures: int = 0
    last: PassReport = field(default_factory=PassReport)


class Reconciler:
    """One queue's reconciliation passes. Each pass does a bounded amount of work: at most
    ``page`` rows and ``page`` jobs per state, newest jobs first, plus one more page that moves
    through the rest on successive passes, so a large queue or history is covered over time."""

    def __init__(
        self,
        jobs: QueueBroker,
        log: ReconcileLog,
        *,
        queue: str,
        grace_s: float,
        page: int = DEFAULT_PAGE,
        clock: Clock = utc_now,
    ) -> None:
        self.jobs = jobs
        self.log = log
        self.queue = queue
        self.grace = timedelta(seconds=grace_s)
        self.page = page
        self.clock = clock
        self.stats = ReconcileStats()
        self._row_cursor = 0
        self._job_cursors: dict[str, int] = {}

    async def run_once(self) -> PassReport:
        report = PassReport()
        await self._rows_without_jobs(report)
        await self._jobs_without_rows(report)
        self.stats.passes += 1
        self.stats.last = report
        if report.lost or report.settled or report.added:
            logger.info(
                "reconciled the execution log of queue %s: %d lost jobs failed, %d rows given "
                "their job's outcome, %d rows added for jobs that had none",
                self.queue,
                report.lost,
                report.settled,
                report.added,
                extra={
                    "event": "execlog.reconciled",
                    "lost": report.lost,
                    "settled": report.settled,
                    "added": report.added,
                },
            )
        return report

    async def _rows_without_jobs(self, report: PassReport) -> None:
        now = self.clock()
        rows = await self.log.unsettled(
            self.queue,
            statuses=[str(s) for s in UNSETTLED],
            updated_before=now - self.grace,
            after_row=self._row_cursor,
            limit=self.page,
        )
        self._row_cursor = rows[-1][0] if len(rows) >= self.page else 0
        report.rows_checked = len(rows)
        if not rows:
            return
        facts = await self.jobs.job_facts([record.execution_id for _, record in rows])
        for _, row in rows:
            change = verdict(row, facts.get(row.execution_id), queue=self.queue, now=now)
            if change is None or row.updated_at is None:
                continue
            applied = await self.log.settle(
                change, seen_status=str(row.status), seen_updated_at=row.updated_at
            )
            if applied and is_lost(change):
                report.lost += 1
            elif applied:
                report.settled += 1

    async def _jobs_without_rows(self, report: PassReport) -> None:
        now = self.clock()
        created_before_ms = int((now - self.grace).timestamp() * 1000)
        first_state: dict[str, str] = {}  # each job once, with the first state it is listed in
        for state in STATUS_OF_STATE:
            for job_id in await self._page_of(state):
                first_state.setdefault(job_id, state)
        if not first_state:
            return
        facts = await self.jobs.job_facts(sorted(first_state))
        found = [(s, job) for i, s in first_state.items() if (job := facts.get(i)) is not None]
        report.jobs_checked = len(found)
        present = await self.log.present([(job.id, job.created_ms) for _, job in found])
        records = missing(
            found, present, queue=self.queue, created_before_ms=created_before_ms, now=now
        )
        if records:
            report.added = await self.log.insert_missing(records)

    async def _page_of(self, state: str) -> list[str]:
        """The newest page of ``state``, plus the page at this state's moving cursor."""
        ids = await self.jobs.job_ids(state, offset=0, limit=self.page)
        if len(ids) < self.page:
            self._job_cursors[state] = 0
            return ids
        cursor = self._job_cursors.get(state, 0) or self.page
        more = await self.jobs.job_ids(state, offset=cursor, limit=self.page)
        self._job_cursors[state] = cursor + self.page if len(more) >= self.page else 0
        return ids + more
