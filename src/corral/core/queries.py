"""Validated list queries: filters and sort keys are enums, pages are capped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

from corral.core.jobs import JobExecutionStatus
from corral.core.schedules import ScheduleStatus

MAX_LIMIT: Final = 500


class ScheduleSort(StrEnum):
    NAME = "name"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    PRIORITY = "priority"
    HANDLER_NAME = "handler_name"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleQuery:
    status: ScheduleStatus | None = None
    domain: str | None = None
    handler_name: str | None = None
    name_contains: str | None = None
    sort: ScheduleSort = ScheduleSort.CREATED_AT
    descending: bool = False
    limit: int = 50
    offset: int = 0


class ExecutionSort(StrEnum):
    STARTED_AT = "started_at"
    FINISHED_AT = "finished_at"
    UPDATED_AT = "updated_at"
    DURATION_MS = "duration_ms"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionQuery:
    status: JobExecutionStatus | None = None
    job_id: UUID | None = None
    handler_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: ExecutionSort = ExecutionSort.UPDATED_AT
    descending: bool = True
    limit: int = 50
    offset: int = 0
