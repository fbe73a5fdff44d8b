"""Job ids: which ids a caller may choose, and which ids a job can have at all. Pure."""

from __future__ import annotations

from typing import Final

MAX_JOB_ID_LENGTH: Final = 128

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
