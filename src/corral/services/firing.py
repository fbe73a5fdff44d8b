"""Firing one tick: the atomic settle step the scheduler loop relies on (the gate), what it
reports, and the queue job a tick becomes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from corral.core.executions import MissedTicks
from corral.core.jobs import (
    DEFAULT_REMOVE_ON_COMPLETE,
    Backoff,
    JobOptions,
    JobSpec,
    Retention,
)
from corral.core.schedules import FirePlan, ScheduledJob, fire_id


class Outcome(Protocol):
    @property
    def fired(self) -> datetime | None: ...
    @property
    def skipped(self) -> int: ...
    @property
    def lost_race(self) -> bool: ...
    @property
    def first_skipped(self) -> datetime | None: ...
    @property
    def last_skipped(self) -> datetime | None: ...
    @property
    def settled_ms(self) -> int | None: ...


class Beat(Protocol):
    """One heartbeat's reads: this clock's skew against Redis, the live schedulers, the
    promises asked about (in the order asked, None where there is none), and the store's
    change marker as the polling scheduler published it (None if none is)."""

    @property
    def skew(self) -> float: ...
    @property
    def live(self) -> Sequence[str]: ...
    @property
    def promises(self) -> Sequence[str | None]: ...
    @property
    def marker(self) -> str | None: ...


#: One schedule to settle: its id, the decision on its watermark, the job of a fired tick.
Settling = tuple[UUID, Callable[[datetime | None], FirePlan], Callable[[datetime], JobSpec]]
#: A scheduler's id and, from a batch's plans (None where nothing moves), the promise to
#: publish in the batch's transaction (None: unchanged, nothing to write).
PromiseAfter = tuple[str, Callable[[Sequence[FirePlan | None]], str | None]]

#: Called with (schedule, the skipped range, when it was committed) by the replica that
#: committed the skip: the execution log's ``missed`` row.
OnMissed = Callable[[ScheduledJob, MissedTicks, datetime], None]


class Gate(Protocol):
    """The atomic settle step (implemented by ``adapters.bullmq.fires.FireGate``)."""

    async def settle(
        self,
        schedule_id: UUID,
        decide: Callable[[datetime | None], FirePlan],
        spec_for: Callable[[datetime], JobSpec],
    ) -> Outcome: ...

    async def settle_many(
        self, requests: Sequence[Settling], *, promise: PromiseAfter | None = None
    ) -> Sequence[Outcome] | None:
        """Settle all in one transaction, with the ``promise`` when it commits something;
        None when another scheduler moved one of their watermarks meanwhile (nothing was
        written, the promise neither: settle them one by one)."""

    async def watermarks(self, schedule_ids: Sequence[UUID]) -> Sequence[datetime | None]:
        """The schedules' watermarks, read without claiming anything."""

    async def heartbeat(
        self, scheduler_id: str, *, stopping: bool = False, promise: str | None = None
    ) -> float | None:
        """Mark the scheduler alive (or gone), refresh its ``promise``; return its clock minus
        Redis's, in seconds."""

    async def beat(
        self,
        scheduler_id: str,
        *,
        skew: float,
        promise: str | None,
        others: Sequence[str],
        within_ms: int,
        marker: str | None = None,
    ) -> Beat:
        """A heartbeat that also publishes ``marker`` (the store's change marker, from the
        replica that polls the store) and reads the live schedulers, the ``others``' promises
        and the published marker."""

    async def promise(self, scheduler_id: str, promise: str) -> None:
        """Publish the scheduler's promise about the schedules it owns (``core.ownership``)."""

    async def promises(self, scheduler_ids: Sequence[str]) -> Sequence[str | None]:
        """The schedulers' promises, None where there is none."""

    async def schedulers(self, *, within_ms: int) -> Sequence[str]:
        """The ids of the schedulers whose heartbeat is at most ``within_ms`` old."""


def spec_for_schedule(
    schedule: ScheduledJob,
    nominal: datetime,
    *,
    job_id: str | None = None,
    keep_completed: Retention = DEFAULT_REMOVE_ON_COMPLETE,
) -> JobSpec:
    """The queue job for one tick: the schedule's handler, payload and retry settings.

    ``retry_attempts`` counts retries, so a job gets ``retry_attempts + 1`` attempts in all.
    """
    return JobSpec(
        name=schedule.handler_name,
        data=dict(schedule.payload),
        options=JobOptions(
            priority=schedule.priority,
            timeout_ms=schedule.timeout,
            attempts=schedule.retry_attempts + 1,
            backoff=Backoff(type="fixed", delay_ms=schedule.retry_delay),
            job_id=job_id or fire_id(schedule.id, nominal),
            remove_on_complete=keep_completed,
        ),
    )
