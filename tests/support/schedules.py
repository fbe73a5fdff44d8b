"""Every-second schedules and the check of their ticks against the handlers' ledger."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from corral.core.schedules import ScheduledJob, fire_id
from corral.scheduler import TaskScheduler
from corral.settings import CorralSettings


async def every_second_schedules(
    admin: TaskScheduler, ledger_key: str, count: int
) -> list[ScheduledJob]:
    """``count`` schedules firing the ledger-writing ``record`` handler every second (UTC)."""
    return [
        await admin.create(
            name=f"s{i}",
            handler_name="record",
            cron_expression="* * * * * *",
            domain="test",
            timezone="UTC",
            payload={"ledger": ledger_key},
        )
        for i in range(count)
    ]


async def create_every_second_schedules(
    settings: CorralSettings, ledger_key: str, count: int
) -> list[ScheduledJob]:
    """The same, through a TaskScheduler of its own (one that never fires)."""
    admin = TaskScheduler(settings, handlers=["tests.support.it_handlers"])
    try:
        return await every_second_schedules(admin, ledger_key, count)
    finally:
        await admin.close()


def window_edge(*, start: bool) -> datetime:
    """The first whole second to come (window start), or one two seconds back (window end: a
    tick that fired has had time to be run and written to the ledger)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now + timedelta(seconds=1) if start else now - timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class TickReport:
    seconds: int
    duplicates: dict[str, int]  # fire id -> runs, for ticks run more than once
    missing: dict[str, int]  # schedule id -> ticks of the window never run
    max_gap_s: float  # largest time between two consecutive runs of one schedule


def tick_report(
    ledger: list[dict[str, Any]],
    schedules: list[ScheduledJob],
    window_start: datetime,
    window_end: datetime,
    *,
    gaps_since: float = 0.0,
) -> TickReport:
    """Which ticks in [start, end] ran twice or never; gaps count from ``gaps_since`` (epoch s)."""
    starts = [e for e in ledger if e["event"] == "start"]
    per_tick = Counter(str(e["job_id"]) for e in starts)
    seconds = int((window_end - window_start).total_seconds())
    missing = {}
    max_gap = 0.0
    for schedule in schedules:
        expected = {
            fire_id(schedule.id, window_start + timedelta(seconds=s)) for s in range(seconds + 1)
        }
        if absent := expected - set(per_tick):
            missing[str(schedule.id)] = len(absent)
        ticks = sorted(
            float(e["t"])
            for e in starts
            if str(e["job_id"]).startswith(f"sched-{schedule.id}-") and e["t"] > gaps_since
        )
        max_gap = max([max_gap, *(b - a for a, b in itertools.pairwise(ticks))])
    return TickReport(
        seconds=seconds,
        duplicates={k: v for k, v in per_tick.items() if v > 1},
        missing=missing,
        max_gap_s=max_gap,
    )
