"""Protocols the services use; adapters implement them. Each one is a contract, not a base class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from corral.core.attempts import Attempt, AttemptOutcome
    from corral.core.executions import ExecutionRecord, ExecutionRow
    from corral.core.handlers import Handler, Job
    from corral.core.jobs import JobSpec
    from corral.core.queries import ExecutionQuery, ScheduleQuery
    from corral.core.queue_jobs import JobFacts, JobInfo, JobState
    from corral.core.schedules import ScheduledJob


class JobControl(Protocol):
    """What a running job may do to itself in the broker (implemented by the BullMQ adapter)."""

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Record progress; every ``progress`` listener in the cluster sees it."""
        ...

    async def log(self, line: str) -> None:
        """Append a line to the job's log (kept with the job in the broker)."""
        ...


class AttemptListener(Protocol):
    """Told of each attempt as it starts and ends; must only touch memory (it runs on the job
    path). Implemented by the worker's stats reporter and
    ``services.execution_log.ExecutionLogWriter``."""

    def attempt_started(self, attempt: Attempt) -> None: ...

    def attempt_finished(self, outcome: AttemptOutcome) -> None: ...


class JobRunner(Protocol):
    """Runs attempts for a worker adapter (implemented by ``services.execution.Executor``)."""

    def handler_for(self, name: str) -> Handler:
        """The handler for a job name; raises HandlerNotFound."""
        ...

    def handler_names(self) -> list[str]: ...

    def add_listener(self, listener: AttemptListener) -> None: ...

    async def run(
        self, job: Job, timeout_ms: int | None, *, refused: Exception | None = None
    ) -> AttemptOutcome:
        """Run one attempt (or fail it at once with ``refused``); never raises for a failure."""
        ...

    def finished(self, outcome: AttemptOutcome) -> None:
        """Tell the listeners, once the broker has recorded the outcome."""
        ...

    def close(self) -> None: ...


class QueueBroker(Protocol):
    """One queue in the broker (implemented by ``adapters.bullmq.queue.BullQueue``). Every call
    raises ``BrokerUnavailable`` when Redis cannot be reached; a call naming a job raises
    ``JobNotFound`` for an id no job has (or can have). ``add_bulk`` adds all of its jobs in
    one transaction or none; ``job_logs`` is the newest ``limit`` lines (oldest first) and how
    many there are in all; ``counts`` is by JobState; ``claim`` is True for the one caller that
    takes ``what`` until ``ttl_ms`` have passed."""

    @property
    def name(self) -> str: ...

    # -- jobs
    async def add(self, spec: JobSpec) -> str: ...
    async def add_bulk(self, specs: Sequence[JobSpec]) -> list[str]: ...
    async def get_job(self, job_id: str) -> JobInfo: ...
    async def list_jobs(
        self, state: JobState, *, offset: int, limit: int, ascending: bool
    ) -> list[JobInfo]: ...
    async def job_logs(self, job_id: str, *, limit: int) -> tuple[list[str], int]: ...
    async def retry_job(self, job_id: str) -> None: ...
    async def remove_job(self, job_id: str) -> None: ...

    # -- the queue
    async def counts(self) -> dict[str, int]: ...
    async def is_paused(self) -> bool: ...
    async def pause(self) -> None: ...
    async def resume(self) -> None: ...
    async def clean(self, grace_ms: int, limit: int, state: JobState) -> int: ...

    # -- what workers and schedulers report (counters, heartbeats)
    async def cluster_stats(self) -> dict[str, float]: ...
    async def minute_counts(
        self, first_minute: int, last_minute: int
    ) -> dict[int, tuple[int, int]]: ...
    async def live_workers(self) -> list[dict[str, Any]]: ...
    async def known_handlers(self) -> set[str]: ...
    async def scheduler_stats(self) -> dict[str, float]: ...
    async def live_schedulers(self) -> int | None: ...
    async def scheduler_clock_skews(self) -> dict[str, float]: ...

    # -- the execution-log reconciliation (``services.reconcile.JobSource``)
    async def job_ids(self, state: str, *, offset: int, limit: int) -> list[str]: ...
    async def job_facts(self, ids: Sequence[str]) -> Mapping[str, JobFacts | None]: ...
    async def claim(self, what: str, owner: str, ttl_ms: int) -> bool: ...


class ScheduleStore(Protocol):
    """Scheduled-job definitions (``system_scheduled_jobs``). Implementations validate nothing:
    callers pass fields already validated by ``core.schedules``; they raise
    ``corral.errors.ScheduleNotFound`` for unknown ids and ``StoreUnavailable`` on outages."""

    async def create(self, job: ScheduledJob) -> ScheduledJob: ...

    async def get(self, schedule_id: UUID) -> ScheduledJob: ...

    async def update(
        self, schedule_id: UUID, fields: Mapping[str, Any], now: datetime
    ) -> ScheduledJob: ...

    async def delete(self, schedule_id: UUID) -> None: ...

    async def search(self, query: ScheduleQuery) -> tuple[list[ScheduledJob], int]:
        """One page of schedules matching ``query`` and the total count."""
        ...

    async def list_enabled(self) -> list[ScheduledJob]: ...

    async def change_marker(self) -> str:
        """Changes whenever any row is created, updated or deleted (also by direct SQL)."""
        ...


class ExecutionLog(Protocol):
    """``system_job_execution_logs``: upserted by execution_id, queried, pruned by age."""

    async def upsert_many(self, records: Sequence[ExecutionRecord]) -> None: ...

    async def upsert_rows(self, rows: Sequence[ExecutionRow]) -> None:
        """``upsert_many`` for rows (``core.executions.ExecutionRow``): the worker's path."""
        ...

    async def prepare(self) -> None:
        """Connect ahead of the first write."""
        ...

    async def search(self, query: ExecutionQuery) -> tuple[list[ExecutionRecord], int]: ...

    async def prune(self, older_than: datetime) -> int: ...
