"""Firing a schedule: the queue job id of each tick, and the misfire policy. Pure.

The scheduler service asks :func:`plan_fire` what to do for a schedule at a given instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final
from uuid import UUID

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from corral.core.cron import CronExpression
    from corral.core.schedules import ScheduledJob

DEFAULT_CATCH_UP_MS: Final = 10 * 60 * 1000
MAX_COUNTED_MISSES: Final = 100_000
#: A tick at most this late is "late", not "missed": it fires on its own, even when the next
#: tick is due too (a busy machine or a paused process must not coalesce a 1-second schedule).
#: Older ticks are misfires and coalesce (Quartz calls this the misfire threshold).
MISFIRE_THRESHOLD: Final = timedelta(seconds=5)


def fire_id(schedule_id: UUID, nominal: datetime) -> str:
    """Deterministic queue job id per (schedule, tick): never all digits, never a ':'."""
    return f"sched-{schedule_id}-{int(nominal.timestamp())}"


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def missed_id(schedule_id: UUID, first: datetime) -> str:
    """The execution-log id of a range of skipped ticks, named by its oldest tick. A tick is
    skipped at most once (the watermark only moves forward), so the id names one range."""
    return f"missed-{schedule_id}-{epoch_ms(first)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FirePlan:
    """What to do at ``now``: fire ``fire`` (or nothing), having skipped ``skipped`` older ticks.

    ``watermark`` is the newest tick accounted for (fired or skipped); the next plan starts
    after it, so nothing fires twice even if the clock steps back.
    """

    fire: datetime | None
    skipped: int
    watermark: datetime | None
    #: The oldest and newest skipped tick (both None when nothing was skipped): the scheduler
    #: that commits the plan records that range in the execution log as one ``missed`` row.
    first_skipped: datetime | None = None
    last_skipped: datetime | None = None

    def moves(self, watermark: datetime | None) -> bool:
        """Whether committing this plan changes anything: it moves the ``watermark`` it was
        made from forward (a plan that does not has nothing to fire or skip)."""
        return self.watermark is not None and (watermark is None or self.watermark > watermark)


def plan_fire(
    schedule: ScheduledJob,
    *,
    watermark: datetime | None,
    now: datetime,
    catch_up_ms: int = DEFAULT_CATCH_UP_MS,
) -> FirePlan:
    """The misfire policy (docs/howto-scheduling.md, "Downtime and misfires"). If the oldest
    tick in (base, now] is late by at most :data:`MISFIRE_THRESHOLD` (and the catch-up window),
    fire it alone: the caller plans again for the next. Otherwise the ticks are misfires: fire
    only the latest, and only if it is within the catch-up window; count the others as skipped.

    ``base`` is the later of the watermark and the schedule's last change, so a schedule that was
    paused, disabled, created or edited resumes from its next tick: no burst.
    """
    window = timedelta(
        milliseconds=schedule.catch_up_ms if schedule.catch_up_ms is not None else catch_up_ms
    )
    base = max(watermark, schedule.updated_at) if watermark is not None else schedule.updated_at
    if base >= now:
        return FirePlan(fire=None, skipped=0, watermark=watermark)
    cron, zone = schedule.cron, schedule.zone
    # Count ticks in (base, now]; only look back one window plus a margin for the last one.
    first: datetime | None = None
    previous: datetime | None = None
    latest: datetime | None = None
    count = 0
    for tick in cron.fires_between(base, now, zone):
        if latest is None and now - tick <= min(MISFIRE_THRESHOLD, window):
            return FirePlan(fire=tick, skipped=0, watermark=tick)
        first = first or tick
        previous, latest = latest, tick
        count += 1
        if count >= MAX_COUNTED_MISSES:
            last = _last_tick(cron, zone, tick, now)
            if last is not None and last != tick:
                # the count stops here (a lower bound); the range still ends at the real ticks
                latest = last
                previous = _last_tick(cron, zone, tick, last - timedelta(seconds=1)) or tick
            break
    if latest is None:
        return FirePlan(fire=None, skipped=0, watermark=watermark)
    if now - latest <= window:
        return FirePlan(
            fire=latest,
            skipped=count - 1,
            watermark=latest,
            first_skipped=first if count > 1 else None,
            last_skipped=previous,
        )
    return FirePlan(
        fire=None, skipped=count, watermark=latest, first_skipped=first, last_skipped=latest
    )


def _last_tick(
    cron: CronExpression, zone: ZoneInfo, since: datetime, until: datetime
) -> datetime | None:
    """The last tick in (since, until] without walking every one: search backwards in widening
    windows from ``until``."""
    span = timedelta(seconds=2)
    while True:
        start = max(since, until - span)
        last = None
        for tick in cron.fires_between(start, until, zone):
            last = tick
        if last is not None or start == since:
            return last
        span *= 4
