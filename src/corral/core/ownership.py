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
