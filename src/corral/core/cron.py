"""Cron expressions: strict parsing and DST-correct firing times. Pure: no I/O, no clock.

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
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from corral.errors import InvalidCronExpression, ValidationError

__all__ = [
    "MAX_LENGTH",
    "SEARCH_HORIZON_YEARS",
    "CronExpression",
    "next_fires",
    "parse_timezone",
]

MAX_LENGTH = 64
SEARCH_HORIZON_YEARS = 50

# (name, minimum, maximum for explicit numbers, maximum for '*' and 'N/S')
_FIELDS = (
    ("second", 0, 59, 59),
    ("minute", 0, 59, 59),
    ("hour", 0, 23, 23),
    ("day-of-month", 1, 31, 31),
    ("month", 1, 12, 12),
    ("day-of-week", 0, 7, 6),
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES: dict[str, dict[str, int]] = {
    "month": {name: i for i, name in enumerate(_MONTHS, start=1)},
    "day-of-week": {name: i for i, name in enumerate(_DAYS)},
}
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February in a leap year
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})  # host files, not real zones

_DAY = 86_400
_PROBE = 6 * 3600
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_EPOCH = (date(3, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
_MAX_EPOCH = (date(9998, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
_HORIZON = SEARCH_HORIZON_YEARS * 366 * _DAY

_Transition = tuple[int, int, int]  # (instant, offset before, offset after), epoch seconds


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
        if not isinstance(expression, str):
            raise InvalidCronExpression(repr(expression), "", "must be a string")
        text = expression.strip()
        if len(text) > MAX_LENGTH:
            problem = f"{len(text)} characters; at most {MAX_LENGTH} allowed"
            raise InvalidCronExpression(text[:MAX_LENGTH], "", problem)
        for position, char in enumerate(text):
            if not char.isascii():
                problem = f"non-ASCII character U+{ord(char):04X} at position {position}"
                raise InvalidCronExpression(text, "", problem)
        if text.startswith("@"):
            problem = (
                f"{text}: @-aliases are not supported; write the fields (@daily = '0 0 0 * * *')"
            )
            raise InvalidCronExpression(text, "", problem)
        parts = text.split()
        if len(parts) not in (5, 6):
            raise InvalidCronExpression(text, "", f"expected 5 or 6 fields, got {len(parts)}")
        if len(parts) == 5:
            parts.insert(0, "0")
        sets = [_parse_field(text, spec, part) for spec, part in zip(_FIELDS, parts, strict=True)]
        dom_star, dow_star = parts[3].startswith("*"), parts[5].startswith("*")
        if (dom_star or dow_star) and min(sets[3]) > max(_LONGEST_MONTH[m - 1] for m in sets[4]):
            problem = f"never fires: day {_fmt(sets[3])} does not exist in month {_fmt(sets[4])}"
            raise InvalidCronExpression(text, "", problem)
        return cls(
            source=text,
            seconds=sets[0],
            minutes=sets[1],
            hours=sets[2],
            days_of_month=sets[3],
            months=sets[4],
            days_of_week=sets[5],
            dom_star=dom_star,
            dow_star=dow_star,
            hour_wildcard=parts[2].startswith("*"),
        )

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first firing strictly after ``after`` (aware), in UTC; None past the horizon."""
        start = _epoch(after) + 1
        fire = _next_epoch(self, tz, start, start + _HORIZON)
        return None if fire is None else _utc(fire)

    def fires_between(self, since: datetime, until: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        """Every firing in ``(since, until]``, as aware UTC, strictly increasing."""
        last, end = _epoch(since), _epoch(until)
        while last < end:
            fire = _next_epoch(self, tz, last + 1, min(end, last + _HORIZON))
            if fire is None:
                return
            yield _utc(fire)
            last = fire

    # -- wall-time matching (naive local seconds since 1970-01-01 00:00) --------------------

    def _next_wall(self, low: int, high: int) -> int | None:
        """The first matching wall time in ``[low, high]``."""
        days, second_of_day = divmod(low, _DAY)
        day = date.fromordinal(_EPOCH_ORDINAL + days)
        last = date.fromordinal(_EPOCH_ORDINAL + high // _DAY)
        while day <= last:
            found = self._next_date(day, last)
            if found is None:
                return None
            if found != day:
                second_of_day = 0
            time_of_day = self._next_time(second_of_day)
            if time_of_day is not None:
                wall = (found.toordinal() - _EPOCH_ORDINAL) * _DAY + time_of_day
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


def parse_timezone(name: str) -> ZoneInfo:
    """The zone for an exact IANA name; raises ``ValidationError('timezone', ...)`` otherwise.

    Only names listed by ``zoneinfo.available_timezones()`` pass, compared exactly, so case
    variants, padding, offsets like ``UTC+8`` and file paths never reach the filesystem.
    """
    if not isinstance(name, str) or name not in _zone_names():
        shown = repr(name) if not isinstance(name, str) or len(name) <= 40 else repr(name[:40])
        raise ValidationError("timezone", f"unknown IANA time zone {shown}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError("timezone", f"unknown IANA time zone {name!r}") from exc


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


# -- parsing helpers ------------------------------------------------------------------------


def _parse_field(expression: str, spec: tuple[str, int, int, int], text: str) -> frozenset[int]:
    name = spec[0]
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidCronExpression(expression, name, f"empty list item in {text!r}")
        values.update(_parse_item(expression, spec, item))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _parse_item(expression: str, spec: tuple[str, int, int, int], item: str) -> range:
    name, low, _, star_high = spec
    for char, problem in (("?", "'?' is not supported; use '*'"), ("#", "'#' is not supported")):
        if char in item:
            raise InvalidCronExpression(expression, name, problem)
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        step = _number(expression, name, step_text, "step")
        if not 1 <= step <= star_high - low + 1:
            raise InvalidCronExpression(
                expression, name, f"step {step} out of range 1-{star_high - low + 1}"
            )
    if base == "*":
        return range(low, star_high + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _value(expression, spec, first_text)
    last = _value(expression, spec, last_text) if dash else (star_high if slash else first)
    if first > last:
        raise InvalidCronExpression(expression, name, f"range {base} is reversed")
    return range(first, last + 1, step)


def _value(expression: str, spec: tuple[str, int, int, int], token: str) -> int:
    name, low, high, _ = spec
    names = _NAMES.get(name, {})
    value = names[token.upper()] if token.upper() in names else _number(expression, name, token)
    if not low <= value <= high:
        raise InvalidCronExpression(expression, name, f"{value} out of range {low}-{high}")
    return value


def _number(expression: str, name: str, token: str, what: str = "value") -> int:
    if token and all("0" <= char <= "9" for char in token):
        return int(token)
    upper = token.upper()
    if upper.startswith("L") or (upper.endswith("L") and upper[:-1].isdigit()):
        problem = f"{token!r}: 'L' (last day) is not supported"
    elif upper.endswith("W") and upper[:-1].isdigit():
        problem = f"{token!r}: 'W' (nearest weekday) is not supported"
    elif not token:
        problem = f"empty {what}"
    else:
        problem = f"invalid {what} {token!r}"
    raise InvalidCronExpression(expression, name, problem)


def _fmt(values: frozenset[int]) -> str:
    return ",".join(str(value) for value in sorted(values))


# -- time helpers (epoch seconds; walls are naive local seconds) -----------------------------


def _epoch(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("cron times must be timezone-aware")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _offset(tz: ZoneInfo, epoch: int) -> int:
    offset = datetime.fromtimestamp(epoch, tz).utcoffset()
    return 0 if offset is None else offset.days * _DAY + offset.seconds


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY


@functools.lru_cache(maxsize=2048)
def _transitions(tz: ZoneInfo, year: int) -> tuple[_Transition, ...]:
    """The offset changes with instants in ``(start of year, start of next year]`` (UTC)."""
    found: list[_Transition] = []
    end = _year_start(year + 1)
    before, before_offset = _year_start(year), _offset(tz, _year_start(year))
    while before < end:
        probe = min(before + _PROBE, end)
        probe_offset = _offset(tz, probe)
        if probe_offset != before_offset:
            low, high = before, probe  # offset(low) == before_offset != offset(high)
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (
                    (middle, high) if _offset(tz, middle) == before_offset else (low, middle)
                )
            found.append((high, before_offset, _offset(tz, high)))
        before, before_offset = probe, probe_offset
    return tuple(found)


def _year_of(epoch: int) -> int:
    return date.fromordinal(_EPOCH_ORDINAL + epoch // _DAY).year


def _next_transition(tz: ZoneInfo, after: int, until: int) -> _Transition | None:
    """The first transition in ``(after, until]``."""
    for year in range(_year_of(after), _year_of(until) + 1):
        changes = _transitions(tz, year)
        i = bisect.bisect_right(changes, after, key=lambda change: change[0])
        if i < len(changes):
            return changes[i] if changes[i][0] <= until else None
    return None


def _last_transition(tz: ZoneInfo, at: int) -> _Transition | None:
    """The last transition at or before ``at`` (looking back about a year at most)."""
    year = _year_of(at)
    changes = _transitions(tz, year)
    i = bisect.bisect_right(changes, at, key=lambda change: change[0])
    if i:
        return changes[i - 1]
    earlier = _transitions(tz, year - 1)
    return earlier[-1] if earlier else None


def _next_epoch(cron: CronExpression, tz: ZoneInfo, start: int, limit: int) -> int | None:
    """The first firing at or after ``start`` and at or before ``limit`` (epoch seconds).

    Walks UTC segments of constant offset. In a segment, matching wall times map to instants
    one to one. A fixed-time job additionally skips wall times the previous segment already
    showed (fall-back) and fires at the segment's first instant if a wall time it skipped
    (spring-forward gap) matches.
    """
    segment_start = max(start, _MIN_EPOCH)
    limit = min(limit, _MAX_EPOCH)
    while segment_start <= limit:
        offset = _offset(tz, segment_start)
        low_wall = segment_start + offset
        if not cron.hour_wildcard:
            previous = _last_transition(tz, segment_start)
            if previous is not None:
                at, before, after = previous
                if before > after:
                    low_wall = max(low_wall, at + before)
                elif (
                    at == segment_start and cron._next_wall(at + before, at + after - 1) is not None
                ):
                    return at
        # Offsets differ by less than a day, so a day of slack finds any wall time <= limit.
        wall = cron._next_wall(low_wall, limit + offset + _DAY)
        candidate = limit + 1 if wall is None else wall - offset
        change = _next_transition(tz, segment_start, min(candidate, limit))
        if change is None:
            return candidate if candidate <= limit else None
        segment_start = change[0]
    return None
