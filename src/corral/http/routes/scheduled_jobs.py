"""``/api/admin/scheduled-jobs``: manage cron jobs (a thin layer on TaskScheduler)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response

from corral.core.queries import ExecutionQuery, ScheduleQuery, ScheduleSort
from corral.core.schedules import ScheduleStatus
from corral.http.deps import Limit, Offset, Order, Scheduler
from corral.http.names import to_snake
from corral.http.routes.executions import list_executions
from corral.http.schemas import (
    ExecutionOut,
    Page,
    ScheduledJobCreate,
    ScheduledJobOut,
    ScheduledJobPatch,
)
from corral.scheduler import TaskScheduler

router = APIRouter(tags=["scheduled jobs"])
NEXT_FIRES = 5
#: A ScheduleSort, in camelCase.
SortField = Literal["name", "createdAt", "updatedAt", "priority", "handlerName"]


async def _out(ts: TaskScheduler, job_id: UUID) -> ScheduledJobOut:
    """The schedule with its next fire times and its latest run."""
    job = await ts.get(job_id)
    fires = ts.preview(job.cron_expression, job.timezone, NEXT_FIRES) if job.status == 1 else []
    runs, _ = await ts.executions(ExecutionQuery(job_id=job.id, limit=1))
    last = ExecutionOut.of(runs[0]) if runs else None
    return ScheduledJobOut.of(job, next_fires=fires, last_run=last)


@router.post("/scheduled-jobs", status_code=201)
async def create_scheduled_job(body: ScheduledJobCreate, ts: Scheduler) -> ScheduledJobOut:
    job = await ts.create(**body.model_dump(exclude_unset=True))
    return await _out(ts, job.id)


@router.get("/scheduled-jobs")
async def list_scheduled_jobs(
    ts: Scheduler,
    status: ScheduleStatus | None = None,
    domain: Annotated[str | None, Query(max_length=64)] = None,
    handler_name: Annotated[str | None, Query(alias="handlerName", max_length=64)] = None,
    search: Annotated[str | None, Query(max_length=128, description="name contains")] = None,
    sort: SortField = "createdAt",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ScheduledJobOut]:
    jobs, total = await ts.list(
        ScheduleQuery(
            status=status,
            domain=domain,
            handler_name=handler_name,
            name_contains=search,
            sort=ScheduleSort(to_snake(sort)),
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
    )
    return Page[ScheduledJobOut](
        items=[ScheduledJobOut.of(j) for j in jobs], total=total, limit=limit, offset=offset
    )


@router.get("/scheduled-jobs/{job_id}")
async def get_scheduled_job(job_id: UUID, ts: Scheduler) -> ScheduledJobOut:
    return await _out(ts, job_id)


@router.patch("/scheduled-jobs/{job_id}")
async def patch_scheduled_job(
    job_id: UUID, body: ScheduledJobPatch, ts: Scheduler
) -> ScheduledJobOut:
    await ts.update(job_id, **body.model_dump(exclude_unset=True))
    return await _out(ts, job_id)


@router.delete("/scheduled-jobs/{job_id}", status_code=204, response_class=Response)
async def delete_scheduled_job(job_id: UUID, ts: Scheduler) -> Response:
    await ts.delete(job_id)
    return Response(status_code=204)


@router.post("/scheduled-jobs/{job_id}/run", status_code=202)
async def run_scheduled_job(job_id: UUID, ts: Scheduler) -> dict[str, str]:
    return {"executionId": await ts.trigger_now(job_id)}


@router.get("/scheduled-jobs/{job_id}/executions")
async def scheduled_job_executions(
    job_id: UUID, ts: Scheduler, limit: Limit = 50, offset: Offset = 0
) -> Page[ExecutionOut]:
    await ts.get(job_id)  # 404 for an unknown schedule
    return await list_executions(ts, schedule_id=job_id, limit=limit, offset=offset)
