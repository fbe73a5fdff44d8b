"""Scheduled jobs: the validated model and its field rules. Pure.

The SQL adapter stores :class:`ScheduledJob`; fire ids and the misfire policy are in
``core.misfire`` (importable from here too). Every field rule lives here so the Python API,
the HTTP API and the store give the same answer (and name the same field) on every database.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from corral.core.cron import CronExpression, parse_timezone
from corral.core.job_data import DEFAULT_MAX_DATA_BYTES, validate_data
from corral.core.misfire import DEFAULT_CATCH_UP_MS as DEFAULT_CATCH_UP_MS
from corral.core.misfire import MAX_COUNTED_MISSES as MAX_COUNTED_MISSES
from corral.core.misfire import MISFIRE_THRESHOLD as MISFIRE_THRESHOLD
from corral.core.misfire import FirePlan as FirePlan
from corral.core.misfire import epoch_ms as epoch_ms
from corral.core.misfire import fire_id as fire_id
from corral.core.misfire import missed_id as missed_id
from corral.core.misfire import plan_fire as plan_fire
from corral.core.text import name_problem
from corral.core.validation import check_name, check_text, is_strict_int, strict_int
from corral.errors import InvalidCronExpression, ValidationError

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
MAX_SCHEDULE_NAME: Final = 128
MAX_DESCRIPTION: Final = 64 * 1024
MAX_DOMAIN: Final = 64
MAX_RETRY_ATTEMPTS: Final = 100
MAX_MS: Final = 24 * 60 * 60 * 1000


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


def _text(value: object, path: str, *, max_len: int, blank_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, got {type(value).__name__}")
    if not blank_ok and not value.strip():
        raise ValidationError(path, "must not be empty or blank")
    if len(value) > max_len:
        raise ValidationError(path, f"must be at most {max_len} characters, got {len(value)}")
    check_text(value, path, "must not contain NUL characters")
    return value


def _name(value: object, path: str, max_len: int) -> str:
    """A name people read (see ``core.text``): one line, nothing invisible."""
    text = _text(value, path, max_len=max_len)
    problem = name_problem(text)
    if problem is not None:
        raise ValidationError(path, problem)
    return text


def _payload(value: object, path: str, max_bytes: int = DEFAULT_MAX_DATA_BYTES) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(path, f"must be a JSON object, got {type(value).__name__}")
    try:
        return validate_data(value, path, max_bytes=max_bytes)
    except ValidationError as exc:
        raise ValidationError(exc.path, exc.problem) from None


def _v_description(value: object) -> str | None:
    if value is None:
        return None
    return _text(value, "description", max_len=MAX_DESCRIPTION, blank_ok=True)


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


def _v_catch_up(value: object) -> int | None:
    return None if value is None else strict_int(value, "catch_up_ms", 0, 7 * MAX_MS)


_VALIDATORS: Final[dict[str, Callable[[object], Any]]] = {
    "name": lambda v: _name(v, "name", MAX_SCHEDULE_NAME),
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
    "domain": lambda v: _name(v, "domain", MAX_DOMAIN),
    "catch_up_ms": _v_catch_up,
}
#: Fields a caller may set, in snake_case; the HTTP layer maps camelCase onto these.
WRITABLE: Final = tuple(_VALIDATORS)
REQUIRED: Final = ("name", "handler_name", "cron_expression", "domain")


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


def payload_json(payload: Mapping[str, Any]) -> str:
    """Canonical JSON of a payload (no NaN), for storage."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
