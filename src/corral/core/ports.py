"""Protocols the services use; adapters implement them. Each one is a contract, not a base class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from corral.core.attempts import Attempt, AttemptOutcome
    from corral.core.executions import ExecutionRecord
    from corral.core.handlers import Handler, Job
    from corral.core.queries import ExecutionQuery, ScheduleQuery
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

    async def search(self, query: ExecutionQuery) -> tuple[list[ExecutionRecord], int]: ...

    async def prune(self, older_than: datetime) -> int: ...
