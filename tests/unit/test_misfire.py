"""The misfire policy (core.schedules.plan_fire): late ticks fire one by one, misfires coalesce."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from corral.core.schedules import (
    MAX_COUNTED_MISSES,
    MISFIRE_THRESHOLD,
    FirePlan,
    ScheduledJob,
    new_schedule,
    plan_fire,
    validate_changes,
)

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def _every_second(catch_up_ms: int | None = None) -> ScheduledJob:
    fields = validate_changes(
        {
            "name": "s",
            "handler_name": "noop",
            "cron_expression": "* * * * * *",
            "timezone": "UTC",
            "domain": "test",
            "catch_up_ms": catch_up_ms,
        },
        creating=True,
    )
    return new_schedule(uuid.uuid4(), fields, T0)


def _drain(schedule: ScheduledJob, now: datetime) -> tuple[list[datetime], int]:
    """Plan again and again at ``now`` as the scheduler does, until nothing is due."""
    fired: list[datetime] = []
    skipped = 0
    watermark = None
    while True:
        plan = plan_fire(schedule, watermark=watermark, now=now)
        skipped += plan.skipped
        if plan.fire is None:
            return fired, skipped
        fired.append(plan.fire)
        watermark = plan.watermark


def test_a_tick_on_time_fires() -> None:
    plan = plan_fire(_every_second(), watermark=None, now=T0 + timedelta(seconds=1, milliseconds=3))
    assert plan == FirePlan(fire=T0 + timedelta(seconds=1), skipped=0, watermark=plan.fire)


def test_late_ticks_each_fire_in_order() -> None:
    """A scheduler that stalled 3.5 s still fires every tick: late is not missed."""
    fired, skipped = _drain(_every_second(), T0 + timedelta(seconds=3, milliseconds=500))
    assert fired == [T0 + timedelta(seconds=s) for s in (1, 2, 3)]
    assert skipped == 0


def test_ticks_older_than_the_threshold_coalesce_into_the_latest() -> None:
    now = T0 + timedelta(seconds=30, milliseconds=200)
    fired, skipped = _drain(_every_second(), now)
    assert fired == [T0 + timedelta(seconds=30)]
    assert skipped == 29
    assert MISFIRE_THRESHOLD < timedelta(seconds=29)


def test_the_threshold_never_exceeds_the_catch_up_window() -> None:
    """catch_up_ms=0: a tick that is late at all is skipped, as before."""
    fired, skipped = _drain(_every_second(catch_up_ms=0), T0 + timedelta(seconds=2, milliseconds=1))
    assert fired == []
    assert skipped == 2


# -- the skipped range (the execution log's "missed" row) -------------------------------------


def _daily(catch_up_ms: int) -> ScheduledJob:
    fields = validate_changes(
        {
            "name": "daily",
            "handler_name": "noop",
            "cron_expression": "0 0 0 * * *",
            "timezone": "UTC",
            "domain": "test",
            "catch_up_ms": catch_up_ms,
        },
        creating=True,
    )
    return new_schedule(uuid.uuid4(), fields, T0)


def test_a_coalesced_run_reports_the_range_it_skipped() -> None:
    """Down 30 s: the run is for :30; :01 to :29 (29 ticks) are the skipped range."""
    plan = plan_fire(
        _every_second(), watermark=None, now=T0 + timedelta(seconds=30, milliseconds=200)
    )
    print("fire", plan.fire, "skipped", plan.skipped, plan.first_skipped, plan.last_skipped)
    assert plan.fire == T0 + timedelta(seconds=30)
    assert plan.skipped == 29
    assert plan.first_skipped == T0 + timedelta(seconds=1)
    assert plan.last_skipped == T0 + timedelta(seconds=29)


def test_a_tick_older_than_the_window_is_the_whole_range() -> None:
    """A daily tick 3 h into a 1 h catch-up window: skipped and counted, nothing fires."""
    midnight = datetime(2026, 11, 29, tzinfo=UTC)
    plan = plan_fire(_daily(3_600_000), watermark=None, now=midnight + timedelta(hours=3))
    assert plan == FirePlan(
        fire=None, skipped=1, watermark=midnight, first_skipped=midnight, last_skipped=midnight
    )


def test_nothing_skipped_reports_no_range() -> None:
    late = plan_fire(_every_second(), watermark=None, now=T0 + timedelta(seconds=3))
    assert (late.skipped, late.first_skipped, late.last_skipped) == (0, None, None)
    # two ticks missed: the older is skipped, the newer runs
    plan = plan_fire(_every_second(), watermark=None, now=T0 + timedelta(seconds=8))
    assert plan.fire == T0 + timedelta(seconds=8)
    assert plan.first_skipped == T0 + timedelta(seconds=1)
    assert plan.last_skipped == T0 + timedelta(seconds=7)


def test_a_range_past_the_count_cap_still_ends_at_the_real_ticks() -> None:
    """Past MAX_COUNTED_MISSES the count is a lower bound; first and last are exact."""
    now = T0 + timedelta(seconds=MAX_COUNTED_MISSES + 5000)
    plan = plan_fire(_every_second(catch_up_ms=600_000), watermark=None, now=now)
    assert plan.fire == now
    assert plan.skipped == MAX_COUNTED_MISSES - 1
    assert plan.first_skipped == T0 + timedelta(seconds=1)
    assert plan.last_skipped == now - timedelta(seconds=1)
