"""How the scheduler loop settles a batch of due ticks: one transaction for the whole batch,
or, when that lost a race with another replica, one transaction per schedule (each decides
again from its watermark as it is then)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Generic, Protocol, TypeVar

from corral.core.jobs import JobSpec, Retention
from corral.core.schedules import FirePlan, ScheduledJob, plan_fire
from corral.services.fire_reports import SchedulerStats
from corral.services.firing import Gate, Outcome, PromiseAfter, Settling, spec_for_schedule
from corral.services.tick_heaps import next_tick
from corral.supervision import Supervisor

# The lines keep the scheduler loop's logger name, which operators may already filter on.
logger = logging.getLogger("corral.services.scheduling")

MAX_CONCURRENT_SETTLES = 32


class Due(Protocol):
    @property
    def schedule(self) -> ScheduledJob: ...


E = TypeVar("E", bound=Due)


class Settler(Generic[E]):
    """Settles batches of ``E`` (the loop's entries) and hands each outcome, or failure, back."""

    def __init__(
        self,
        gate: Gate,
        *,
        stats: SchedulerStats,
        catch_up_ms: int,
        keep_completed: Retention,
        settled: Callable[[E, Outcome, datetime], None],
        failed: Callable[[E, datetime], None],
    ) -> None:
        self.gate = gate
        self.stats = stats
        self.catch_up_ms = catch_up_ms
        self.keep_completed = keep_completed
        self._settled = settled
        self._failed = failed
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_SETTLES)
        # One line for the first failure, then one per 10 s for all schedules together:
        # during a Redis outage every schedule fails every second.
        self._supervisor = Supervisor(
            logger,
            failure="could not settle schedule {schedule_id}: {error}",
            event="scheduler.settle_failed",
        )

    def plan(
        self, schedule: ScheduledJob, watermark: datetime | None, *, now: datetime
    ) -> FirePlan:
        return plan_fire(schedule, watermark=watermark, now=now, catch_up_ms=self.catch_up_ms)

    def _spec(self, schedule: ScheduledJob, tick: datetime) -> JobSpec:
        return spec_for_schedule(schedule, tick, keep_completed=self.keep_completed)

    def _request(self, schedule: ScheduledJob, now: datetime) -> Settling:
        return (schedule.id, partial(self.plan, schedule, now=now), partial(self._spec, schedule))

    async def batch(
        self, entries: Sequence[E], now: datetime, *, promise: PromiseAfter | None = None
    ) -> bool:
        """Settle ``entries`` (as of ``now``) in one transaction, with the ``promise`` if it
        commits anything; if it lost a race with another replica, settle each on its own.
        True when the one transaction went through (then the promise was written if its
        callback returned one)."""
        requests = [self._request(e.schedule, now) for e in entries]
        try:
            outcomes = await self.gate.settle_many(requests, promise=promise)
        except Exception as exc:
            for entry in entries:
                self._fail(entry, now, exc)
            return False
        if outcomes is None:
            self.stats.batch_conflicts += 1
            await asyncio.gather(*(self._bounded(e, now) for e in entries))
            return False
        self._supervisor.recovered()
        for entry, outcome in zip(entries, outcomes, strict=True):
            self._settled(entry, outcome, now)
        return True

    async def unsettled(
        self, entries: Sequence[E], now: datetime, push: Callable[[E, datetime | None], None]
    ) -> list[E]:
        """Of ticks other replicas own, those still unsettled (one MGET of their watermarks,
        and the misfire policy on each); the others are ``push``ed back for their next tick."""
        self.stats.backup_checks += len(entries)
        try:
            marks = await self.gate.watermarks([e.schedule.id for e in entries])
        except Exception:
            return list(entries)  # cannot tell: settle them all, the transaction decides
        pending: list[E] = []
        for entry, mark in zip(entries, marks, strict=True):
            schedule = entry.schedule
            if mark is not None and mark >= schedule.updated_at:
                # The usual case, in one cron step: the owner settled every tick up to now.
                following = next_tick(schedule, mark)
                if following is None or following > now:
                    push(entry, following)
                    continue
            if self.plan(schedule, mark, now=now).moves(mark):
                pending.append(entry)
            else:
                push(entry, next_tick(schedule, now))
        return pending

    async def _bounded(self, entry: E, now: datetime) -> None:
        # Each settle holds a pooled Redis connection for one transaction: bound them.
        async with self._slots:
            try:
                outcome = await self.gate.settle(*self._request(entry.schedule, now))
            except Exception as exc:
                self._fail(entry, now, exc)
                return
        self._supervisor.recovered()
        self._settled(entry, outcome, now)

    def _fail(self, entry: E, now: datetime, exc: Exception) -> None:
        self._supervisor.failed(exc, schedule_id=str(entry.schedule.id))
        self._failed(entry, now)
