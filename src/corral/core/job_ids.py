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
    answers "not found" without reading Redis, since no job can have it (save the ids BullMQ's
    job schedulers give their jobs, see :func:`is_job_id`).
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


#: The ids BullMQ's job schedulers give the jobs they add, ``repeat:<scheduler id>:<ms>``: a
#: Node application sharing the queue (``Queue.upsertJobScheduler``) adds such jobs, and Corral
#: must find them by those ids. Under ``repeat:`` BullMQ keeps only these jobs and each
#: scheduler's own hash (``repeat:<scheduler id>``), which such an id names only for a scheduler
#: whose id itself ends in ``:<digits>``: ``adapters/bullmq/queue.py`` checks the id has a job
#: state before it changes anything by it.
SCHEDULER_JOB_PREFIX: Final = "repeat:"
_MAX_MS_DIGITS: Final = 20


def is_scheduler_job_id(value: str) -> bool:
    """Is ``value`` shaped like the id of a job a BullMQ job scheduler added?"""
    if not value.startswith(SCHEDULER_JOB_PREFIX):
        return False
    scheduler, colon, ms = value[len(SCHEDULER_JOB_PREFIX) :].rpartition(":")
    return (
        bool(colon)
        and 0 < len(scheduler) <= MAX_JOB_ID_LENGTH
        and scheduler.isprintable()
        and 0 < len(ms) <= _MAX_MS_DIGITS
        and ms.isascii()
        and ms.isdigit()
    )


def is_job_id(value: object) -> bool:
    """Could a job have this id: one BullMQ counted out (all ASCII digits), one a BullMQ job
    scheduler gave its job (:func:`is_scheduler_job_id`), or one a caller may choose (see
    :func:`job_id_problem`)?"""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return len(value) <= MAX_JOB_ID_LENGTH
    if job_id_problem(value) is None:
        return True
    return isinstance(value, str) and is_scheduler_job_id(value)
