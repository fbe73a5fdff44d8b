"""The scheduler loop: keep the next tick of every schedule this replica owns, settle due
ticks exactly once, and reload definitions when they change.

Every replica runs the same loop; exactly-once comes from the gate's atomic
watermark-and-enqueue (see ``adapters/bullmq/fires.py``), so there is no leader to elect and no
takeover gap. The replicas share the work without agreeing on anything: each one reads the live
replicas from the heartbeats and settles on time the schedules it owns (rendezvous hashing,
``core.ownership``). After each turn it publishes a promise (its next due tick, and the view of
replicas and definitions it worked from); the others trust it until that tick plus
:data:`BACKUP_DELAY_S` and only then read it again. A replica whose promise is missing, stale
or made from another view is covered: the others keep its schedules' ticks too and settle,
:data:`BACKUP_DELAY_S` late, those still unsettled, so a dead or stalled replica's ticks fire at
most that much late. So a replica computes ticks only for the schedules it owns, unless another
replica fails it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from corral.core.jobs import DEFAULT_REMOVE_ON_COMPLETE, Retention
from corral.core.ownership import owner, promise_text, trusted_until, view_of
from corral.core.ports import ScheduleStore
from corral.core.schedules import DEFAULT_CATCH_UP_MS, ScheduledJob
from corral.services.fire_reports import FireReports
from corral.services.firing import Gate, OnMissed, Outcome
from corral.services.settling import Settler
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_BATCH = 256
#: How long after a tick a replica that does not own the schedule checks that its owner fired
#: it (and fires it if not): the most a dead or stalled owner's tick is late. Well above an
#: owner's usual lateness (tens of ms), so the check rarely finds work, and far below the
#: misfire threshold, so a tick fired by a backup still fires on its own.
BACKUP_DELAY_S = 0.5
#: A replica counts as live, and owns a share of the schedules, while its last heartbeat is at
#: most this many poll intervals old (one heartbeat per poll).
LIVE_POLLS = 3
#: One live replica (chosen like a schedule's owner) reads the store's change marker every
#: poll and announces a change over pub/sub; the others read it this often, in case a nudge
#: is lost. Nudges (every change made through Corral) reach all replicas at once.
SLOW_POLL_S = 5.0
_POLLER = UUID(int=0)
POLL_PHASE = timedelta(seconds=0.25)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Entry:
    schedule: ScheduledJob
    #: When this replica settles (or, not its owner, checks) the schedule next: a tick, or
    #: "now" after a change; None while it has nothing to do with it.
    next_at: datetime | None
    owner: str = ""


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
        self.settler = Settler[_Entry](
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
        #: The other replicas whose schedules this one checks (see the module docstring).
        self.covered: frozenset[str] = frozenset()
        self._announce = announce
        self._entries: dict[UUID, _Entry] = {}
        self._heap: list[tuple[datetime, UUID]] = []  # the ticks of the schedules it owns
        self._backup: list[tuple[datetime, UUID]] = []  # checks of covered replicas' ticks
        self._marker: str | None = None
        self._view = ""
        self._promised: str | None = None
        self._check_at: datetime | None = None  # when to read the others' promises again
        self._slow_poll_at = datetime.min.replace(tzinfo=UTC)
        self._busy = False
        self._changed = asyncio.Event()
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

    def idle(self) -> bool:
        """Steady (for benchmarks and tests): no batch in flight, nothing overdue, and no other
        replica's ticks to check."""
        now = self.clock()
        return not (self._busy or self.covered or (self._heap and self._heap[0][0] <= now))

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
            if old is not None and old.schedule == schedule:
                entries[schedule.id] = old
            else:
                entry = _Entry(schedule=schedule, next_at=now, owner=self._owner(schedule.id))
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
        next_poll = self._next_poll()
        try:
            while not stop.is_set():
                # Due ticks first: the poll (a SQL query, the heartbeat's round trips) drifts
                # through the second and would otherwise delay the ticks it lands on.
                await self._fire_due(self.clock())
                now = self.clock()
                if self._check_at is not None and self._check_at <= now:
                    await self._guarded(self._check_promises(now), "promises")
                # Also when the next poll is further off than one interval: the wall clock
                # stepped back, and waiting for it would stop heartbeats and reloads until the
                # clock is back where it was (an hour, after a one-hour step).
                stepped_back = next_poll - now > timedelta(seconds=self.poll_s)
                if now >= next_poll or stepped_back or self._changed.is_set():
                    await self._guarded(self._maybe_reload(now), "reload")
                    await self._guarded(self._heartbeat(), "heartbeat")
                    next_poll = self._next_poll()
                await self._guarded(self._promise(), "promises")
                until = min(self._next_due(), next_poll, self._check_at or next_poll)
                await self._wait(stop, until)
        finally:
            await self._guarded(self.gate.heartbeat(self.id, stopping=True), "heartbeat")

    def _next_poll(self) -> datetime:
        """A poll interval on, moved to the nearest quarter past a second (with one-second
        polls or longer): clear of the whole seconds where cron ticks fall, and after the
        owners of those ticks have published their next promises, so one read per poll keeps
        each trusted for the whole interval."""
        at = self.clock() + timedelta(seconds=self.poll_s)
        if self.poll_s < 1:
            return at
        snapped = at.replace(microsecond=0) + POLL_PHASE
        if at - snapped > timedelta(seconds=0.5):
            snapped += timedelta(seconds=1)
        return snapped

    async def _heartbeat(self) -> None:
        within_ms = round(self.poll_s * LIVE_POLLS * 1000)
        last_skew = self.reports.clock_skew_s
        if last_skew is None:  # the first: measure the skew before writing it
            skew = await self.gate.heartbeat(self.id, promise=self._promised)
            if skew is not None:
                self.reports.note_skew(skew)
            self._set_members(await self.gate.schedulers(within_ms=within_ms))
            return
        # One round trip: the beat, who is live, and the others' promises.
        others = [m for m in self.members if m != self.id]
        beat = await self.gate.beat(
            self.id, skew=last_skew, promise=self._promised, others=others, within_ms=within_ms
        )
        self.reports.note_skew(beat.skew)
        view = self._view
        self._set_members(beat.live)
        if others and self._view == view:  # else they are read again at once
            self._judge(others, beat.promises, self.clock())

    def owns(self, schedule_id: UUID) -> bool:
        """Whether this replica settles the schedule on time (else it is its owner's backup).
        Alone, or before it has read the live replicas, it owns every schedule."""
        return self._owner(schedule_id) == self.id

    def _owner(self, schedule_id: UUID) -> str:
        if len(self.members) <= 1:
            return self.id
        return owner(schedule_id, self.members) or self.id

    def _tracks(self, entry: _Entry) -> bool:
        return entry.owner == self.id or entry.owner in self.covered

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
        self.covered = self.covered & set(members)
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
        self._view = view_of(self.members, self._marker)
        self._rebuild()
        self._check_at = self.clock() if len(self.members) > 1 else None

    def _rebuild(self) -> None:
        self._heap, self._backup = [], []
        for sid, entry in self._entries.items():
            if not self._tracks(entry):
                entry.next_at = None
            elif entry.next_at is not None:
                self._heap_of(entry).append((self._due(entry, entry.next_at), sid))
        heapq.heapify(self._heap)
        heapq.heapify(self._backup)

    async def _promise(self) -> None:
        """Publish the promise (when it changed): the next tick this replica owns."""
        next_ms = int(self._heap[0][0].timestamp() * 1000) if self._heap else None
        text = promise_text(next_ms, self._view)
        if text != self._promised and len(self.members) > 1:
            await self.gate.promise(self.id, text)
            self._promised = text

    async def _check_promises(self, now: datetime) -> None:
        """Read the other replicas' promises and cover those that failed theirs."""
        others = [m for m in self.members if m != self.id]
        self._check_at = None
        if not others:
            self._cover(frozenset(), {}, now)
            return
        self._judge(others, await self.gate.promises(others), now)

    def _judge(self, others: list[str], promises: Sequence[str | None], now: datetime) -> None:
        now_ms = int(now.timestamp() * 1000)
        delay_ms = int(self.backup_delay.total_seconds() * 1000)
        # Trusted ones again when the trust runs out; covered ones (are they back?) at the next
        # heartbeat, which reads every promise: this is the fallback should it fail.
        check_ms = now_ms + int(self.poll_s * 2000)
        covered: set[str] = set()
        since: dict[str, datetime] = {}
        for member, promise in zip(others, promises, strict=True):
            until = trusted_until(promise, self._view, delay_ms)
            if until is not None and until <= now_ms:
                covered.add(member)
                if until > 0:  # a stale promise: its ticks from the promised one are unsettled
                    since[member] = datetime.fromtimestamp((until - delay_ms) / 1000, UTC)
            elif until is not None:
                check_ms = min(check_ms, until)
        self._check_at = datetime.fromtimestamp(check_ms / 1000, UTC)
        self._cover(frozenset(covered), since, now)

    def _cover(self, covered: frozenset[str], since: dict[str, datetime], now: datetime) -> None:
        if covered == self.covered:
            return
        added = covered - self.covered
        self.stats.coverage_changes += 1
        self.covered = covered
        for entry in self._entries.values():
            if entry.owner in added:
                entry.next_at = min(since.get(entry.owner, now), now)
        self._rebuild()
        logger.debug(
            "scheduler: checking the ticks of %d other replica(s)",
            len(covered),
            extra={"event": "scheduler.covering", "replicas": len(covered)},
        )

    def _due(self, entry: _Entry, at: datetime) -> datetime:
        return at if entry.owner == self.id else at + self.backup_delay

    def _heap_of(self, entry: _Entry) -> list[tuple[datetime, UUID]]:
        return self._heap if entry.owner == self.id else self._backup

    async def _guarded(self, work: Any, step: str) -> None:
        await self._steps[step].attempt(lambda: work)

    def _next_due(self) -> datetime:
        tops = [h[0][0] for h in (self._heap, self._backup) if h]
        return min(tops) if tops else self.clock() + timedelta(seconds=self.poll_s)

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

    def _pop_due(self, heap: list[tuple[datetime, UUID]], now: datetime) -> list[_Entry]:
        # A bounded batch per turn: the loop heartbeats, polls for changes and reads the clock
        # again between batches (the first pass after a load settles every schedule).
        due: list[_Entry] = []
        while heap and heap[0][0] <= now and len(due) < MAX_BATCH:
            entry = self._entries.get(heapq.heappop(heap)[1])
            if entry is not None:
                due.append(entry)
        return due

    async def _fire_due(self, now: datetime) -> None:
        self._busy = True
        try:
            owned = self._pop_due(self._heap, now)
            if owned:
                await self.settler.batch(owned, now)
            # Apart from the owner's: a backup that finds work may race a late owner, and its
            # lost race must not send the owned batch down the one-by-one path. A backup plans
            # as of the delay ago, so it never fires a tick younger than the delay.
            checks = self._pop_due(self._backup, now)
            if checks:
                horizon = now - self.backup_delay
                backups = await self._unsettled(checks, horizon)
                if backups:
                    await self.settler.batch(backups, horizon)
        finally:
            self._busy = False

    async def _unsettled(self, entries: list[_Entry], now: datetime) -> list[_Entry]:
        """Of ticks other replicas own, those still unsettled (one MGET of their watermarks,
        and the misfire policy on each); the others go back on the heap for their next tick."""
        self.stats.backup_checks += len(entries)
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
            if self.settler.plan(schedule, mark, now=now).moves(mark):
                pending.append(entry)
            else:
                self._push(entry, self._next_tick(schedule, now))
        return pending

    def _failed(self, entry: _Entry, now: datetime) -> None:
        self._push(entry, now + timedelta(seconds=min(self.poll_s, 1.0)))  # soon, not busy

    def _settled(self, entry: _Entry, outcome: Outcome, now: datetime) -> None:
        schedule = entry.schedule
        self.reports.record(schedule, outcome)
        if outcome.fired is not None and entry.owner != self.id:
            self.stats.backup_fires += 1
        following = None if outcome.fired is None else self._next_tick(schedule, outcome.fired)
        if following is not None and following <= now:
            self._push(entry, following)  # a late tick fired alone: the next one is due too
        else:
            self._push(entry, self._next_tick(schedule, now))

    def _next_tick(self, schedule: ScheduledJob, after: datetime) -> datetime | None:
        return schedule.cron.next_fire(after.replace(microsecond=0), schedule.zone)

    def _push(self, entry: _Entry, at: datetime | None) -> None:
        entry.next_at = at if self._tracks(entry) else None
        if entry.next_at is not None:
            due = self._due(entry, entry.next_at)
            heapq.heappush(self._heap_of(entry), (due, entry.schedule.id))
