"""Time for cron: epoch seconds, a zone's offset transitions, and exact IANA zone names. Pure.

Walls are naive local seconds since 1970-01-01 00:00; instants are epoch seconds (UTC).
"""

from __future__ import annotations

import bisect
import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from corral.errors import ValidationError

_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})  # host files, not real zones

DAY = 86_400
_PROBE = 6 * 3600
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MIN_EPOCH = (date(3, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY
MAX_EPOCH = (date(9998, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY

Transition = tuple[int, int, int]  # (instant, offset before, offset after), epoch seconds


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


def epoch_of(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("cron times must be timezone-aware")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)


def utc_of(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def offset_at(tz: ZoneInfo, epoch: int) -> int:
    offset = datetime.fromtimestamp(epoch, tz).utcoffset()
    return 0 if offset is None else offset.days * DAY + offset.seconds


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY


@functools.lru_cache(maxsize=2048)
def _transitions(tz: ZoneInfo, year: int) -> tuple[Transition, ...]:
    """The offset changes with instants in ``(start of year, start of next year]`` (UTC)."""
    found: list[Transition] = []
    end = _year_start(year + 1)
    before, before_offset = _year_start(year), offset_at(tz, _year_start(year))
    while before < end:
        probe = min(before + _PROBE, end)
        probe_offset = offset_at(tz, probe)
        if probe_offset != before_offset:
            low, high = before, probe  # offset(low) == before_offset != offset(high)
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (
                    (middle, high) if offset_at(tz, middle) == before_offset else (low, middle)
                )
            found.append((high, before_offset, offset_at(tz, high)))
        before, before_offset = probe, probe_offset
    return tuple(found)


def _year_of(epoch: int) -> int:
    return date.fromordinal(EPOCH_ORDINAL + epoch // DAY).year


def next_transition(tz: ZoneInfo, after: int, until: int) -> Transition | None:
    """The first transition in ``(after, until]``."""
    for year in range(_year_of(after), _year_of(until) + 1):
        changes = _transitions(tz, year)
        i = bisect.bisect_right(changes, after, key=lambda change: change[0])
        if i < len(changes):
            return changes[i] if changes[i][0] <= until else None
    return None


def last_transition(tz: ZoneInfo, at: int) -> Transition | None:
    """The last transition at or before ``at`` (looking back about a year at most)."""
    year = _year_of(at)
    changes = _transitions(tz, year)
    i = bisect.bisect_right(changes, at, key=lambda change: change[0])
    if i:
        return changes[i - 1]
    earlier = _transitions(tz, year - 1)
    return earlier[-1] if earlier else None
