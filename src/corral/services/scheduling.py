"""The scheduler loop: keep the next tick of every schedule this replica owns, settle due
ticks exactly once, and reload definitions when they change.

Every replica runs the same loop; exactly-once comes from the gate's atomic
watermark-and-enqueue (see ``adapters/bullmq/fires.py``), so there is no leader to elect and no
takeover gap. The replicas share the work without agreeing on anything: each settles on time
the schedules it owns (rendezvous hashing over the live replicas, ``core.ownership``) and
publishes a promise after each turn; another replica checks a schedule's ticks itself,
:data:`BACKUP_DELAY_S` late, only while its owner's promise is missing, stale or made from
another view (docs/design.md, "Sharing the work").
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from corral.core.jobs import DEFAULT_REMOVE_ON_COMPLETE, Retention
from corral.core.ownership import owner
from corral.core.ports import ScheduleStore
from corral.core.schedules import DEFAULT_CATCH_UP_MS, FirePlan, ScheduledJob
from corral.services.fire_reports import FireReports
from corral.services.firing import Gate, OnMissed, Outcome
from corral.services.promises import Promises, next_poll
from corral.services.settling import Settler
from corral.services.tick_heaps import Entry, TickHeaps, next_tick
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: How long after a tick a replica that does not own the schedule checks that its owner fired
#: it (and fires it if not): the most a dead or stalled owner's tick is late. Well above an
#: owner's usual lateness (tens of ms), so the check rarely finds work, and far below the
#: misfire threshold, so a tick fired by a backup still fires on its own.
BACKUP_DELAY_S = 0.5
#: A replica counts as live, and owns a share of the schedules, while its last heartbeat is at
#: most this many poll intervals old (one heartbeat per poll).
LIVE_POLLS = 3
#: One live replica (chosen like a schedule's owner) reads the store's change marker every
#: poll, announces a change over pub/sub and publishes the marker with its heartbeat, which the
#: others read with theirs; they also read the store themselves this often, should the
#: publishing replica be one that does not publish (an older version, during a rolling
#: upgrade). Nudges (every change made through Corral) reach all replicas at once.
SLOW_POLL_S = 60.0
_POLLER = UUID(int=0)
_SECOND = timedelta(seconds=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.clock = clock
        self.poll_s = poll_s
        self.backup_delay = timedelta(seconds=backup_delay_s)
        self.reports = FireReports(on_fired=on_fired, on_missed=on_missed, clock=clock)
        self.stats = self.reports.stats
        self.settler = Settler[Entry](
            gate,
            stats=self.stats,
            catch_up_ms=catch_up_ms,
            keep_completed=keep_completed,
            settled=self._settled,
            failed=self._failed,
        )
        self.id = uuid4().hex
        #: The live replicas (this one included) as the last heartbeat read them.
        self.members: tuple[str, ...] = ()
        self.promises = Promises(delay=self.backup_delay, poll_s=poll_s)
        self._announce = announce
        self._entries: dict[UUID, Entry] = {}
        self.heaps = TickHeaps(self.id, self.backup_delay, self._tracks)
        self._marker: str | None = None
        #: The last marker the polling replica published that this one acted on.
        self._published: str | None = None
        self._slow_poll_at = datetime.min.replace(tzinfo=UTC)
        self._busy = False
        self._changed = asyncio.Event()
        #: Each schedule of the owned batch in flight -> (its definition, the time its next
        #: tick follows, that tick), when the batch's promise had to compute them: reused when
        #: it is settled as planned, rather than stepping the cron again (~20 us a schedule).
        self._planned: dict[UUID, tuple[ScheduledJob, datetime, datetime | None]] = {}
        #: The current wait's future (see :meth:`_wait`): a nudge or the stop resolves it.
        self._wake: asyncio.Future[None] | None = None
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
            for step in ("reload", "heartbeat", "promises")
        }

    @property
    def clock_skew_s(self) -> float | None:
        """This process's clock minus Redis's TIME (s), as the last heartbeat measured it."""
        return self.reports.clock_skew_s

    def nudge(self) -> None:
        """Something changed (a pub/sub message): reload on the next turn."""
        self._changed.set()
        self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def idle(self) -> bool:
        """Steady (for benchmarks and tests): no batch in flight, nothing overdue, and no other
        replica's ticks to check."""
        now = self.clock()
        top = self.heaps.next_owned()
        return not (self._busy or self.promises.covered or (top is not None and top <= now))

    async def reload(self) -> None:
        """Reload the enabled schedules. Unchanged ones keep their next tick; new or changed
        ones are settled at once (which also applies the misfire policy to them)."""
        marker = await self.store.change_marker()
        schedules = await self.store.list_enabled()
        now = self.clock()
        entries: dict[UUID, Entry] = {}
        for schedule in schedules:
            old = self._entries.get(schedule.id)
            # The whole definition, not ``updated_at``: that never moves back, so a change
            # written by a process whose clock is behind the last writer's keeps the stored time.
            if old is not None and old.schedule == schedule:
                entries[schedule.id] = old
            else:
                entry = Entry(schedule=schedule, next_at=now, owner=self._owner(schedule.id))
                entries[schedule.id] = entry
                if not self._tracks(entry):
                    entry.next_at = None
        self._entries = entries
        self._marker = marker
        self._new_view()
        self.stats.reloads += 1
        self.loaded.set()
        logger.info(
            "scheduler loaded %d enabled schedules",
            len(entries),
            extra={"event": "scheduler.loaded", "count": len(entries)},
        )

    async def _maybe_reload(self, now: datetime) -> None:
        nudged = self._changed.is_set()
        self._changed.clear()
        if nudged:
            await self.reload()
            return
        if not self._polls_store() and now < self._slow_poll_at:
            return
        self._slow_poll_at = now + timedelta(seconds=SLOW_POLL_S)
        if await self.store.change_marker() != self._marker:
            await self.reload()
            if self._announce is not None and self._polls_store():
                await self._announce()  # a change made behind Corral's back: tell the others

    def _polls_store(self) -> bool:
        return len(self.members) <= 1 or owner(_POLLER, self.members) == self.id

    async def run(self, stop: asyncio.Event) -> None:
        await self._guarded(self._heartbeat(), "heartbeat")
        await self.reload()
        poll_at = next_poll(self.clock(), self.poll_s)
        # One task for the whole run wakes the current wait when ``stop`` is set.
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._wake_up())
        try:
            while not stop.is_set():
                # Due ticks first: the poll (a SQL query, the heartbeat's round trips) drifts
                # through the second and would otherwise delay the ticks it lands on.
                await self._fire_due(self.clock())
                now = self.clock()
                if self.promises.due(now):
                    await self._guarded(self._check_promises(now), "promises")
                # Also when the next poll is further off than one interval: the wall clock
                # stepped back, and waiting for it would stop heartbeats and reloads until the
                # clock is back where it was (an hour, after a one-hour step).
                stepped_back = poll_at - now > timedelta(seconds=self.poll_s)
                if now >= poll_at or stepped_back or self._changed.is_set():
                    await self._guarded(self._maybe_reload(now), "reload")
                    await self._guarded(self._heartbeat(), "heartbeat")
                    poll_at = next_poll(self.clock(), self.poll_s)
                await self._guarded(self._promise(), "promises")
                until = min(self._next_due(), poll_at, self.promises.check_at or poll_at)
                await self._wait(stop, until)
        finally:
            stopping.cancel()
            await self._guarded(self.gate.heartbeat(self.id, stopping=True), "heartbeat")

    async def _heartbeat(self) -> None:
        within_ms = round(self.poll_s * LIVE_POLLS * 1000)
        last_skew = self.reports.clock_skew_s
        if last_skew is None:  # the first: measure the skew before writing it
            skew = await self.gate.heartbeat(self.id, promise=self.promises.promised)
            if skew is not None:
                self.reports.note_skew(skew)
            self._set_members(await self.gate.schedulers(within_ms=within_ms))
            return
        # One round trip: the beat, who is live, and the others' promises.
        others = [m for m in self.members if m != self.id]
        polls = self._polls_store()
        beat = await self.gate.beat(
            self.id,
            skew=last_skew,
            promise=self.promises.promised,
            others=others,
            within_ms=within_ms,
            marker=self._marker if polls else None,
        )
        self.reports.note_skew(beat.skew)
        published = beat.marker
        if not polls and published not in (None, self._marker, self._published):
            # The poller saw the definitions change: reload (once per published marker, so a
            # poller that cannot read the store, and keeps publishing an old one, costs the
            # others nothing).
            self._published = published
            self._changed.set()
        view = self.promises.view
        self._set_members(beat.live)
        if others and self.promises.view == view:  # else they are read again at once
            self._cover(self.promises.judge(others, beat.promises, self.clock()))

    def owns(self, schedule_id: UUID) -> bool:
        """Whether this replica settles the schedule on time (else it is its owner's backup).
        Alone, or before it has read the live replicas, it owns every schedule."""
        return self._owner(schedule_id) == self.id

    def _owner(self, schedule_id: UUID) -> str:
        if len(self.members) <= 1:
            return self.id
        return owner(schedule_id, self.members) or self.id

    def _tracks(self, entry: Entry) -> bool:
        return entry.owner == self.id or entry.owner in self.promises.covered

    def _set_members(self, live: Iterable[str]) -> None:
        members = tuple(sorted({*live, self.id}))
        if members == self.members:
            return
        self.members = members
        now = self.clock()
        for sid, entry in self._entries.items():
            gained = entry.owner != self.id and self.owns(sid)
            entry.owner = self._owner(sid)
            if gained and entry.next_at is None:
                entry.next_at = now  # its old owner may have left it behind: settle it now
        self._new_view()
        owned = sum(e.owner == self.id for e in self._entries.values())
        logger.info(
            "scheduler: %d live replica(s) share the schedules; this one owns %d of %d",
            len(members),
            owned,
            len(self._entries),
            extra={"event": "scheduler.members", "replicas": len(members), "owned": owned},
        )

    def _new_view(self) -> None:
        """Members or definitions changed: rebuild the heaps, read the promises at once."""
        self.promises.new_view(self.members, self._marker, self.clock())
        self.heaps.rebuild(self._entries)

    async def _promise(self) -> None:
        """Publish the promise (when it changed): the next tick this replica owns."""
        text = self.promises.to_publish(self.heaps.next_owned(), self.members)
        if text is not None:
            await self.gate.promise(self.id, text)
            self.promises.promised = text

    async def _check_promises(self, now: datetime) -> None:
        """Read the other replicas' promises and cover those that failed theirs."""
        others = [m for m in self.members if m != self.id]
        if others:
            self._cover(self.promises.judge(others, await self.gate.promises(others), now))

    def _cover(self, added: dict[str, datetime] | None) -> None:
        """The covered replicas changed: check the newly covered ones' ticks from when they
        may be unsettled, forget the others'."""
        if added is None:
            return
        self.stats.coverage_changes += 1
        for entry in self._entries.values():
            if entry.owner in added:
                entry.next_at = added[entry.owner]
        self.heaps.rebuild(self._entries)
        logger.debug(
            "scheduler: checking the ticks of %d other replica(s)",
            len(self.promises.covered),
            extra={"event": "scheduler.covering", "replicas": len(self.promises.covered)},
        )

    async def _guarded(self, work: Any, step: str) -> None:
        await self._steps[step].attempt(lambda: work)

    def _next_due(self) -> datetime:
        due = self.heaps.next_due()
        return due if due is not None else self.clock() + timedelta(seconds=self.poll_s)

    async def _wait(self, stop: asyncio.Event, until: datetime) -> None:
        """Wait until ``until``, a nudge or ``stop``: one future and one timer per wait (not a
        task per thing to wait for: the loop waits several times a second)."""
        # Never longer than a poll interval: ``until`` is on the wall clock, which may step.
        delay = min((until - self.clock()).total_seconds(), self.poll_s)
        if delay <= 0 or stop.is_set() or self._changed.is_set():
            return
        # Whole milliseconds, rounded up: uvloop's timers count in them and may fire up to one
        # early, which left the tick not yet due and the loop waking again and again for the
        # rest of that millisecond.
        delay = math.ceil(delay * 1000) / 1000
        aio = asyncio.get_running_loop()
        wake = self._wake = aio.create_future()
        timer = aio.call_later(delay, self._wake_up)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def _fire_due(self, now: datetime) -> None:
        self._busy = True
        try:
            owned = self.heaps.pop_due(True, self._entries, now)
            if owned:
                promise = _PromiseAfter(self, owned, now)
                try:
                    if await self.settler.batch(owned, now, promise=(self.id, promise)):
                        self.promises.promised = promise.text or self.promises.promised
                finally:
                    self._planned.clear()
            # Apart from the owner's: a backup that finds work may race a late owner, and its
            # lost race must not send the owned batch down the one-by-one path. A backup plans
            # as of the delay ago, so it never fires a tick younger than the delay.
            checks = self.heaps.pop_due(False, self._entries, now)
            if checks:
                horizon = now - self.backup_delay
                backups = await self.settler.unsettled(checks, horizon, self.heaps.push)
                if backups:
                    await self.settler.batch(backups, horizon)
        finally:
            self._busy = False
            self.reports.turn_done()

    def _failed(self, entry: Entry, now: datetime) -> None:
        self.heaps.push(entry, now + timedelta(seconds=min(self.poll_s, 1.0)))  # soon, not busy

    def _settled(self, entry: Entry, outcome: Outcome, now: datetime) -> None:
        schedule = entry.schedule
        self.reports.record(schedule, outcome)
        if outcome.fired is not None and entry.owner != self.id:
            self.stats.backup_fires += 1
        # The tick after the fired one (due too if the fired one was late and fired alone;
        # else no tick lies between the two), or, if none fired, the first after ``now``.
        after = now if outcome.fired is None else outcome.fired
        planned = self._planned.get(schedule.id)
        if planned is not None and planned[0] is schedule and planned[1] == after:
            self.heaps.push(entry, planned[2])
        else:
            self.heaps.push(entry, next_tick(schedule, after))


class _PromiseAfter:
    """The promise to publish in an owned batch's transaction: the earliest tick this replica
    owns once the batch is settled, computed from the batch's plans as :meth:`_settled` will
    push each entry back (the tick after the fired one, else the first after ``now``), so the
    promise the loop computes after the turn is this one and needs no write of its own."""

    def __init__(self, loop: SchedulerLoop, batch: Sequence[Entry], now: datetime) -> None:
        self.loop = loop
        self.batch = batch
        self.now = now
        #: What the callback returned (None: unchanged, or not called).
        self.text: str | None = None

    def __call__(self, plans: Sequence[FirePlan | None]) -> str | None:
        # The rest of the owned heap (the batch was popped from it), then each batch entry.
        next_at = self.loop.heaps.next_owned()
        afters = [
            (entry, self.now if plan is None or plan.fire is None else plan.fire)
            for entry, plan in zip(self.batch, plans, strict=True)
        ]
        # A next tick is a whole second strictly after its ``after``: when the heap's top is no
        # later than the earliest that can be, it is the promise, and the batch's own next ticks
        # are left to after the EXEC (this runs while the batch waits to commit; with many
        # schedules, the usual case: the next second's ticks are on the heap).
        earliest = min(after for _, after in afters).replace(microsecond=0) + _SECOND
        if next_at is None or next_at > earliest:
            planned = self.loop._planned
            for entry, after in afters:
                following = next_tick(entry.schedule, after)
                planned[entry.schedule.id] = (entry.schedule, after, following)
                if following is not None and (next_at is None or following < next_at):
                    next_at = following
        self.text = self.loop.promises.to_publish(next_at, self.loop.members)
        return self.text
