"""The job model: priorities, statuses, and validated options.

Everything here is pure: values in, values or :class:`~corral.errors.InvalidJobOptions` out.
The adapter (``adapters/bullmq/mapping.py``) turns a validated :class:`JobSpec` into BullMQ's
wire options; nothing in the core knows BullMQ's inverted priority scale.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final, Literal

from corral.core.text import name_problem
from corral.errors import InvalidJobOptions

MIN_PRIORITY: Final = 1
MAX_PRIORITY: Final = 20
MAX_ATTEMPTS: Final = 100
MAX_DURATION_MS: Final = 24 * 60 * 60 * 1000  # 24 h cap on timeout, delay and backoff delay
MAX_DELAY_MS: Final = 365 * 24 * 60 * 60 * 1000  # a job may be delayed up to a year
MAX_CATEGORY_LENGTH: Final = 64
MAX_JOB_ID_LENGTH: Final = 128
#: The default cap on a job's data as BullMQ stores it (compact JSON, ASCII escapes); the
#: runtime passes CORRAL_MAX_JOB_DATA_BYTES instead.
DEFAULT_MAX_DATA_BYTES: Final = 512 * 1024
MAX_DATA_DEPTH: Final = 32
MAX_BULK_JOBS: Final = 1000

# BullMQ stores a job's hash at ``prefix:queue:<id>``, beside the queue's own keys at
# ``prefix:queue:<name>``: a job id equal to one of those names would overwrite (or, on removal,
# delete) the queue's wait list, meta hash, event stream... An id with ':' cannot reach any other
# key, so these single names are all there is to refuse: every first segment of a key name the
# pinned bullmq builds under the queue (QueueKeys and its Lua scripts; a unit test re-reads them
# from the installed package), and Corral's own namespace there (adapters/bullmq/keys.py).
RESERVED_JOB_IDS: Final = frozenset(
    {
        "active",
        "completed",
        "de",
        "delay",
        "delayed",
        "dn",
        "events",
        "failed",
        "id",
        "limiter",
        "marker",
        "meta",
        "metrics",
        "paused",
        "pc",
        "prioritized",
        "priority",
        "repeat",
        "stalled",
        "stalled-check",
        "wait",
        "waiting-children",
        "corral",
    }
)

# A job's name is the name of its handler: letters, digits, '_' and '-', at most 64. No dots,
# slashes or colons, so no name can be mistaken for an import path.
NAME_RULE: Final = "must be 1-64 letters, digits, '_' or '-', not starting with a digit or '-'"
NAME_RE: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-]{0,63}\Z")  # \Z: "$" allows a final "\n"


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

OPTION_NAMES: Final = frozenset(
    {
        "priority",
        "category",
        "timeout",
        "delay",
        "attempts",
        "backoff",
        "job_id",
        "remove_on_complete",
        "remove_on_fail",
    }
)


def _fail(path: str, problem: str) -> InvalidJobOptions:
    return InvalidJobOptions(path, problem)


def _int(value: object, path: str, *, low: int, high: int) -> int:
    # bool is an int in Python; True as a priority is a caller's bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _fail(path, f"must be between {low} and {high}, got {value}")
    return int(value)


def _priority(value: object, path: str) -> int:
    if isinstance(value, str) and value.upper() in JobPriority.__members__:
        return int(JobPriority[value.upper()])
    return _int(value, path, low=MIN_PRIORITY, high=MAX_PRIORITY)


def _backoff(value: object, path: str) -> Backoff:
    if isinstance(value, Backoff):
        value = {"type": value.type, "delay": value.delay_ms}
    if isinstance(value, int) and not isinstance(value, bool):
        return Backoff(type="fixed", delay_ms=_int(value, path, low=0, high=MAX_DURATION_MS))
    if not isinstance(value, Mapping):
        raise _fail(path, "must be a delay in ms or {'type': 'fixed'|'exponential', 'delay': ms}")
    unknown = set(value) - {"type", "delay"}
    if unknown:
        raise _fail(f"{path}.{sorted(unknown)[0]}", "unknown backoff field")
    kind = value.get("type", "exponential")
    if kind not in ("fixed", "exponential"):
        raise _fail(f"{path}.type", f"must be 'fixed' or 'exponential', got {kind!r}")
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
            raise _fail(f"{path}.{sorted(unknown)[0]}", "unknown retention field")
        count = value.get("count")
        age = value.get("age")
        return Retention(
            count=None if count is None else _int(count, f"{path}.count", low=0, high=10_000_000),
            age_s=None if age is None else _int(age, f"{path}.age", low=0, high=10 * 365 * 86400),
        )
    raise _fail(path, "must be a bool, a count, or {'count': n, 'age': seconds}")


def job_id_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a caller-chosen job id, or None if nothing is.

    The one job-id rule: ``add_job`` refuses such an id (422), and a lookup by such an id
    answers "not found" without reading Redis, since no job can have it.
    """
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value or len(value) > MAX_JOB_ID_LENGTH:
        return f"must be 1-{MAX_JOB_ID_LENGTH} characters"
    if value.isdigit():
        # BullMQ reserves all-digit ids for its own counter.
        return "must not consist of digits only"
    if ":" in value or not value.isprintable():
        return "must not contain ':' or control characters"
    if value in RESERVED_JOB_IDS:
        return f"{value!r} is reserved: the queue keeps its own Redis key under that name"
    return None


def is_job_id(value: object) -> bool:
    """Could a job have this id: one BullMQ counted out (all ASCII digits), or one a caller
    may choose (see :func:`job_id_problem`)?"""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return len(value) <= MAX_JOB_ID_LENGTH
    return job_id_problem(value) is None


def _job_id(value: object, path: str) -> str:
    problem = job_id_problem(value)
    if problem is not None:
        raise _fail(path, problem)
    return str(value)


def _category(value: object, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CATEGORY_LENGTH:
        raise _fail(path, f"must be a string of 1-{MAX_CATEGORY_LENGTH} characters")
    problem = name_problem(value)  # shown in the dashboard and in logs
    if problem is not None:
        raise _fail(path, problem)
    return value


def parse_options(
    raw: Mapping[str, object], *, defaults: JobOptions | None = None, path: str = "options"
) -> JobOptions:
    """Validate the ``add_job`` keyword options. Unknown names are an error."""
    base = defaults or _DEFAULT_OPTIONS
    unknown = raw.keys() - OPTION_NAMES
    if unknown:
        name = sorted(unknown)[0]
        raise _fail(f"{path}.{name}", f"unknown option (known: {', '.join(sorted(OPTION_NAMES))})")
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        p = f"{path}.{name}"
        if name == "priority":
            fields["priority"] = _priority(value, p)
        elif name == "category":
            fields["category"] = _category(value, p)
        elif name == "timeout":
            fields["timeout_ms"] = (
                None if value is None else _int(value, p, low=1, high=MAX_DURATION_MS)
            )
        elif name == "delay":
            fields["delay_ms"] = _int(value, p, low=0, high=MAX_DELAY_MS)
        elif name == "attempts":
            fields["attempts"] = _int(value, p, low=1, high=MAX_ATTEMPTS)
        elif name == "backoff":
            fields["backoff"] = _backoff(value, p)
        elif name == "job_id":
            fields["job_id"] = None if value is None else _job_id(value, p)
        else:  # remove_on_complete / remove_on_fail
            fields[name] = _retention(value, p)
    return dataclasses.replace(base, **fields) if fields else base


def validate_name(name: object, path: str = "name") -> str:
    """A job name selects its handler (see :data:`NAME_RE`)."""
    if not isinstance(name, str):
        raise _fail(path, f"must be a string, got {type(name).__name__}")
    if not NAME_RE.match(name):
        raise _fail(path, NAME_RULE)
    return name


def validate_data(
    data: object, path: str = "data", *, max_bytes: int = DEFAULT_MAX_DATA_BYTES
) -> dict[str, Any]:
    """Job data must be a JSON object of plain JSON values, at most 32 levels deep and at most
    ``max_bytes`` serialized as BullMQ stores it (compact, ASCII escapes).

    Checked by walking the value, not by serialising it whole, so the error can name the exact
    path (``data.items[3].when``), a 10,000-deep structure fails fast instead of recursing, and
    a 50 MB value is refused once the walk has counted past the limit.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(path, f"must be a JSON object (dict), got {type(data).__name__}")
    meter = _Meter(max_bytes)
    meter.walk(data, path, 0)
    if meter.over:
        raise _fail(path, f"is at least {meter.total} bytes serialized; {meter.limit_text}")
    if meter.total > max_bytes:
        raise _fail(path, f"is {meter.total} bytes serialized; {meter.limit_text}")
    return data


class _Over(Exception):
    """The walk has counted past the limit; the rest need not be looked at."""


class _Meter:
    """Sums the exact size of the compact JSON form while checking each value.

    The walk goes on to twice the limit, so data a little over it gets its exact size in the
    error; past that it stops and the error gives the size counted so far ("at least").
    """

    __slots__ = ("limit", "over", "stop_at", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stop_at = 2 * limit
        self.total = 0
        self.over = False

    @property
    def limit_text(self) -> str:
        return f"the limit is {self.limit} bytes"

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.stop_at:
            raise _Over

    def walk(self, value: object, path: str, depth: int) -> None:
        try:
            self._value(value, path, depth)
        except _Over:
            self.over = True

    def _value(self, value: object, path: str, depth: int) -> None:
        if depth > MAX_DATA_DEPTH:
            raise _fail(path, f"nested deeper than {MAX_DATA_DEPTH} levels")
        if isinstance(value, dict):
            self._object(value, path, depth)
        elif isinstance(value, list | tuple):
            self.add(2 + max(len(value) - 1, 0))  # brackets and commas
            for index, item in enumerate(value):
                self._value(item, f"{path}[{index}]", depth + 1)
        elif isinstance(value, str):
            self._text(value, path)
        else:
            self.add(_scalar_size(value, path))

    def _object(self, value: dict[Any, Any], path: str, depth: int) -> None:
        self.add(2 + max(len(value) - 1, 0))  # braces and commas
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(path, f"has a non-string key {key!r}")
            self._text(key, path)
            self.add(1)  # the colon
            self._value(item, f"{path}.{key}", depth + 1)

    def _text(self, text: str, path: str) -> None:
        _check_text(text, path)
        if self.total + len(text) + 2 > self.stop_at:
            # Certainly past the stop without escaping a (maybe huge) string to measure it.
            self.add(len(text) + 2)
        self.add(len(json.dumps(text)))  # the exact stored form, at C speed


def _scalar_size(value: object, path: str) -> int:
    if value is None:
        return 4
    if isinstance(value, bool):
        return 4 if value else 5
    if isinstance(value, int):
        if abs(value) >= 10**30:
            raise _fail(path, "integer too large")
        return len(int.__repr__(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, "NaN and Infinity are not valid JSON")
        return len(float.__repr__(value))
    raise _fail(path, f"{type(value).__name__} is not JSON-serializable")


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise _fail(path, "NUL characters are not allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, "contains a lone surrogate (not valid Unicode)") from None


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
        raise _fail("jobs", "must be a list of {'name', 'data', 'options'} objects")
    if len(items) > MAX_BULK_JOBS:
        raise _fail("jobs", f"at most {MAX_BULK_JOBS} jobs per call, got {len(items)}")
    specs = []
    for index, item in enumerate(items):
        prefix = f"jobs[{index}]."
        if not isinstance(item, Mapping):
            raise _fail(f"jobs[{index}]", "must be an object with 'name', 'data', 'options'")
        unknown = set(item) - {"name", "data", "options", "opts"}
        if unknown:
            raise _fail(f"{prefix}{sorted(unknown)[0]}", "unknown field")
        raw_options = item.get("options", item.get("opts"))
        if raw_options is None:
            raw_options = {}
        if not isinstance(raw_options, Mapping):
            raise _fail(f"{prefix}options", "must be an object")
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
