"""The execution-log record (one row of ``system_job_execution_logs``) as a value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from corral.core.jobs import JobExecutionStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRecord:
    """The latest known state of one queue job. Upserted by ``execution_id``: a later record for
    the same id replaces the earlier one field by field (``None`` keeps the stored value).

    ``job_id`` is the schedule the job came from (None for jobs added directly);
    ``retry_count`` is the number of attempts before the current one.
    """

    execution_id: str
    status: JobExecutionStatus
    job_id: UUID | None = None
    handler_name: str | None = None
    queue: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    result: Any = None
    error_message: str | None = None
    retry_count: int = 0
    trigger: str | None = None  # "schedule", "manual" (trigger_now) or None (direct add)
    updated_at: datetime | None = None
