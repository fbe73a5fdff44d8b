"""Which scheduler replica owns a schedule: rendezvous (highest random weight) hashing. Pure.

Every replica computes the owner from the same inputs (the schedule's id and the ids of the
live replicas), so replicas that see the same set of live replicas agree without talking to
each other; when a replica joins or leaves, only the schedules it gains or loses change owner.
The weight is a keyed hash that is the same in every process (Python's ``hash`` of a string is
not: it is salted per process).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from uuid import UUID


def weight(schedule_id: UUID, member: str) -> int:
    """The rendezvous weight of ``member`` for ``schedule_id``: 64 well-mixed bits."""
    # The id's 16 bytes first: fixed length, so no two (schedule, member) pairs hash the same text.
    digest = blake2b(schedule_id.bytes + member.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(schedule_id: UUID, members: Sequence[str]) -> str | None:
    """The member with the highest weight for the schedule (ties, vanishingly rare, go to the
    greater id, so every replica still picks the same one); None when there are no members."""
    if not members:
        return None
    return max(members, key=lambda m: (weight(schedule_id, m), m))


# -- promises: how a replica vouches for the schedules it owns -------------------------------
#
# After each turn an owner publishes a promise, "<next ms>:<view>": every tick of its schedules
# before <next ms> (its earliest due tick, "-" when it has none) is settled, as of the
# replicas and definitions <view> names. Another replica that sees the same view trusts the
# promise until <next ms> plus the backup delay and so needs no tick of that owner's schedules;
# it checks them (covers the owner) only when the promise is missing, names another view, or
# has gone stale, i.e. the owner did not get past that tick in time.


def view_of(members: Sequence[str], marker: str | None) -> str:
    """A short digest of the live replicas and the definitions' change marker: two replicas
    with the same view agree on every schedule's owner and on what each schedule is."""
    text = "\n".join(members) + "\0" + (marker or "")
    return blake2b(text.encode(), digest_size=6).hexdigest()


def promise_text(next_ms: int | None, view: str) -> str:
    return f"{'-' if next_ms is None else next_ms}:{view}"


def trusted_until(promise: str | None, view: str, delay_ms: int) -> int | None:
    """Until when (epoch ms) a replica with ``view`` may leave the promiser's ticks to it:
    its next tick plus the backup delay (-1: not at all, check its schedules now; None: no
    limit, it has nothing due)."""
    if promise is None:
        return -1
    next_text, _, their_view = promise.partition(":")
    if their_view != view:
        return -1
    if next_text == "-":
        return None
    try:
        return int(next_text) + delay_ms
    except ValueError:
        return -1
