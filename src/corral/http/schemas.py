"""Request and response bodies: camelCase JSON, unknown fields rejected, strict types.

Ranges and formats are checked again by ``core.schedules`` (the single source of the rules), so
the API, the Python API and the store answer alike; these models give the OpenAPI schema its
types and reject wrong JSON types early.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema

from corral.core.executions import ExecutionRecord, missed_ticks
from corral.core.queue_jobs import JobInfo, JobState
from corral.core.schedules import ScheduledJob, ScheduleStatus
from corral.http.names import to_camel
from corral.services.monitoring import Metrics

T = TypeVar("T")

#: A schedule's status by number or name. Checked by ``core.schedules`` alone, so a wrong value
#: gets one message listing the choices (a pydantic union would answer per member type).
StatusField = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "enum": [s.value for s in ScheduleStatus]},
                {"type": "string", "enum": [s.name.lower() for s in ScheduleStatus]},
            ],
            "description": "1 enabled, 0 disabled, 2 paused, by number or name; "
            "answers give the number",
        }
    ),
]


def _when(ms: Any) -> datetime | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


class Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True
    )


class Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ScheduledJobCreate(Body):
    name: StrictStr = Field(description="1-128 characters, one line")
    description: StrictStr | None = None
    handler_name: StrictStr = Field(description="a registered handler's name")
    cron_expression: StrictStr = Field(
        description="5 or 6 fields (seconds first), e.g. '0 0 2 * * *'"
    )
    timezone: StrictStr | None = Field(default=None, description="IANA zone; Asia/Shanghai")
    status: StatusField = None
    payload: dict[str, Any] | None = None
    retry_attempts: StrictInt | None = Field(default=None, description="retries; default 3")
    retry_delay: StrictInt | None = Field(default=None, description="ms; default 5000")
    timeout: StrictInt | None = Field(default=None, description="ms; default 30000")
    priority: StrictInt | None = Field(default=None, description="1-20, larger is more urgent")
    domain: StrictStr
    catch_up_ms: StrictInt | None = None


class ScheduledJobPatch(Body):
    name: StrictStr | None = None
    description: StrictStr | None = None
    handler_name: StrictStr | None = None
    cron_expression: StrictStr | None = None
    timezone: StrictStr | None = None
    status: StatusField = None
    payload: dict[str, Any] | None = None
    retry_attempts: StrictInt | None = None
    retry_delay: StrictInt | None = None
    timeout: StrictInt | None = None
    priority: StrictInt | None = None
    domain: StrictStr | None = None
    catch_up_ms: StrictInt | None = None


class MissedOut(Out):
    ticks: int = Field(description="how many ticks were skipped (at least, past 100,000)")
    first: datetime = Field(description="the oldest skipped tick (nominal time)")
    last: datetime = Field(description="the newest skipped tick (nominal time)")


class ExecutionOut(Out):
    execution_id: str = Field(description="the queue's job id; missed-<schedule>-<ms> for skips")
    enqueued_at: datetime | None = Field(
        description="when the job was added; with execution_id it names one execution for all "
        "time (null on rows from before it was recorded; the oldest skipped tick on a "
        "'missed' row)"
    )
    job_id: UUID | None
    status: str
    handler_name: str | None
    queue: str | None
    trigger: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    result: Any = None
    error_message: str | None
    stacktrace: str | None = Field(description="the traceback of the latest failed attempt")
    retry_count: int
    updated_at: datetime | None
    missed: MissedOut | None = Field(
        default=None,
        description="on a 'missed' row (ticks the scheduler skipped, not run): how many and "
        "the oldest and newest; null on every other row",
    )

    @classmethod
    def of(cls, record: ExecutionRecord) -> ExecutionOut:
        derived = ("enqueued_at", "missed")
        fields = {name: getattr(record, name) for name in cls.model_fields if name not in derived}
        skipped = missed_ticks(record)
        missed = (
            None
            if skipped is None
            else MissedOut(ticks=skipped.count, first=skipped.first, last=skipped.last)
        )
        return cls(**fields, enqueued_at=_when(record.enqueued_ms), missed=missed)


class ScheduledJobOut(Out):
    id: UUID
    name: str
    description: str | None
    handler_name: str
    cron_expression: str
    timezone: str
    status: int
    payload: dict[str, Any]
    retry_attempts: int
    retry_delay: int
    timeout: int
    priority: int
    domain: str
    catch_up_ms: int | None
    created_at: datetime
    updated_at: datetime
    next_fires: list[datetime] | None = None
    last_run: ExecutionOut | None = None

    @classmethod
    def of(cls, job: ScheduledJob, **extra: Any) -> ScheduledJobOut:
        fields = {name: getattr(job, name) for name in cls.model_fields if hasattr(job, name)}
        return cls(**fields, **extra)


class Page(Out, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class CronPreviewIn(Body):
    cron_expression: StrictStr
    timezone: StrictStr = "Asia/Shanghai"
    count: StrictInt = Field(default=5, description="1-100")


class CronPreviewOut(Out):
    cron_expression: str
    timezone: str
    next_fires: list[datetime]


# -- queues, jobs and health (routes/queues.py, jobs.py, health.py) ---------------------------
class JobCreate(Body):
    name: StrictStr = Field(description="the handler's name")
    data: dict[str, Any] | None = Field(
        default=None, description="a JSON object, at most CORRAL_MAX_JOB_DATA_BYTES serialized"
    )
    options: dict[str, Any] | None = Field(
        default=None,
        description="priority, category, timeout, delay, attempts, backoff, jobId, "
        "removeOnComplete, removeOnFail",
    )


class JobCreated(Out):
    id: str


class JobOut(Out):
    id: str
    name: str
    data: Any = None
    state: JobState
    priority: int | None
    progress: Any = None
    attempts_made: int
    max_attempts: int
    failed_reason: str | None
    result: Any = None
    created_at: datetime
    processed_at: datetime | None
    finished_at: datetime | None
    options: dict[str, Any]
    truncated: list[str] = Field(
        default_factory=list,
        description="in a list, the fields left out because they are large: 'data', 'result' "
        "or 'progress' (null here) and 'failedReason' (cut short); "
        "GET /api/admin/jobs/{id} returns them whole",
    )

    @classmethod
    def of(cls, info: JobInfo) -> JobOut:
        """The API's view of a queue job. BullMQ's inverted priority is replaced by Corral's."""
        same = [name for name in cls.model_fields if hasattr(info, name) and name != "options"]
        options = {k: v for k, v in info.options.items() if k != "priority"}
        if info.priority is not None:
            options["priority"] = info.priority
        return cls(
            **{name: getattr(info, name) for name in same},
            options=options,
            created_at=_when(info.created_at_ms) or datetime.fromtimestamp(0, UTC),
            processed_at=_when(info.processed_at_ms),
            finished_at=_when(info.finished_at_ms),
        )


class JobDetailOut(JobOut):
    logs: list[str] = Field(description="the newest 100 lines logged with job.log(), oldest first")
    log_count: int = Field(description="how many lines the job logged in all")
    stacktrace: list[str] = Field(
        description="the traceback of each failed attempt BullMQ kept, oldest first"
    )


class ThroughputPointOut(Out):
    at: datetime = Field(description="the start of the UTC minute")
    completed: int
    failed: int


class ThroughputOut(Out):
    queue: str
    interval_seconds: int = 60
    points: list[ThroughputPointOut] = Field(description="oldest first; the last is this minute")


class QueueCleanIn(Body):
    grace_ms: StrictInt = Field(ge=0, le=10 * 365 * 86_400_000, description="minimum age, ms")
    limit: StrictInt = Field(default=1000, ge=0, le=1_000_000, description="0 = no limit")
    status: StrictStr = Field(default="completed", description="a JobExecutionStatus")


class QueueCleanOut(Out):
    removed: int


class QueueStatusOut(Out):
    name: str
    paused: bool
    counts: dict[str, int]
    workers: list[dict[str, Any]]
    metrics: Metrics


class QueuePausedOut(Out):
    name: str
    paused: bool


class HealthOut(Out):
    status: str
    details: dict[str, Any] | None = None
