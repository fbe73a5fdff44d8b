"""The scheduler loop's two heaps: the next tick of each schedule this replica owns, and the
next check of each schedule of a replica it covers (a tick plus the backup delay)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from corral.core.schedules import ScheduledJob

#: Due ticks taken per turn: the loop heartbeats, polls for changes and reads the clock again
#: between batches (the first pass after a load settles every schedule it owns).
MAX_BATCH = 256


@dataclass(slots=True)
class Entry:
    schedule: ScheduledJob
    #: When this replica settles (or, not its owner, checks) the schedule next: a tick, or
    #: "now" after a change; None while it has nothing to do with it.
    next_at: datetime | None
    owner: str = ""


def next_tick(schedule: ScheduledJob, after: datetime) -> datetime | None:
    return schedule.cron.next_fire(after.replace(microsecond=0), schedule.zone)


class TickHeaps:
    def __init__(self, me: str, delay: timedelta, tracks: Callable[[Entry], bool]) -> None:
        self.me = me
        self.delay = delay
        self.tracks = tracks
        self.owned: list[tuple[datetime, UUID]] = []
        self.backup: list[tuple[datetime, UUID]] = []

    def _heap_of(self, entry: Entry) -> list[tuple[datetime, UUID]]:
        return self.owned if entry.owner == self.me else self.backup

    def _due(self, entry: Entry, at: datetime) -> datetime:
        return at if entry.owner == self.me else at + self.delay

    def push(self, entry: Entry, at: datetime | None) -> None:
        entry.next_at = at if self.tracks(entry) else None
        if entry.next_at is not None:
            heapq.heappush(
                self._heap_of(entry), (self._due(entry, entry.next_at), entry.schedule.id)
            )

    def rebuild(self, entries: Mapping[UUID, Entry]) -> None:
        self.owned, self.backup = [], []
        for sid, entry in entries.items():
            if not self.tracks(entry):
                entry.next_at = None
            elif entry.next_at is not None:
                self._heap_of(entry).append((self._due(entry, entry.next_at), sid))
        heapq.heapify(self.owned)
        heapq.heapify(self.backup)

    def pop_due(self, owned: bool, entries: Mapping[UUID, Entry], now: datetime) -> list[Entry]:
        heap = self.owned if owned else self.backup
        due: list[Entry] = []
        while heap and heap[0][0] <= now and len(due) < MAX_BATCH:
            entry = entries.get(heapq.heappop(heap)[1])
            if entry is not None:
                due.append(entry)
        return due

    def next_due(self) -> datetime | None:
        tops = [h[0][0] for h in (self.owned, self.backup) if h]
        return min(tops) if tops else None

    def next_owned(self) -> datetime | None:
        return self.owned[0][0] if self.owned else None
