"""The read model of a job in the queue: the state it is in and what a read of it returns.

:class:`JobState` is where a job is in the broker now; ``core.jobs.JobExecutionStatus`` is
what an execution-log row says about one run. They share six names (``waiting``, ``active``,
``completed``, ``failed``, ``delayed``, ``paused``) and differ on purpose: a row is written
``waiting`` however BullMQ holds the job (``prioritized``, ``paused`` or
``waiting-children``), and ``missed`` is a row for skipped ticks that never had a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """The states BullMQ keeps a queue's jobs in (the job lists and counts name them)."""

    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DELAYED = "delayed"
    PAUSED = "paused"
    PRIORITIZED = "prioritized"
    WAITING_CHILDREN = "waiting-children"


#: Finished jobs: listed newest first (the others in the order they will run).
FINISHED_STATES = (JobState.COMPLETED, JobState.FAILED)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobInfo:
    """One job as ``JobQueueManager.get_job`` and ``list_jobs`` return it. ``data``,
    ``progress`` and ``result`` are the JSON values the producer, handler and worker stored;
    ``priority`` is Corral's (1-20, larger is more urgent), None for a job added without one;
    times are epoch ms."""

    id: str
    name: str
    data: Any
    state: JobState
    priority: int | None
    progress: Any
    attempts_made: int
    max_attempts: int
    failed_reason: str | None
    stacktrace: list[str]
    result: Any
    created_at_ms: int
    processed_at_ms: int | None
    finished_at_ms: int | None
    options: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFacts:
    """The few fields of a job the execution-log reconciliation reads (``services.reconcile``).
    ``state`` is ``completed`` or ``failed`` for a finished job, else None."""

    id: str
    name: str
    created_ms: int
    state: JobState | None
    attempts_made: int
    processed_ms: int | None
    finished_ms: int | None
    failed_reason: str | None
    result: Any
