"""Protocols the services use; adapters implement them. Each one is a contract, not a base class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from corral.core.handlers import Handler, Job


class JobControl(Protocol):
    """What a running job may do to itself in the broker (implemented by the BullMQ adapter)."""

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Record progress; every ``progress`` listener in the cluster sees it."""
        ...

    async def log(self, line: str) -> None:
        """Append a line to the job's log (kept with the job in the broker)."""
        ...


class ExecutionObserver(Protocol):
    """Told about every attempt; an observer's exception is logged, never fails the job."""

    def attempt_started(self, job_id: str, name: str, attempt: int) -> None: ...

    def attempt_finished(
        self,
        job_id: str,
        name: str,
        attempt: int,
        *,
        ok: bool,
        duration_ms: float,
        error: str | None,
    ) -> None: ...


class JobRunner(Protocol):
    """Runs attempts for a worker adapter (implemented by ``services.execution.Executor``)."""

    def handler_for(self, name: str) -> Handler:
        """The handler for a job name; raises HandlerNotFound."""
        ...

    async def run(self, handler: Handler, job: Job, timeout_ms: int | None) -> Any: ...

    def close(self) -> None: ...
