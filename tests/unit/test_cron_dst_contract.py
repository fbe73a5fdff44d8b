"""The time zone and DST firing contract (docs/howto-scheduling.md), row by row."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from corral.core.cron import CronExpression


def z(text: str) -> datetime:
    """An aware UTC instant from ``YYYY-MM-DDTHH:MM[:SS]``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local_day(expression: str, zone: str, day: date) -> list[datetime]:
    """Every firing whose instant falls on ``day`` in ``zone``, computed from a fixed start."""
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    second = timedelta(seconds=1)
    return list(CronExpression.parse(expression).fires_between(start - second, end - second, tz))


def chain(expression: str, zone: str, since: datetime, until: datetime) -> list[datetime]:
    """The same firings obtained by calling next_fire repeatedly (as a scheduler would)."""
    cron, tz, fires = CronExpression.parse(expression), ZoneInfo(zone), []
    fire = cron.next_fire(since, tz)
    while fire is not None and fire <= until:
        fires.append(fire)
        fire = cron.next_fire(fire, tz)
    return fires


def hourly(first: str, count: int, step_minutes: int = 60) -> list[datetime]:
    return [z(first) + timedelta(minutes=step_minutes * i) for i in range(count)]


NY, BERLIN = "America/New_York", "Europe/Berlin"
SPRING_NY, FALL_NY, AFTER_FALL_NY = date(2026, 3, 8), date(2026, 11, 1), date(2026, 11, 2)
SPRING_BERLIN, FALL_BERLIN = date(2026, 3, 29), date(2026, 10, 25)

EXACT_ROWS = [
    pytest.param(NY, SPRING_NY, "0 30 2 * * *", [z("2026-03-08T07:00")], id="ny-gap-end"),
    pytest.param(NY, SPRING_NY, "0 0 2,3 * * *", [z("2026-03-08T07:00")], id="ny-gap-merge"),
    pytest.param(
        NY,
        SPRING_NY,
        "0 30 2,3 * * *",
        [z("2026-03-08T07:00"), z("2026-03-08T07:30")],
        id="ny-gap-and-real",
    ),
    pytest.param(NY, SPRING_NY, "0 0 * * * *", hourly("2026-03-08T05:00", 23), id="ny-spring-h"),
    pytest.param(
        NY, SPRING_NY, "0 */30 * * * *", hourly("2026-03-08T05:00", 46, 30), id="ny-spring-30m"
    ),
    pytest.param(NY, FALL_NY, "0 30 1 * * *", [z("2026-11-01T05:30")], id="ny-fold-first"),
    pytest.param(
        NY,
        FALL_NY,
        "0 0 1-2 * * *",
        [z("2026-11-01T05:00"), z("2026-11-01T07:00")],
        id="ny-fold-range",
    ),
    pytest.param(NY, FALL_NY, "0 0 * * * *", hourly("2026-11-01T04:00", 25), id="ny-fall-h"),
    pytest.param(
        NY, FALL_NY, "0 */30 * * * *", hourly("2026-11-01T04:00", 50, 30), id="ny-fall-30m"
    ),
    pytest.param(NY, AFTER_FALL_NY, "0 30 1 * * *", [z("2026-11-02T06:30")], id="ny-day-after"),
    pytest.param(
        BERLIN, SPRING_BERLIN, "0 30 2 * * *", [z("2026-03-29T01:00")], id="berlin-gap-end"
    ),
    pytest.param(
        BERLIN, FALL_BERLIN, "0 30 2 * * *", [z("2026-10-25T00:30")], id="berlin-fold-first"
    ),
    pytest.param(
        BERLIN, FALL_BERLIN, "0 0 * * * *", hourly("2026-10-24T22:00", 25), id="berlin-fall-h"
    ),
]


@pytest.mark.parametrize(("zone", "day", "expression", "expected"), EXACT_ROWS)
def test_contract_row_exact_utc_list(
    zone: str, day: date, expression: str, expected: list[datetime]
) -> None:
    assert local_day(expression, zone, day) == expected


@pytest.mark.parametrize(("zone", "day", "expression", "expected"), EXACT_ROWS)
def test_contract_row_via_next_fire(
    zone: str, day: date, expression: str, expected: list[datetime]
) -> None:
    since = expected[0] - timedelta(seconds=1)
    assert chain(expression, zone, since, expected[-1]) == expected


def test_fall_back_hourly_includes_both_one_oclocks() -> None:
    fires = local_day("0 0 * * * *", NY, FALL_NY)
    assert z("2026-11-01T05:00") in fires  # 01:00 EDT
    assert z("2026-11-01T06:00") in fires  # 01:00 EST


def test_berlin_fall_back_hourly_includes_both_two_oclocks() -> None:
    fires = local_day("0 0 * * * *", BERLIN, FALL_BERLIN)
    assert z("2026-10-25T00:00") in fires  # 02:00 CEST
    assert z("2026-10-25T01:00") in fires  # 02:00 CET


def test_spring_hourly_has_no_local_two_oclock() -> None:
    tz = ZoneInfo(NY)
    fires = local_day("0 0 * * * *", NY, SPRING_NY)
    assert all(fire.astimezone(tz).hour != 2 for fire in fires)


def assert_every_second(fires: list[datetime], first: datetime, count: int) -> None:
    assert len(fires) == count
    assert fires[0] == first
    assert fires[-1] == first + timedelta(seconds=count - 1)
    # strictly increasing and contiguous: every real second exactly once
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(fires))


def test_every_second_on_spring_forward_day() -> None:
    fires = local_day("* * * * * *", NY, SPRING_NY)
    assert_every_second(fires, z("2026-03-08T05:00:00"), 82_800)
    assert fires[-1] == z("2026-03-09T03:59:59")
    tz = ZoneInfo(NY)
    assert not any(fire.astimezone(tz).hour == 2 for fire in fires)


def test_every_second_on_fall_back_day() -> None:
    fires = local_day("* * * * * *", NY, FALL_NY)
    assert_every_second(fires, z("2026-11-01T04:00:00"), 90_000)
    assert fires[-1] == z("2026-11-02T04:59:59")


def test_shanghai_daily_all_of_2026() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    since = datetime(2026, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(seconds=1)
    until = datetime(2027, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(seconds=1)
    fires = list(CronExpression.parse("0 0 2 * * *").fires_between(since, until, tz))
    expected = [z("2025-12-31T18:00") + timedelta(days=i) for i in range(365)]
    assert fires == expected


ALL_EXPRESSIONS = sorted(
    {str(param.values[2]) for param in EXACT_ROWS} | {"* * * * * *", "0 0 2 * * *"}
)


TRANSITIONS = [z("2026-03-08T07:00"), z("2026-11-01T06:00"), z("2026-03-29T01:00")]
TRANSITIONS += [z("2026-10-25T01:00")]


@pytest.mark.parametrize("expression", ALL_EXPRESSIONS)
@pytest.mark.parametrize("zone", [NY, BERLIN, "Asia/Shanghai"])
def test_no_instant_twice_around_transitions(expression: str, zone: str) -> None:
    """Every schedule of the table, around each 2026 transition: strictly increasing UTC."""
    tz = ZoneInfo(zone)
    cron = CronExpression.parse(expression)
    # a week either side; every-second schedules get three hours (still crossing the change)
    half = timedelta(hours=3) if expression == "* * * * * *" else timedelta(days=7)
    for instant in TRANSITIONS:
        fires = list(cron.fires_between(instant - half, instant + half, tz))
        assert fires, expression
        assert all(a < b for a, b in itertools.pairwise(fires))
        assert len(set(fires)) == len(fires)
        assert all(fire.tzinfo is UTC for fire in fires)
