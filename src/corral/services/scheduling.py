"""The scheduler loop: keep every enabled schedule's next tick, settle due ticks exactly once,
and reload definitions when they change.

Every replica runs the same loop; exactly-once comes from the gate's atomic
watermark-and-enqueue (see ``adapters/bullmq/fires.py``), so there is no leader to elect and no
takeover gap. The replicas share the work without agreeing on anything: each one reads the live
replicas from the heartbeats and settles on time the schedules it owns (rendezvous hashing,
``core.ownership``); the others' ticks it only checks, :data:`BACKUP_DELAY_S` later, and settles
those still unsettled, so a dead replica's ticks fire at most that much late.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from corral.core.jobs import DEFAULT_REMOVE_ON_COMPLETE, JobSpec, Retention
from corral.core.ownership import owner
from corral.core.ports import ScheduleStore
from corral.core.schedules import (
    DEFAULT_CATCH_UP_MS,
    FirePlan,
    ScheduledJob,
    plan_fire,
)
from corral.services.fire_reports import FireReports
from corral.services.firing import Gate, OnMissed, Outcome, Settling, spec_for_schedule
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_CONCURRENT_SETTLES = 32
MAX_BATCH = 256
#: How long after a tick a replica that does not own the schedule checks that its owner fired
#: it (and fires it if not): the most a dead or stalled owner's tick is late. Well above an
#: owner's usual lateness (tens of ms), so the check rarely finds work, and far below the
#: misfire threshold, so a tick fired by a backup still fires on its own.
BACKUP_DELAY_S = 0.5
#: A replica counts as live, and owns a share of the schedules, while its last heartbeat is at
#: most this many poll intervals old (one heartbeat per poll).
LIVE_POLLS = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Entry:
    schedule: ScheduledJob
    #: When the schedule's owner settles it next (a tick, or "now" after a change).
    next_at: datetime | None
    owned: bool = True


class SchedulerLoop:
    """Fires due ticks of the enabled schedules until ``stop`` is set."""

    def __init__(
        self,
        store: ScheduleStore,
        gate: Gate,
        *,
        clock: Clock = utc_now,
        catch_up_ms: int = DEFAULT_CATCH_UP_MS,
        poll_s: float = 1.0,
        keep_completed: Retention = DEFAULT_REMOVE_ON_COMPLETE,
        on_fired: Callable[[str, int, str], None] | None = None,
        on_missed: OnMissed | None = None,
        backup_delay_s: float = BACKUP_DELAY_S,
    ) -> None:
        self.keep_completed = keep_completed
        self.store = store
        self.gate = gate
        self.clock = clock
        self.catch_up_ms = catch_up_ms
        self.poll_s = poll_s
        self.backup_delay = timedelta(seconds=backup_delay_s)
        self.reports = FireReports(on_fired=on_fired, on_missed=on_missed, clock=clock)
        self.stats = self.reports.stats
        self.id = uuid4().hex
        #: The live replicas (this one included) as the last heartbeat read them.
        self.members: tuple[str, ...] = ()
        self._entries: dict[UUID, _Entry] = {}
        self._heap: list[tuple[datetime, str, UUID]] = []
        self._marker: str | None = None
        self._changed = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_SETTLES)
        self.loaded = asyncio.Event()
        # Outages are logged per step; the loop's poll is the retry, so no policy.
        self._steps = {
            step: Supervisor(
                logger,
                failure=f"scheduler step failed ({step}): {{error}}",
                event="scheduler.error",
                recovery=f"scheduler {step} works again",
                recovered_event="scheduler.ok",
            )
            for step in ("reload", "heartbeat")
        }
        # One line for the first failure, then one per 10 s for all schedules together:
        # during a Redis outage every schedule fails every second.
        self._settling = Supervisor(
            logger,
            failure="could not settle schedule {schedule_id}: {error}",
            event="scheduler.settle_failed",
        )

    @property
    def clock_skew_s(self) -> float | None:
        """This process's clock minus Redis's TIME (s), as the last heartbeat measured it."""
        return self.reports.clock_skew_s

    def nudge(self) -> None:
        """Something changed (a pub/sub message): reload on the next turn."""
        self._changed.set()

    async def reload(self) -> None:
        """Reload the enabled schedules. Unchanged ones keep their next tick; new or changed
        ones are settled at once (which also applies the misfire policy to them)."""
        marker = await self.store.change_marker()
        schedules = await self.store.list_enabled()
        now = self.clock()
        entries: dict[UUID, _Entry] = {}
        for schedule in schedules:
            old = self._entries.get(schedule.id)
            # The whole definition, not ``updated_at``: that never moves back, so a change
            # written by a process whose clock is behind the last writer's keeps the stored time.
            unchanged = old is not None and old.schedule == schedule
            entries[schedule.id] = _Entry(
                schedule=schedule,
                next_at=old.next_at if unchanged and old else now,
                owned=self.owns(schedule.id),
            )
        self._entries = entries
        self._rebuild_heap()
        self._marker = marker
        self.stats.reloads += 1
        self.loaded.set()
        logger.info(
            "scheduler loaded %d enabled schedules",
            len(entries),
            extra={"event": "scheduler.loaded", "count": len(entries)},
        )

    async def _maybe_reload(self) -> None:
        nudged = self._changed.is_set()
        self._changed.clear()
        if nudged or await self.store.change_marker() != self._marker:
            await self.reload()

    async def run(self, stop: asyncio.Event) -> None:
        await self._guarded(self._heartbeat(), "heartbeat")
        await self.reload()
        next_poll = self.clock() + timedelta(seconds=self.poll_s)
        try:
            while not stop.is_set():
                # Due ticks first: the poll (a SQL query, the heartbeat's round trips) drifts
                # through the second and would otherwise delay the ticks it lands on.
                await self._fire_due(self.clock())
                now = self.clock()
                # Also when the next poll is further off than one interval: the wall clock
                # stepped back, and waiting for it would stop heartbeats and reloads until the
                # clock is back where it was (an hour, after a one-hour step).
                stepped_back = next_poll - now > timedelta(seconds=self.poll_s)
                if now >= next_poll or stepped_back or self._changed.is_set():
                    await self._guarded(self._maybe_reload(), "reload")
                    await self._guarded(self._heartbeat(), "heartbeat")
                    next_poll = self.clock() + timedelta(seconds=self.poll_s)
                await self._wait(stop, min(self._next_due(), next_poll))
        finally:
            await self._guarded(self.gate.heartbeat(self.id, stopping=True), "heartbeat")

    async def _heartbeat(self) -> None:
        skew = await self.gate.heartbeat(self.id)
        if skew is not None:
            self.reports.note_skew(skew)
        live = await self.gate.schedulers(within_ms=round(self.poll_s * LIVE_POLLS * 1000))
        self._set_members(live)

    def owns(self, schedule_id: UUID) -> bool:
        """Whether this replica settles the schedule on time (else it is its owner's backup).
        Alone, or before it has read the live replicas, it owns every schedule."""
        return len(self.members) <= 1 or owner(schedule_id, self.members) == self.id

    def _set_members(self, live: Iterable[str]) -> None:
        members = tuple(sorted({*live, self.id}))
        if members == self.members:
            return
        self.members = members
        for sid, entry in self._entries.items():
            entry.owned = self.owns(sid)
        self._rebuild_heap()
        owned = sum(e.owned for e in self._entries.values())
        logger.info(
            "scheduler: %d live replica(s) share the schedules; this one owns %d of %d",
            len(members),
            owned,
            len(self._entries),
            extra={"event": "scheduler.members", "replicas": len(members), "owned": owned},
        )

    def _due(self, entry: _Entry, at: datetime) -> datetime:
        return at if entry.owned else at + self.backup_delay

    def _rebuild_heap(self) -> None:
        self._heap = [
            (self._due(e, e.next_at), str(sid), sid)
            for sid, e in self._entries.items()
            if e.next_at is not None
        ]
        heapq.heapify(self._heap)

    async def _guarded(self, work: Any, step: str) -> None:
        await self._steps[step].attempt(lambda: work)

    def _next_due(self) -> datetime:
        return self._heap[0][0] if self._heap else self.clock() + timedelta(seconds=self.poll_s)

    async def _wait(self, stop: asyncio.Event, until: datetime) -> None:
        # Never longer than a poll interval: ``until`` is on the wall clock, which may step.
        delay = min((until - self.clock()).total_seconds(), self.poll_s)
        if delay <= 0:
            return
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._changed.wait())}
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _fire_due(self, now: datetime) -> None:
        due: list[_Entry] = []
        # A bounded batch per turn: the loop heartbeats, polls for changes and reads the clock
        # again between batches (the first pass after a load settles every schedule).
        while self._heap and self._heap[0][0] <= now and len(due) < MAX_BATCH:
            _, _, sid = heapq.heappop(self._heap)
            entry = self._entries.get(sid)
            if entry is not None:
                due.append(entry)
        owned = [e for e in due if e.owned]
        if owned:
            await self._settle_batch(owned, now)
        if len(owned) < len(due):
            # Apart from the owner's: a backup that finds work may race a late owner, and its
            # lost race must not send the owned batch down the one-by-one path.
            backups = await self._unsettled([e for e in due if not e.owned], now)
            if backups:
                await self._settle_batch(backups, now)

    async def _unsettled(self, entries: list[_Entry], now: datetime) -> list[_Entry]:
        """Of ticks other replicas own, those still unsettled (one MGET of their watermarks,
        and the misfire policy on each); the others go back on the heap for their next tick."""
        try:
            marks = await self.gate.watermarks([e.schedule.id for e in entries])
        except Exception:
            return entries  # cannot tell: settle them all, the transaction decides
        pending: list[_Entry] = []
        for entry, mark in zip(entries, marks, strict=True):
            schedule = entry.schedule
            if mark is not None and mark >= schedule.updated_at:
                # The usual case, in one cron step: the owner settled every tick up to now.
                following = self._next_tick(schedule, mark)
                if following is None or following > now:
                    self._push(entry, following)
                    continue
            if self._plan(schedule, mark, now=now).moves(mark):
                pending.append(entry)
            else:
                self._push(entry, self._next_tick(schedule, now))
        return pending

    async def _settle_batch(self, entries: list[_Entry], now: datetime) -> None:
        """Settle ``entries`` in one transaction; if it lost a race with another replica,
        settle each on its own (each decides again from its watermark as it is now)."""
        try:
            outcomes = await self.gate.settle_many(
                [self._request(e.schedule, now) for e in entries]
            )
        except Exception as exc:
            for entry in entries:
                self._failed(entry, now, exc)
            return
        if outcomes is None:
            self.stats.batch_conflicts += 1
            await asyncio.gather(*(self._bounded(e, now) for e in entries))
            return
        self._settling.recovered()
        for entry, outcome in zip(entries, outcomes, strict=True):
            self._settled(entry, outcome, now)

    async def _bounded(self, entry: _Entry, now: datetime) -> None:
        # Each settle holds a pooled Redis connection for one transaction: bound them.
        async with self._slots:
            await self._settle(entry, now)

    async def _settle(self, entry: _Entry, now: datetime) -> None:
        try:
            outcome = await self.gate.settle(*self._request(entry.schedule, now))
        except Exception as exc:
            self._failed(entry, now, exc)
            return
        self._settling.recovered()
        self._settled(entry, outcome, now)

    def _plan(
        self, schedule: ScheduledJob, watermark: datetime | None, *, now: datetime
    ) -> FirePlan:
        return plan_fire(schedule, watermark=watermark, now=now, catch_up_ms=self.catch_up_ms)

    def _spec(self, schedule: ScheduledJob, tick: datetime) -> JobSpec:
        return spec_for_schedule(schedule, tick, keep_completed=self.keep_completed)

    def _request(self, schedule: ScheduledJob, now: datetime) -> Settling:
        return (schedule.id, partial(self._plan, schedule, now=now), partial(self._spec, schedule))

    def _failed(self, entry: _Entry, now: datetime, exc: Exception) -> None:
        self._settling.failed(exc, schedule_id=str(entry.schedule.id))
        # retry soon, without a busy loop
        self._push(entry, now + timedelta(seconds=min(self.poll_s, 1.0)))

    def _settled(self, entry: _Entry, outcome: Outcome, now: datetime) -> None:
        schedule = entry.schedule
        self.reports.record(schedule, outcome)
        if outcome.fired is not None and not entry.owned:
            self.stats.backup_fires += 1
        following = None if outcome.fired is None else self._next_tick(schedule, outcome.fired)
        if following is not None and following <= now:
            self._push(entry, following)  # a late tick fired alone: the next one is due too
        else:
            self._push(entry, self._next_tick(schedule, now))

    def _next_tick(self, schedule: ScheduledJob, after: datetime) -> datetime | None:
        return schedule.cron.next_fire(after.replace(microsecond=0), schedule.zone)

    def _push(self, entry: _Entry, at: datetime | None) -> None:
        entry.next_at = at
        if at is not None:
            heapq.heappush(
                self._heap, (self._due(entry, at), str(entry.schedule.id), entry.schedule.id)
            )
