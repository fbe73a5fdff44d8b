"""The job model: priorities, statuses, and validated options.

Everything here is pure: values in, values or :class:`~corral.errors.InvalidJobOptions` out.
The adapter (``adapters/bullmq/mapping.py``) turns a validated :class:`JobSpec` into BullMQ's
wire options; nothing in the core knows BullMQ's inverted priority scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final, Literal

from corral.core.job_data import DEFAULT_MAX_DATA_BYTES as DEFAULT_MAX_DATA_BYTES
from corral.core.job_data import validate_data as validate_data
from corral.core.job_ids import RESERVED_JOB_IDS as RESERVED_JOB_IDS
from corral.core.job_ids import is_job_id as is_job_id
from corral.core.job_ids import job_id_problem as job_id_problem
from corral.core.text import name_problem
from corral.core.validation import check_name, is_strict_int, strict_int
from corral.errors import InvalidJobOptions

MIN_PRIORITY: Final = 1
MAX_PRIORITY: Final = 20
MAX_ATTEMPTS: Final = 100
MAX_DURATION_MS: Final = 24 * 60 * 60 * 1000  # 24 h cap on timeout, delay and backoff delay
MAX_DELAY_MS: Final = 365 * 24 * 60 * 60 * 1000  # a job may be delayed up to a year
MAX_CATEGORY_LENGTH: Final = 64
MAX_BULK_JOBS: Final = 1000


class JobPriority(IntEnum):
    """Corral's priority scale: a larger number is MORE urgent. Any integer 1-20 is accepted."""

    LOW = 1
    NORMAL = 5
    HIGH = 10
    CRITICAL = 20


class JobExecutionStatus(StrEnum):
    """The states an execution-log row can be in. The first six are a queue job's; ``missed``
    is a row the scheduler writes for a range of a schedule's ticks that were skipped, not run
    (no queue job exists for it)."""

    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DELAYED = "delayed"
    PAUSED = "paused"
    MISSED = "missed"


BackoffType = Literal["fixed", "exponential"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay between attempts: ``fixed`` waits ``delay_ms`` each time; ``exponential`` waits
    ``delay_ms * 2 ** (attempt - 1)``."""

    type: BackoffType = "exponential"
    delay_ms: int = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How many finished jobs Redis keeps: at most ``count``, none older than ``age_s``.

    ``None`` for both keeps everything; ``count=0`` removes the job as soon as it finishes.
    """

    count: int | None = None
    age_s: int | None = None


DEFAULT_REMOVE_ON_COMPLETE: Final = Retention(count=1000, age_s=24 * 3600)
DEFAULT_REMOVE_ON_FAIL: Final = Retention(count=5000, age_s=7 * 24 * 3600)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """Validated options of one job. Build it with :func:`parse_options`."""

    priority: int = JobPriority.NORMAL
    category: str | None = None
    timeout_ms: int | None = 30_000
    delay_ms: int = 0
    attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    job_id: str | None = None
    remove_on_complete: Retention = DEFAULT_REMOVE_ON_COMPLETE
    remove_on_fail: Retention = DEFAULT_REMOVE_ON_FAIL


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A job ready to enqueue: handler name, JSON-object data, validated options."""

    name: str
    data: dict[str, Any]
    options: JobOptions


_DEFAULT_OPTIONS: Final = JobOptions()


def _int(value: object, path: str, *, low: int, high: int) -> int:
    return strict_int(value, path, low, high, error=InvalidJobOptions)


def _priority(value: object, path: str) -> int:
    if isinstance(value, str) and value.upper() in JobPriority.__members__:
        return int(JobPriority[value.upper()])
    return _int(value, path, low=MIN_PRIORITY, high=MAX_PRIORITY)


def _backoff(value: object, path: str) -> Backoff:
    if isinstance(value, Backoff):
        value = {"type": value.type, "delay": value.delay_ms}
    if is_strict_int(value):
        return Backoff(type="fixed", delay_ms=_int(value, path, low=0, high=MAX_DURATION_MS))
    if not isinstance(value, Mapping):
        raise InvalidJobOptions(
            path, "must be a delay in ms or {'type': 'fixed'|'exponential', 'delay': ms}"
        )
    unknown = set(value) - {"type", "delay"}
    if unknown:
        raise InvalidJobOptions(f"{path}.{sorted(unknown)[0]}", "unknown backoff field")
    kind = value.get("type", "exponential")
    if kind not in ("fixed", "exponential"):
        raise InvalidJobOptions(f"{path}.type", f"must be 'fixed' or 'exponential', got {kind!r}")
    delay = _int(value.get("delay", 5000), f"{path}.delay", low=0, high=MAX_DURATION_MS)
    return Backoff(type=kind, delay_ms=delay)


def _retention(value: object, path: str) -> Retention:
    if isinstance(value, Retention):
        return value
    if value is True:
        return Retention(count=0)
    if value is False:
        return Retention()
    if isinstance(value, int):
        return Retention(count=_int(value, path, low=0, high=10_000_000))
    if isinstance(value, Mapping):
        unknown = set(value) - {"count", "age"}
        if unknown:
            raise InvalidJobOptions(f"{path}.{sorted(unknown)[0]}", "unknown retention field")
        count = value.get("count")
        age = value.get("age")
        return Retention(
            count=None if count is None else _int(count, f"{path}.count", low=0, high=10_000_000),
            age_s=None if age is None else _int(age, f"{path}.age", low=0, high=10 * 365 * 86400),
        )
    raise InvalidJobOptions(path, "must be a bool, a count, or {'count': n, 'age': seconds}")


def _job_id(value: object, path: str) -> str | None:
    if value is None:
        return None
    problem = job_id_problem(value)
    if problem is not None:
        raise InvalidJobOptions(path, problem)
    return str(value)


def _category(value: object, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CATEGORY_LENGTH:
        raise InvalidJobOptions(path, f"must be a string of 1-{MAX_CATEGORY_LENGTH} characters")
    problem = name_problem(value)  # shown in the dashboard and in logs
    if problem is not None:
        raise InvalidJobOptions(path, problem)
    return value


#: Each ``add_job`` option: the JobOptions field it sets, and its check.
_OPTIONS: Final[dict[str, tuple[str, Callable[[object, str], Any]]]] = {
    "priority": ("priority", _priority),
    "category": ("category", _category),
    "timeout": (
        "timeout_ms",
        lambda v, p: None if v is None else _int(v, p, low=1, high=MAX_DURATION_MS),
    ),
    "delay": ("delay_ms", lambda v, p: _int(v, p, low=0, high=MAX_DELAY_MS)),
    "attempts": ("attempts", lambda v, p: _int(v, p, low=1, high=MAX_ATTEMPTS)),
    "backoff": ("backoff", _backoff),
    "job_id": ("job_id", _job_id),
    "remove_on_complete": ("remove_on_complete", _retention),
    "remove_on_fail": ("remove_on_fail", _retention),
}
OPTION_NAMES: Final = frozenset(_OPTIONS)


def parse_options(
    raw: Mapping[str, object], *, defaults: JobOptions | None = None, path: str = "options"
) -> JobOptions:
    """Validate the ``add_job`` keyword options. Unknown names are an error."""
    base = defaults or _DEFAULT_OPTIONS
    unknown = raw.keys() - OPTION_NAMES
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidJobOptions(
            f"{path}.{name}", f"unknown option (known: {', '.join(sorted(OPTION_NAMES))})"
        )
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        field_name, check = _OPTIONS[name]
        fields[field_name] = check(value, f"{path}.{name}")
    return dataclasses.replace(base, **fields) if fields else base


def validate_name(name: object, path: str = "name") -> str:
    """A job name selects its handler (the rule of ``core.validation.check_name``)."""
    if not isinstance(name, str):
        raise InvalidJobOptions(path, f"must be a string, got {type(name).__name__}")
    return check_name(name, path, error=InvalidJobOptions)


def build_spec(
    name: object,
    data: object,
    options: Mapping[str, object],
    *,
    defaults: JobOptions | None = None,
    path: str = "",
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
) -> JobSpec:
    """Validate one job; ``path`` prefixes field names (``jobs[3].``) for bulk errors."""
    return JobSpec(
        name=validate_name(name, f"{path}name"),
        data=validate_data(data, f"{path}data", max_bytes=max_data_bytes),
        options=parse_options(options, defaults=defaults, path=f"{path}options"),
    )


def build_bulk(
    items: object,
    *,
    defaults: JobOptions | None = None,
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
) -> list[JobSpec]:
    """Validate a whole batch before anything is enqueued: one bad item rejects all."""
    if not isinstance(items, list | tuple):
        raise InvalidJobOptions("jobs", "must be a list of {'name', 'data', 'options'} objects")
    if len(items) > MAX_BULK_JOBS:
        raise InvalidJobOptions("jobs", f"at most {MAX_BULK_JOBS} jobs per call, got {len(items)}")
    specs = []
    for index, item in enumerate(items):
        prefix = f"jobs[{index}]."
        if not isinstance(item, Mapping):
            raise InvalidJobOptions(
                f"jobs[{index}]", "must be an object with 'name', 'data', 'options'"
            )
        unknown = set(item) - {"name", "data", "options", "opts"}
        if unknown:
            raise InvalidJobOptions(f"{prefix}{sorted(unknown)[0]}", "unknown field")
        raw_options = item.get("options", item.get("opts"))
        if raw_options is None:
            raw_options = {}
        if not isinstance(raw_options, Mapping):
            raise InvalidJobOptions(f"{prefix}options", "must be an object")
        specs.append(
            build_spec(
                item.get("name"),
                item.get("data"),
                raw_options,
                defaults=defaults,
                path=prefix,
                max_data_bytes=max_data_bytes,
            )
        )
    return specs
