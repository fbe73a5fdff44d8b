"""The misfire policy (core.schedules.plan_fire): late ticks fire one by one, misfires coalesce."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from corral.core.schedules import (
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
