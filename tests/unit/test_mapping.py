"""Corral options -> BullMQ wire options; the priority scale is inverted."""

from __future__ import annotations

import pytest

from corral.adapters.bullmq.mapping import (
    from_bullmq_priority,
    timeout_of,
    to_bullmq_options,
    to_bullmq_priority,
)
from corral.core.jobs import JobOptions, JobPriority, Retention, parse_options


def test_named_priorities_invert() -> None:
    assert to_bullmq_priority(JobPriority.CRITICAL) == 1
    assert to_bullmq_priority(JobPriority.HIGH) == 11
    assert to_bullmq_priority(JobPriority.NORMAL) == 16
    assert to_bullmq_priority(JobPriority.LOW) == 20


def test_every_priority_maps_into_1_to_20_and_order_reverses() -> None:
    mapped = [to_bullmq_priority(p) for p in range(1, 21)]
    assert all(1 <= m <= 20 for m in mapped)  # never 0: BullMQ's 0 jumps every queue
    assert mapped == sorted(mapped, reverse=True)
    assert len(set(mapped)) == 20
    # more urgent in Corral (larger) -> more urgent in BullMQ (smaller)
    for low, high in zip(range(1, 20), range(2, 21), strict=True):
        assert to_bullmq_priority(high) < to_bullmq_priority(low)


@pytest.mark.parametrize("priority", range(1, 21))
def test_round_trip(priority: int) -> None:
    assert from_bullmq_priority(to_bullmq_priority(priority)) == priority


@pytest.mark.parametrize("raw", [0, 21, -1, 2_097_152])
def test_bullmq_priority_outside_corral_scale_is_none(raw: int) -> None:
    assert from_bullmq_priority(raw) is None


def test_default_options_shape() -> None:
    opts = to_bullmq_options(JobOptions())
    assert opts == {
        "priority": 16,
        "attempts": 3,
        "backoff": {"type": "exponential", "delay": 5000},
        "removeOnComplete": {"count": 1000, "age": 86400},
        "removeOnFail": {"count": 5000, "age": 604800},
        "timeout": 30_000,
    }


def test_full_options_shape() -> None:
    options = parse_options(
        {
            "priority": "CRITICAL",
            "category": "payments",
            "timeout": 10_000,
            "delay": 250,
            "attempts": 5,
            "backoff": 100,
            "job_id": "pay-1",
            "remove_on_complete": True,
            "remove_on_fail": False,
        }
    )
    assert to_bullmq_options(options) == {
        "priority": 1,
        "attempts": 5,
        "backoff": {"type": "fixed", "delay": 100},
        "removeOnComplete": True,
        "removeOnFail": False,
        "delay": 250,
        "jobId": "pay-1",
        "timeout": 10_000,
        "category": "payments",
    }


@pytest.mark.parametrize(
    ("retention", "wire"),
    [
        (True, True),  # remove as soon as it finishes
        (False, False),  # keep everything
        (Retention(count=0), True),
        (Retention(), False),
        (Retention(count=7), {"count": 7}),
        (Retention(age_s=60), {"age": 60}),
        ({"count": 7, "age": 60}, {"count": 7, "age": 60}),
        (250, {"count": 250}),
    ],
)
def test_retention_shapes(retention: object, wire: object) -> None:
    options = parse_options({"remove_on_complete": retention, "remove_on_fail": retention})
    opts = to_bullmq_options(options)
    assert opts["removeOnComplete"] == wire
    assert opts["removeOnFail"] == wire


def test_no_timeout_no_delay_no_job_id_are_left_out() -> None:
    opts = to_bullmq_options(parse_options({"timeout": None}))
    assert "timeout" not in opts
    assert "delay" not in opts
    assert "jobId" not in opts
    assert "category" not in opts
    assert timeout_of(opts) is None


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"timeout": 1500}, 1500),
        ({"timeout": 1}, 1),
        ({}, None),
        ({"timeout": None}, None),
        ({"timeout": 0}, None),
        ({"timeout": -5}, None),
        ({"timeout": True}, None),
        ({"timeout": 1.5}, None),
        ({"timeout": "1000"}, None),
    ],
)
def test_timeout_of(opts: dict[str, object], expected: int | None) -> None:
    assert timeout_of(opts) == expected


def test_timeout_round_trips_through_wire_options() -> None:
    assert timeout_of(to_bullmq_options(parse_options({"timeout": 4321}))) == 4321
