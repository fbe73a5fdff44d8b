"""The scheduler loop: keep every enabled schedule's next tick, settle due ticks exactly once,
and reload definitions when they change.

Every replica runs the same loop; exactly-once comes from the gate's atomic
watermark-and-enqueue (see ``adapters/bullmq/fires.py``), so there is no leader to elect and no
takeover gap: when one replica dies the others are already firing the same ticks.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from corral.core.executions import MissedTicks
from corral.core.jobs import DEFAULT_REMOVE_ON_COMPLETE, Retention
from corral.core.ports import ScheduleStore
from corral.core.schedules import (
    DEFAULT_CATCH_UP_MS,
    ScheduledJob,
    fire_id,
    plan_fire,
)
from corral.core.throttle import LogThrottle
from corral.services.firing import Gate, OnMissed, Outcome, spec_for_schedule
from corral.services.monitoring import MAX_CLOCK_SKEW_S, skew_text
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_CONCURRENT_SETTLES = 32
MAX_BATCH = 256


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str:
    return "?" if moment is None else moment.isoformat()


@dataclass(slots=True)
class _Entry:
    schedule: ScheduledJob
    next_at: datetime | None


@dataclass(slots=True)
class SchedulerStats:
    fired: int = 0
    skipped: int = 0
    lost_races: int = 0
    lateness_ms_max: float = 0.0
    lateness_ms_sum: float = 0.0
    reloads: int = 0


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
    ) -> None:
        self.keep_completed = keep_completed
        self.on_fired = on_fired
        self.on_missed = on_missed
        self.store = store
        self.gate = gate
        self.clock = clock
        self.catch_up_ms = catch_up_ms
        self.poll_s = poll_s
        self.stats = SchedulerStats()
        self.id = uuid4().hex
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
        #: This process's clock minus Redis's TIME (s), as the last heartbeat measured it.
        self.clock_skew_s: float | None = None
        self._skew_throttle = LogThrottle(interval_s=60.0)

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
                schedule=schedule, next_at=old.next_at if unchanged and old else now
            )
        self._entries = entries
        self._heap = [(e.next_at, str(sid), sid) for sid, e in entries.items() if e.next_at]
        heapq.heapify(self._heap)
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
                now = self.clock()
                # Also when the next poll is further off than one interval: the wall clock
                # stepped back, and waiting for it would stop heartbeats and reloads until the
                # clock is back where it was (an hour, after a one-hour step).
                stepped_back = next_poll - now > timedelta(seconds=self.poll_s)
                if now >= next_poll or stepped_back or self._changed.is_set():
                    await self._guarded(self._maybe_reload(), "reload")
                    await self._guarded(self._heartbeat(), "heartbeat")
                    next_poll = self.clock() + timedelta(seconds=self.poll_s)
                await self._fire_due(self.clock())
                await self._wait(stop, min(self._next_due(), next_poll))
        finally:
            await self._guarded(self.gate.heartbeat(self.id, stopping=True), "heartbeat")

    async def _heartbeat(self) -> None:
        skew = await self.gate.heartbeat(self.id)
        if skew is not None:
            self._note_skew(skew)

    def _note_skew(self, skew: float) -> None:
        """Warn once a minute while this clock is more than a second off Redis's: ticks fire
        when this clock reaches them, so that much early or late."""
        self.clock_skew_s = skew
        if abs(skew) <= MAX_CLOCK_SKEW_S:
            if self._skew_throttle.clear():
                logger.info(
                    "scheduler clock is within %g s of Redis TIME again (%+.3f s)",
                    MAX_CLOCK_SKEW_S,
                    skew,
                    extra={"event": "scheduler.clock_ok", "skew_s": skew},
                )
            return
        held = self._skew_throttle.allow(time.monotonic())
        if held is not None:
            logger.warning(
                "scheduler clock is %s (more than %g s): this replica fires ticks up to that "
                "much %s; check the host's time sync (NTP)",
                skew_text(skew),
                MAX_CLOCK_SKEW_S,
                "early" if skew > 0 else "late",
                extra={"event": "scheduler.clock_skew", "skew_s": skew},
            )

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
        due: list[UUID] = []
        # A bounded batch per turn: the loop heartbeats, polls for changes and reads the clock
        # again between batches (the first pass after a load settles every schedule).
        while self._heap and self._heap[0][0] <= now and len(due) < MAX_BATCH:
            _, _, sid = heapq.heappop(self._heap)
            if sid in self._entries:
                due.append(sid)
        if due:
            await asyncio.gather(*(self._bounded(self._entries[sid], now) for sid in due))

    async def _bounded(self, entry: _Entry, now: datetime) -> None:
        # Each settle holds a pooled Redis connection for one transaction: bound them.
        async with self._slots:
            await self._settle(entry, now)

    async def _settle(self, entry: _Entry, now: datetime) -> None:
        schedule = entry.schedule
        try:
            outcome = await self.gate.settle(
                schedule.id,
                lambda wm: plan_fire(schedule, watermark=wm, now=now, catch_up_ms=self.catch_up_ms),
                lambda tick: spec_for_schedule(schedule, tick, keep_completed=self.keep_completed),
            )
        except Exception as exc:
            self._settling.failed(exc, schedule_id=str(schedule.id))
            # retry soon, without a busy loop
            self._push(entry, now + timedelta(seconds=min(self.poll_s, 1.0)))
            return
        self._settling.recovered()
        self._record(schedule, outcome)
        following = None if outcome.fired is None else self._next_tick(schedule, outcome.fired)
        if following is not None and following <= now:
            self._push(entry, following)  # a late tick fired alone: the next one is due too
        else:
            self._push(entry, self._next_tick(schedule, now))

    def _record(self, schedule: ScheduledJob, outcome: Outcome) -> None:
        if outcome.lost_race:
            self.stats.lost_races += 1
        first, last, settled_ms = outcome.first_skipped, outcome.last_skipped, outcome.settled_ms
        if outcome.skipped:
            self.stats.skipped += outcome.skipped
            logger.warning(
                "schedule %s (%s): %d missed ticks skipped (%s to %s)",
                schedule.id,
                schedule.name,
                outcome.skipped,
                _iso(first),
                _iso(last),
                extra={"event": "scheduler.missed", "schedule_id": str(schedule.id)},
            )
            if self.on_missed is not None and first is not None and last is not None:
                missed = MissedTicks(count=outcome.skipped, first=first, last=last)
                at = datetime.fromtimestamp(settled_ms / 1000, UTC) if settled_ms else self.clock()
                self.on_missed(schedule, missed, at)
        if outcome.fired is not None and settled_ms is not None:
            lateness = settled_ms - outcome.fired.timestamp() * 1000
            self.stats.fired += 1
            if self.on_fired is not None:
                fired_id = fire_id(schedule.id, outcome.fired)
                self.on_fired(fired_id, settled_ms, schedule.handler_name)
            self.stats.lateness_ms_sum += lateness
            self.stats.lateness_ms_max = max(self.stats.lateness_ms_max, lateness)
            logger.info(
                "schedule %s (%s) fired tick %s (%.0f ms late)",
                schedule.id,
                schedule.name,
                outcome.fired.isoformat(),
                lateness,
                extra={"event": "scheduler.fired", "schedule_id": str(schedule.id)},
            )

    def _next_tick(self, schedule: ScheduledJob, after: datetime) -> datetime | None:
        return schedule.cron.next_fire(after.replace(microsecond=0), schedule.zone)

    def _push(self, entry: _Entry, at: datetime | None) -> None:
        entry.next_at = at
        if at is not None:
            heapq.heappush(self._heap, (at, str(entry.schedule.id), entry.schedule.id))
