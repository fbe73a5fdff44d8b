"""Scheduled jobs: the validated model, field rules, fire ids and the misfire policy. Pure.

The SQL adapter stores :class:`ScheduledJob`; the scheduler service asks :func:`plan_fire`
what to do for a schedule at a given instant. Every field rule lives here so the Python API,
the HTTP API and the store give the same answer (and name the same field) on every database.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from corral.core.cron import CronExpression, parse_timezone
from corral.core.job_data import DEFAULT_MAX_DATA_BYTES, validate_data
from corral.core.text import name_problem
from corral.core.validation import check_name, check_text, is_strict_int, strict_int
from corral.errors import InvalidCronExpression, ValidationError

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
MAX_SCHEDULE_NAME: Final = 128
MAX_DESCRIPTION: Final = 64 * 1024
MAX_DOMAIN: Final = 64
MAX_RETRY_ATTEMPTS: Final = 100
MAX_MS: Final = 24 * 60 * 60 * 1000
DEFAULT_CATCH_UP_MS: Final = 10 * 60 * 1000
MAX_COUNTED_MISSES: Final = 100_000
#: A tick at most this late is "late", not "missed": it fires on its own, even when the next
#: tick is due too (a busy machine or a paused process must not coalesce a 1-second schedule).
#: Older ticks are misfires and coalesce (Quartz calls this the misfire threshold).
MISFIRE_THRESHOLD: Final = timedelta(seconds=5)


class ScheduleStatus(IntEnum):
    """1 fires; 0 (disabled) and 2 (paused) do not. Re-enabled schedules resume from the next
    tick after the change (no burst of the ticks missed meanwhile)."""

    DISABLED = 0
    ENABLED = 1
    PAUSED = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledJob:
    """One row of ``system_scheduled_jobs``. Times are aware UTC; ms fields are integers."""

    id: UUID
    name: str
    handler_name: str
    cron_expression: str
    domain: str
    description: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    status: ScheduleStatus = ScheduleStatus.ENABLED
    payload: dict[str, Any] = field(default_factory=dict)
    retry_attempts: int = 3
    retry_delay: int = 5000
    timeout: int = 30_000
    priority: int = 5
    catch_up_ms: int | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def cron(self) -> CronExpression:
        return _parse_cron(self.cron_expression)

    @property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)


@functools.lru_cache(maxsize=16384)
def _parse_cron(expression: str) -> CronExpression:
    """Parsed once per distinct expression: the scheduler asks for ``.cron`` on every tick."""
    return CronExpression.parse(expression)


# -- field rules -----------------------------------------------------------------------------

#: Fields a caller may set, in snake_case; the HTTP layer maps camelCase onto these.
WRITABLE: Final = (
    "name",
    "description",
    "handler_name",
    "cron_expression",
    "timezone",
    "status",
    "payload",
    "retry_attempts",
    "retry_delay",
    "timeout",
    "priority",
    "domain",
    "catch_up_ms",
)
REQUIRED: Final = ("name", "handler_name", "cron_expression", "domain")


def _text(value: object, path: str, *, max_len: int, blank_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, got {type(value).__name__}")
    if not blank_ok and not value.strip():
        raise ValidationError(path, "must not be empty or blank")
    if len(value) > max_len:
        raise ValidationError(path, f"must be at most {max_len} characters, got {len(value)}")
    check_text(value, path, "must not contain NUL characters")
    return value


def _single_line(value: str, path: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValidationError(path, problem)
    return value


def _payload(value: object, path: str, max_bytes: int = DEFAULT_MAX_DATA_BYTES) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(path, f"must be a JSON object, got {type(value).__name__}")
    try:
        return validate_data(value, path, max_bytes=max_bytes)
    except ValidationError as exc:
        raise ValidationError(exc.path, exc.problem) from None


def _v_name(value: object) -> str:
    return _single_line(_text(value, "name", max_len=MAX_SCHEDULE_NAME), "name")


def _v_description(value: object) -> str | None:
    return (
        None
        if value is None
        else _text(value, "description", max_len=MAX_DESCRIPTION, blank_ok=True)
    )


def _v_cron(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("cron_expression", f"must be a string, got {type(value).__name__}")
    try:
        return _parse_cron(value).source
    except InvalidCronExpression as exc:
        raise ValidationError("cron_expression", exc.problem) from None


def _v_timezone(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("timezone", "unknown IANA time zone (expected a string)")
    parse_timezone(value)
    return value


_STATUS_NUMBERS: Final = frozenset(s.value for s in ScheduleStatus)
STATUS_CHOICES: Final = ", ".join(f"'{s.name.lower()}' ({s.value})" for s in ScheduleStatus)


def _v_status(value: object) -> ScheduleStatus:
    """A status by number (as stored and answered) or by its lower-case name: "paused" is 2."""
    if isinstance(value, str) and value.islower() and value.upper() in ScheduleStatus.__members__:
        return ScheduleStatus[value.upper()]
    if is_strict_int(value) and value in _STATUS_NUMBERS:
        return ScheduleStatus(value)
    raise ValidationError("status", f"must be one of {STATUS_CHOICES}, by name or number")


def _v_domain(value: object) -> str:
    return _single_line(_text(value, "domain", max_len=MAX_DOMAIN), "domain")


def _v_catch_up(value: object) -> int | None:
    return None if value is None else strict_int(value, "catch_up_ms", 0, 7 * MAX_MS)


_VALIDATORS: Final[dict[str, Callable[[object], Any]]] = {
    "name": _v_name,
    "description": _v_description,
    "handler_name": lambda v: check_name(v, "handler_name"),
    "cron_expression": _v_cron,
    "timezone": _v_timezone,
    "status": _v_status,
    "payload": lambda v: _payload(v, "payload"),
    "retry_attempts": lambda v: strict_int(v, "retry_attempts", 0, MAX_RETRY_ATTEMPTS),
    "retry_delay": lambda v: strict_int(v, "retry_delay", 0, MAX_MS),
    "timeout": lambda v: strict_int(v, "timeout", 1, MAX_MS),
    "priority": lambda v: strict_int(v, "priority", 1, 20),
    "domain": _v_domain,
    "catch_up_ms": _v_catch_up,
}


def validate_field(
    name: str, value: object, *, max_payload_bytes: int = DEFAULT_MAX_DATA_BYTES
) -> Any:
    """Validate one writable field; raise ValidationError(path=name, problem). The payload is
    the data of every job the schedule fires, so it has the job data cap."""
    if name == "payload":
        return _payload(value, "payload", max_payload_bytes)
    validator = _VALIDATORS.get(name)
    if validator is None:
        raise ValidationError(name, "unknown field")
    return validator(value)


def validate_changes(
    changes: Mapping[str, object],
    *,
    creating: bool,
    max_payload_bytes: int = DEFAULT_MAX_DATA_BYTES,
) -> dict[str, Any]:
    """Validate a create (all required fields present) or an update (at least one field)."""
    unknown = [k for k in changes if k not in WRITABLE]
    if unknown:
        raise ValidationError(unknown[0], "unknown field")
    if creating:
        for name in REQUIRED:
            if name not in changes or changes[name] is None:
                raise ValidationError(name, "is required")
    elif not changes:
        raise ValidationError("body", "no fields to change")
    clean = {}
    for name, value in changes.items():
        if value is None and name not in ("description", "catch_up_ms", "payload"):
            raise ValidationError(name, "must not be null")
        clean[name] = validate_field(name, value, max_payload_bytes=max_payload_bytes)
    return clean


def new_schedule(id: UUID, fields: Mapping[str, Any], now: datetime) -> ScheduledJob:
    """Build a ScheduledJob from validated create fields (the defaults are ScheduledJob's)."""
    return ScheduledJob(id=id, created_at=now, updated_at=now, **dict(fields))


def apply_changes(job: ScheduledJob, fields: Mapping[str, Any], now: datetime) -> ScheduledJob:
    return replace(job, updated_at=now, **dict(fields))


# -- firing ----------------------------------------------------------------------------------


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


def payload_json(payload: Mapping[str, Any]) -> str:
    """Canonical JSON of a payload (no NaN), for storage."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
