"""This scheduler replica's side of the promises (``core.ownership``): the promise it last
published, when to read the others' again, and which replicas it covers because theirs failed.
No I/O: the loop reads and writes through the gate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from corral.core.ownership import promise_text, trusted_until, view_of

#: Where in the second a one-second (or longer) poll falls; see :func:`next_poll`.
POLL_PHASE = timedelta(seconds=0.25)


def next_poll(now: datetime, poll_s: float) -> datetime:
    """A poll interval after ``now``, moved to the nearest quarter past a second (with
    one-second polls or longer): clear of the whole seconds where cron ticks fall, and after
    the owners of those ticks have published their next promises, so the one read per poll
    (with the heartbeat) keeps each trusted for the whole interval."""
    at = now + timedelta(seconds=poll_s)
    if poll_s < 1:
        return at
    snapped = at.replace(microsecond=0) + POLL_PHASE
    if at - snapped > timedelta(seconds=0.5):
        snapped += timedelta(seconds=1)
    return snapped


class Promises:
    def __init__(self, *, delay: timedelta, poll_s: float) -> None:
        self.delay_ms = int(delay.total_seconds() * 1000)
        self.poll_ms = int(poll_s * 1000)
        self.view = ""
        #: The promise last published (refreshed by each heartbeat).
        self.promised: str | None = None
        #: When to read the others' promises again (None: alone, nothing to read).
        self.check_at: datetime | None = None
        #: The other replicas whose schedules this one checks.
        self.covered: frozenset[str] = frozenset()

    def new_view(self, members: Sequence[str], marker: str | None, now: datetime) -> None:
        """Members or definitions changed: every promise is to be read again, at once."""
        self.view = view_of(members, marker)
        self.check_at = now if len(members) > 1 else None
        self.covered &= set(members)

    def due(self, now: datetime) -> bool:
        return self.check_at is not None and self.check_at <= now

    def to_publish(self, next_at: datetime | None, members: Sequence[str]) -> str | None:
        """The promise to publish when it changed (alone, none): ``next_at`` is the earliest
        tick this replica owns."""
        next_ms = None if next_at is None else int(next_at.timestamp() * 1000)
        text = promise_text(next_ms, self.view)
        return text if text != self.promised and len(members) > 1 else None

    def judge(
        self, others: Sequence[str], promises: Sequence[str | None], now: datetime
    ) -> dict[str, datetime] | None:
        """Decide whom to cover from the others' ``promises``. Returns the newly covered ones,
        each with the time from which its ticks may be unsettled (its stale promise's tick, or
        ``now``), or None when the covered set did not change."""
        now_ms = int(now.timestamp() * 1000)
        # Trusted ones again when the trust runs out; covered ones (are they back?) at the next
        # heartbeat, which reads every promise: this is the fallback should it fail.
        check_ms = now_ms + 2 * self.poll_ms
        covered: dict[str, datetime] = {}
        for member, promise in zip(others, promises, strict=True):
            until = trusted_until(promise, self.view, self.delay_ms)
            if until is not None and until <= now_ms:
                stale = datetime.fromtimestamp((until - self.delay_ms) / 1000, UTC)
                covered[member] = min(stale, now) if until > 0 else now
            elif until is not None:
                check_ms = min(check_ms, until)
        self.check_at = datetime.fromtimestamp(check_ms / 1000, UTC)
        if frozenset(covered) == self.covered:
            return None
        added = {m: since for m, since in covered.items() if m not in self.covered}
        self.covered = frozenset(covered)
        return added
