"""Corral job options <-> BullMQ's wire options.

Priority: Corral's scale is 1..20 with 20 the most urgent; BullMQ's 1 is the most urgent and 0
(no priority) jumps ahead of every prioritized job. Corral therefore always sets a priority and
maps ``bullmq = 21 - corral``.
"""

from __future__ import annotations

from typing import Any, Final

from corral.core.jobs import MAX_PRIORITY, JobOptions, Retention
from corral.core.validation import is_strict_int

_PRIORITY_BASE: Final = MAX_PRIORITY + 1


def to_bullmq_priority(priority: int) -> int:
    return _PRIORITY_BASE - priority


def from_bullmq_priority(priority: int) -> int | None:
    """The Corral priority of a BullMQ job; None for a job added without one (e.g. by Node)."""
    return _PRIORITY_BASE - priority if 0 < priority < _PRIORITY_BASE else None


def _retention(retention: Retention) -> bool | int | dict[str, int]:
    if retention.count is None and retention.age_s is None:
        return False
    if retention.count == 0:
        return True
    keep: dict[str, int] = {}
    if retention.count is not None:
        keep["count"] = retention.count
    if retention.age_s is not None:
        keep["age"] = retention.age_s
    return keep


def to_bullmq_options(options: JobOptions) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "priority": to_bullmq_priority(options.priority),
        "attempts": options.attempts,
        "backoff": {"type": options.backoff.type, "delay": options.backoff.delay_ms},
        "removeOnComplete": _retention(options.remove_on_complete),
        "removeOnFail": _retention(options.remove_on_fail),
    }
    if options.delay_ms:
        opts["delay"] = options.delay_ms
    if options.job_id is not None:
        opts["jobId"] = options.job_id
    if options.timeout_ms is not None:
        opts["timeout"] = options.timeout_ms
    if options.category is not None:
        opts["category"] = options.category
    return opts


def timeout_of(opts: dict[str, Any]) -> int | None:
    value = opts.get("timeout")
    return value if is_strict_int(value, low=1) else None
