"""Cron expressions: strict parsing and DST-correct firing times. Pure: no I/O, no clock.

Parsing is in ``core.cron_syntax``, epoch and zone arithmetic in ``core.cron_time``; this
module matches wall times and walks the offset segments.

Syntax
    Six whitespace-separated fields, seconds first (``second minute hour day-of-month month
    day-of-week``), or five (``minute hour day-of-month month day-of-week``, second = 0). Each
    field is a comma list of ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S`` or ``N/S`` (N up to the
    field's maximum, step S). Day-of-week is 0-7 with 0 and 7 both Sunday; ``*`` and ``N/S`` run
    to 6 (Saturday). Month names ``JAN``-``DEC`` and day names ``SUN``-``SAT`` are accepted,
    case-insensitively, wherever a number is (not as a step).

Rejected, naming the field (``InvalidCronExpression``)
    More than 64 characters, non-ASCII characters (``int()`` would accept ``'٣'``), a field
    count other than 5 or 6, numbers out of range (checked before anything is expanded, so
    ``0-99999999/1`` costs nothing), steps outside 1..field size, reversed ranges, empty list
    items, the Quartz extensions ``?``, ``L``, ``W`` and ``#``, the ``@daily``-style aliases
    (write the fields out), and expressions that can never fire such as ``0 0 0 30 2 *``.

Day matching (Vixie cron)
    When day-of-month and day-of-week are both restricted, a day matches if EITHER matches. When
    either field starts with ``*`` (``*`` or ``*/n``), both must match; with a plain ``*`` that
    means only the other field counts.

DST (Vixie cron as Debian applies it; the table in docs/howto-scheduling.md)
    Times are matched in the wall time of the job's zone and mapped to UTC. The hour field
    decides the mode:

    * Fixed-time jobs (hour is a number, list or range): each matching wall time fires once.
      A wall time inside a spring-forward gap fires at the end of the gap (New York 02:30 on
      2026-03-08 fires at 03:00 EDT = 07:00Z); several gap times, or a gap time and the real
      wall time at the end of the gap, merge into that one instant. A wall time inside the
      repeated fall-back hour fires at its first occurrence only.
    * Wildcard-hour jobs (hour field starting with ``*``: ``*`` or ``*/n``) follow elapsed real
      time: every instant whose wall time matches fires, so the repeated hour fires twice and
      the skipped hour never (25 and 23 hourly fires).

    Both rules are applied per UTC segment of constant offset; the offset transitions of a zone
    are found by probing every 6 hours (two transitions under 6 hours apart would be seen as
    one; the tz database has none since 1900). Results are whole seconds, strictly
    increasing, never repeated. The search looks at most ``SEARCH_HORIZON_YEARS`` ahead: that
    covers the rarest valid schedule (29 February on one weekday, up to 40 years apart).
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from corral.core.cron_syntax import MAX_LENGTH, parse_fields
from corral.core.cron_time import (
    DAY,
    EPOCH_ORDINAL,
    MAX_EPOCH,
    MIN_EPOCH,
    epoch_of,
    last_transition,
    next_transition,
    offset_at,
    parse_timezone,
    utc_of,
)

__all__ = [
    "MAX_LENGTH",
    "SEARCH_HORIZON_YEARS",
    "CronExpression",
    "next_fires",
    "parse_timezone",
]

SEARCH_HORIZON_YEARS = 50
_HORIZON = SEARCH_HORIZON_YEARS * 366 * DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class CronExpression:
    """A parsed, validated cron expression. Build it with :meth:`parse`.

    ``dom_star`` / ``dow_star``: the day-of-month / day-of-week field started with ``*``
    (Vixie: then both day fields must match, otherwise either). ``hour_wildcard``: the hour field
    started with ``*``, so the job follows elapsed time across DST instead of wall time.
    """

    source: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_star: bool
    dow_star: bool
    hour_wildcard: bool
    _sec: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _min: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hour: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dom: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _month: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sets = (self.seconds, self.minutes, self.hours, self.days_of_month, self.months)
        if not all(sets) or not self.days_of_week:
            raise ValueError("every cron field needs at least one value")
        for name, values in zip(("_sec", "_min", "_hour", "_dom", "_month"), sets, strict=True):
            object.__setattr__(self, name, tuple(sorted(values)))

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        """Parse and validate; raises :class:`InvalidCronExpression` naming the field."""
        text, parts, sets = parse_fields(expression)
        return cls(
            source=text,
            seconds=sets[0],
            minutes=sets[1],
            hours=sets[2],
            days_of_month=sets[3],
            months=sets[4],
            days_of_week=sets[5],
            dom_star=parts[3].startswith("*"),
            dow_star=parts[5].startswith("*"),
            hour_wildcard=parts[2].startswith("*"),
        )

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first firing strictly after ``after`` (aware), in UTC; None past the horizon."""
        start = epoch_of(after) + 1
        fire = _next_epoch(self, tz, start, start + _HORIZON)
        return None if fire is None else utc_of(fire)

    def fires_between(self, since: datetime, until: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        """Every firing in ``(since, until]``, as aware UTC, strictly increasing."""
        last, end = epoch_of(since), epoch_of(until)
        while last < end:
            fire = _next_epoch(self, tz, last + 1, min(end, last + _HORIZON))
            if fire is None:
                return
            yield utc_of(fire)
            last = fire

    # -- wall-time matching (naive local seconds since 1970-01-01 00:00) --------------------

    def _next_wall(self, low: int, high: int) -> int | None:
        """The first matching wall time in ``[low, high]``."""
        days, second_of_day = divmod(low, DAY)
        day = date.fromordinal(EPOCH_ORDINAL + days)
        last = date.fromordinal(EPOCH_ORDINAL + high // DAY)
        while day <= last:
            found = self._next_date(day, last)
            if found is None:
                return None
            if found != day:
                second_of_day = 0
            time_of_day = self._next_time(second_of_day)
            if time_of_day is not None:
                wall = (found.toordinal() - EPOCH_ORDINAL) * DAY + time_of_day
                return wall if wall <= high else None
            day, second_of_day = found + timedelta(days=1), 0
        return None

    def _next_time(self, second_of_day: int) -> int | None:
        """The first matching second of the day at or after ``second_of_day``."""
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        hours, minutes, seconds = self._hour, self._min, self._sec
        i = bisect.bisect_left(hours, hour)
        if i < len(hours) and hours[i] == hour:
            j = bisect.bisect_left(minutes, minute)
            if j < len(minutes) and minutes[j] == minute:
                k = bisect.bisect_left(seconds, second)
                if k < len(seconds):
                    return hour * 3600 + minute * 60 + seconds[k]
                j += 1
            if j < len(minutes):
                return hour * 3600 + minutes[j] * 60 + seconds[0]
            i += 1
        if i < len(hours):
            return hours[i] * 3600 + minutes[0] * 60 + seconds[0]
        return None

    def _next_date(self, day: date, last: date) -> date | None:
        """The first matching date in ``[day, last]``, skipping whole months."""
        year, month, first = day.year, day.month, day.day
        while (year, month) <= (last.year, last.month):
            i = bisect.bisect_left(self._month, month)
            if i == len(self._month):
                year, month, first = year + 1, self._month[0], 1
                continue
            if self._month[i] != month:
                month, first = self._month[i], 1
            found = self._day_in_month(year, month, first)
            if found is not None:
                result = date(year, month, found)
                return result if result <= last else None
            year, month, first = (year, month + 1, 1) if month < 12 else (year + 1, 1, 1)
        return None

    def _day_in_month(self, year: int, month: int, first: int) -> int | None:
        length = calendar.monthrange(year, month)[1]
        if first > length:
            return None
        weekday = (date(year, month, first).weekday() + 1 - first) % 7  # Sunday = 0, offset by day
        if self.dom_star or self.dow_star:  # both must match
            for day in self._dom[bisect.bisect_left(self._dom, first) :]:
                if day > length:
                    return None
                if (weekday + day) % 7 in self.days_of_week:
                    return day
            return None
        for day in range(first, length + 1):  # either may match
            if day in self.days_of_month or (weekday + day) % 7 in self.days_of_week:
                return day
        return None


def next_fires(
    expression: str | CronExpression, tz: str | ZoneInfo, after: datetime, n: int
) -> list[datetime]:
    """The next ``n`` firings strictly after ``after``, as aware UTC (fewer past the horizon)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cron = CronExpression.parse(expression) if isinstance(expression, str) else expression
    zone = parse_timezone(tz) if isinstance(tz, str) else tz
    fires: list[datetime] = []
    at = after
    while len(fires) < n:
        fire = cron.next_fire(at, zone)
        if fire is None:
            break
        fires.append(fire)
        at = fire
    return fires


def _next_epoch(cron: CronExpression, tz: ZoneInfo, start: int, limit: int) -> int | None:
    """The first firing at or after ``start`` and at or before ``limit`` (epoch seconds).

    Walks UTC segments of constant offset. In a segment, matching wall times map to instants
    one to one. A fixed-time job additionally skips wall times the previous segment already
    showed (fall-back) and fires at the segment's first instant if a wall time it skipped
    (spring-forward gap) matches.
    """
    segment_start = max(start, MIN_EPOCH)
    limit = min(limit, MAX_EPOCH)
    while segment_start <= limit:
        offset = offset_at(tz, segment_start)
        low_wall = segment_start + offset
        if not cron.hour_wildcard:
            previous = last_transition(tz, segment_start)
            if previous is not None:
                at, before, after = previous
                if before > after:
                    low_wall = max(low_wall, at + before)
                elif (
                    at == segment_start and cron._next_wall(at + before, at + after - 1) is not None
                ):
                    return at
        # Offsets differ by less than a day, so a day of slack finds any wall time <= limit.
        wall = cron._next_wall(low_wall, limit + offset + DAY)
        candidate = limit + 1 if wall is None else wall - offset
        change = next_transition(tz, segment_start, min(candidate, limit))
        if change is None:
            return candidate if candidate <= limit else None
        segment_start = change[0]
    return None
