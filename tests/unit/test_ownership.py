"""Rendezvous ownership of schedules among scheduler replicas."""

from __future__ import annotations

from collections import Counter
from uuid import UUID, uuid4

from corral.core.ownership import owner, weight

MEMBERS = ["a3f0", "b71c", "c9d2"]
SCHEDULES = [uuid4() for _ in range(3000)]


def test_every_replica_computes_the_same_owner_whatever_the_order() -> None:
    for schedule in SCHEDULES[:200]:
        assert owner(schedule, MEMBERS) == owner(schedule, list(reversed(MEMBERS)))


def test_the_weight_is_the_same_in_every_process_and_version() -> None:
    """Pinned: replicas running different releases must still agree on the owners (Python's
    own ``hash`` of a str is salted per process and would not)."""
    schedule = UUID("12345678-1234-5678-1234-567812345678")
    assert weight(schedule, "replica-1") == 0xBD37E5B64959AC52


def test_the_schedules_are_split_about_evenly() -> None:
    shares = Counter(owner(s, MEMBERS) for s in SCHEDULES)
    assert set(shares) == set(MEMBERS)
    assert all(800 < n < 1200 for n in shares.values()), shares


def test_a_replica_leaving_moves_only_its_own_schedules() -> None:
    before = {s: owner(s, MEMBERS) for s in SCHEDULES}
    after = {s: owner(s, MEMBERS[:2]) for s in SCHEDULES}
    moved = [s for s in SCHEDULES if before[s] != after[s]]
    assert moved
    assert all(before[s] == MEMBERS[2] for s in moved)


def test_no_members_no_owner() -> None:
    assert owner(SCHEDULES[0], []) is None
    assert owner(SCHEDULES[0], ["only"]) == "only"
