"""T2: year-long DST properties over ten zones, and parse robustness under random input.

Every local date of 2025-2027 in each zone is checked:

* a fixed-time daily schedule fires exactly once per local date, at the instant zoneinfo gives
  for that wall time (first occurrence when repeated, end of the gap when skipped);
* a wildcard-hour schedule fires (length of the local day in hours) x (fires per hour) times;
  where that is not a whole number (Lord Howe's half-hour shift) or the day is a transition day,
  the firings are compared with a brute-force oracle built from zoneinfo's ``fold`` attribute;
* UTC instants strictly increase across the whole three years.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.core.cron import CronExpression
from corral.errors import InvalidCronExpression

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Asia/Shanghai",
    "America/Sao_Paulo",
    "America/Santiago",
    "Europe/London",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
    "Australia/Lord_Howe",
]
FIRST_DAY, LAST_DAY = date(2025, 1, 1), date(2027, 12, 31)
SECOND = timedelta(seconds=1)

# One wall time a day, chosen to land in or next to the gaps and repeats of these zones:
# 00:30 and 23:30 (Santiago changes at midnight), 01:xx-03:xx (New York, Europe, Chatham at
# 02:45/03:45, Lord Howe's half hour at 01:30-02:30).
FIXED_DAILY = [
    "0 0 0 * * *",
    "0 30 0 * * *",
    "0 0 1 * * *",
    "0 30 1 * * *",
    "0 45 1 * * *",
    "0 0 2 * * *",
    "0 15 2 * * *",
    "0 30 2 * * *",
    "0 0 3 * * *",
    "0 15 3 * * *",
    "0 30 23 * * *",
    "59 59 23 * * *",
    "0 2 * * *",
]


def sunday_based(day: date) -> int:
    return (day.weekday() + 1) % 7


# Other fixed-time schedules: expected firings per ordinary (24 h) local date. On transition
# days the oracle decides, since gap-mapped times merge (London: 01:00 maps onto 02:00 BST).
FIXED_OTHER: dict[str, Callable[[date], int]] = {
    "0 0 9 * * 1-5": lambda day: int(sunday_based(day) in {1, 2, 3, 4, 5}),
    "0 0 0 1 * *": lambda day: int(day.day == 1),
    "0 0 12 13 * FRI": lambda day: int(day.day == 13 or sunday_based(day) == 5),  # Vixie OR
    "0 0 1-3 * * *": lambda day: 3,
}

# Wildcard-hour schedules and their firings per hour of real time.
WILDCARD: dict[str, int] = {"0 0 * * * *": 1, "0 */30 * * * *": 2, "0 15,45 * * * *": 2}
WILDCARD_UNEVEN = ["0 0 */3 * * *"]  # not uniform per hour: checked against the oracle only


def all_days() -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]


@functools.cache
def day_starts(zone: str) -> tuple[datetime, ...]:
    """The UTC instant each local date begins, for every day plus the day after the last."""
    tz = ZoneInfo(zone)
    days = [*all_days(), LAST_DAY + timedelta(days=1)]
    return tuple(datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC) for d in days)


@functools.cache
def fires_by_day(zone: str, expression: str) -> tuple[tuple[datetime, ...], ...]:
    """The firings of each local date: one fires_between call over the three years, split."""
    tz, cron, starts = ZoneInfo(zone), CronExpression.parse(expression), day_starts(zone)
    flat = list(cron.fires_between(starts[0] - SECOND, starts[-1] - SECOND, tz))
    assert all(a < b for a, b in itertools.pairwise(flat))  # strictly increasing UTC
    cuts = [bisect.bisect_left(flat, start) for start in starts]
    days = tuple(tuple(flat[a:b]) for a, b in itertools.pairwise(cuts))
    for i in odd_days(zone):  # a window of exactly that day gives the same firings
        window = cron.fires_between(starts[i] - SECOND, starts[i + 1] - SECOND, tz)
        assert tuple(window) == days[i]
    return days


@functools.cache
def odd_days(zone: str) -> frozenset[int]:
    """Indexes of days that are not 24 h long, and their neighbours."""
    starts = day_starts(zone)
    odd = {i for i in range(len(starts) - 1) if starts[i + 1] - starts[i] != timedelta(days=1)}
    return frozenset(j for i in odd for j in (i - 1, i, i + 1) if 0 <= j < len(starts) - 1)


def walls(cron: CronExpression, day: date) -> list[datetime]:
    """Every matching naive wall time on ``day`` (the day itself is assumed to match)."""
    return [
        datetime(day.year, day.month, day.day, h, m, s)  # noqa: DTZ001 - a naive wall time
        for h in sorted(cron.hours)
        for m in sorted(cron.minutes)
        for s in sorted(cron.seconds)
    ]


def exists(wall: datetime, tz: ZoneInfo) -> bool:
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    return instant.astimezone(tz).replace(tzinfo=None) == wall


def gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant whose wall time is past ``wall`` (which lies inside a gap)."""
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # before the change
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # after the change
    while high - low > SECOND:
        middle = low + (high - low) // 2
        if middle.astimezone(tz).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return high


def oracle_fixed(cron: CronExpression, day: date, tz: ZoneInfo) -> list[datetime]:
    fires = {
        wall.replace(tzinfo=tz, fold=0).astimezone(UTC) if exists(wall, tz) else gap_end(wall, tz)
        for wall in walls(cron, day)
    }
    return sorted(fires)


def oracle_wildcard(cron: CronExpression, day: date, tz: ZoneInfo) -> list[datetime]:
    fires: set[datetime] = set()
    for wall in walls(cron, day):
        if exists(wall, tz):
            fires.add(wall.replace(tzinfo=tz, fold=0).astimezone(UTC))
            fires.add(wall.replace(tzinfo=tz, fold=1).astimezone(UTC))  # same unless repeated
    return sorted(fires)


@pytest.mark.parametrize("expression", FIXED_DAILY)
@pytest.mark.parametrize("zone", ZONES)
def test_fixed_daily_fires_once_per_local_date(zone: str, expression: str) -> None:
    tz, cron = ZoneInfo(zone), CronExpression.parse(expression)
    days = fires_by_day(zone, expression)
    assert [len(fires) for fires in days] == [1] * len(days)
    for day, fires in zip(all_days(), days, strict=True):
        assert list(fires) == oracle_fixed(cron, day, tz), (zone, expression, day)


@pytest.mark.parametrize("expression", sorted(FIXED_OTHER))
@pytest.mark.parametrize("zone", ZONES)
def test_fixed_schedules_fire_on_matching_dates(zone: str, expression: str) -> None:
    tz, cron, expected = ZoneInfo(zone), CronExpression.parse(expression), FIXED_OTHER[expression]
    days, odd = fires_by_day(zone, expression), odd_days(zone)
    for i, (day, fires) in enumerate(zip(all_days(), days, strict=True)):
        if i not in odd:
            assert len(fires) == expected(day), (zone, expression, day)
        else:
            oracle = oracle_fixed(cron, day, tz) if expected(day) else []
            assert list(fires) == oracle, (zone, expression, day)


@pytest.mark.parametrize("expression", sorted(WILDCARD))
@pytest.mark.parametrize("zone", ZONES)
def test_wildcard_hour_follows_elapsed_time(zone: str, expression: str) -> None:
    tz, cron, per_hour = ZoneInfo(zone), CronExpression.parse(expression), WILDCARD[expression]
    days, starts = fires_by_day(zone, expression), day_starts(zone)
    odd = odd_days(zone)
    for i, (day, fires) in enumerate(zip(all_days(), days, strict=True)):
        length_s = int((starts[i + 1] - starts[i]).total_seconds())
        count, remainder = divmod(length_s * per_hour, 3600)
        if remainder == 0:
            assert len(fires) == count, (zone, expression, day)
        if remainder or i in odd:
            assert list(fires) == oracle_wildcard(cron, day, tz), (zone, expression, day)


@pytest.mark.parametrize("expression", WILDCARD_UNEVEN)
@pytest.mark.parametrize("zone", ZONES)
def test_wildcard_step_hours_match_oracle(zone: str, expression: str) -> None:
    tz, cron = ZoneInfo(zone), CronExpression.parse(expression)
    days = fires_by_day(zone, expression)
    for day, fires in zip(all_days(), days, strict=True):
        assert list(fires) == oracle_wildcard(cron, day, tz), (zone, expression, day)


def test_transition_days_exist_in_every_dst_zone() -> None:
    """Guard against a vacuous pass: the DST zones really change offset in 2025-2027."""
    for zone in ZONES:
        has_dst = zone not in {"Asia/Shanghai", "America/Sao_Paulo", "Asia/Kolkata", "UTC"}
        assert bool(odd_days(zone)) == has_dst, zone


# -- parse robustness -----------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOKENS = st.sampled_from(
    [
        *("*", "0", "1", "5", "7", "12", "23", "29", "30", "31", "59", "60", "99999999"),
        *("JAN", "fri", "MON-FRI", "L", "W", "#", "?", "15W", "5L", "@daily"),
        *("-", "/", ",", "٣", "２", " ", "\t"),
    ]
)
FIELDISH = st.lists(
    st.lists(TOKENS, min_size=1, max_size=4).map("".join), min_size=0, max_size=8
).map(" ".join)


FIELD_NAMES = {"", "second", "minute", "hour", "day-of-month", "month", "day-of-week"}


def parse_or_reject(text: str) -> None:
    """Parsing either succeeds or raises InvalidCronExpression naming a known field."""
    error: InvalidCronExpression | None = None
    try:
        CronExpression.parse(text)
    except InvalidCronExpression as exc:
        error = exc
    if error is not None:
        assert error.path == "cronExpression"
        assert error.field in FIELD_NAMES
        assert str(error).startswith("cronExpression: ")


@FUZZ
@given(st.text(max_size=200))
def test_random_text_parses_or_raises_invalid_cron(text: str) -> None:
    parse_or_reject(text)


@FUZZ
@given(FIELDISH)
def test_fieldish_text_parses_or_raises_invalid_cron(text: str) -> None:
    parse_or_reject(text)


def field_values(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    ranged = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    stepped = st.tuples(ranged, st.integers(1, 5)).map(lambda rs: f"{rs[0]}/{rs[1]}")
    star = st.sampled_from(["*", "*/2", "*/7"])
    item = st.one_of(single, ranged, stepped, star)
    return st.lists(item, min_size=1, max_size=2).map(",".join)


VALID = (
    st.tuples(
        field_values(0, 59),
        field_values(0, 59),
        field_values(0, 23),
        field_values(1, 28),
        field_values(1, 12),
        field_values(0, 7),
    )
    .map(" ".join)
    .filter(lambda text: len(text) <= 64)
)


def day_matches(cron: CronExpression, local: datetime) -> bool:
    dom = local.day in cron.days_of_month
    dow = sunday_based(local.date()) in cron.days_of_week
    both_needed = cron.dom_star or cron.dow_star
    return local.month in cron.months and ((dom and dow) if both_needed else (dom or dow))


@FUZZ
@given(
    VALID,
    st.sampled_from(ZONES),
    st.datetimes(
        datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        datetime(2028, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)
def test_next_fire_is_later_and_matches(text: str, zone: str, after: datetime) -> None:
    cron, tz = CronExpression.parse(text), ZoneInfo(zone)
    fire = cron.next_fire(after, tz)
    assert fire is not None
    assert fire > after
    assert fire.microsecond == 0
    local = fire.astimezone(tz)
    assert day_matches(cron, local)
    at_gap_end = (fire - SECOND).astimezone(tz).utcoffset() != local.utcoffset()
    if not at_gap_end:  # a gap-mapped fixed time fires at the gap end, which may not match
        assert (local.hour, local.minute, local.second) in {
            (h, m, s) for h in cron.hours for m in cron.minutes for s in cron.seconds
        }
    following = cron.next_fire(fire, tz)
    assert following is not None
    assert following > fire
