"""``/api/admin/jobs/{id}``: one job of the served queue — look at it, retry it, remove it.

An id no job can have (``core.jobs.is_job_id``: one with ``:`` other than the
``repeat:<scheduler id>:<ms>`` of a BullMQ job scheduler's job, or the name of one of the
queue's own keys such as ``meta``) is a 404 like an unknown one, answered before Redis is asked.
Retrying a job that has not failed, or removing one that is running, is a conflict (409) and
changes nothing.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Response
from starlette.exceptions import HTTPException

from corral.core.queue_jobs import JobState
from corral.http.deps import Manager
from corral.http.schemas import JobDetailOut, JobOut
from corral.manager import JobQueueManager

router = APIRouter(tags=["jobs"])

#: How many of a job's log lines its detail shows (the newest).
DETAIL_LOG_LINES: Final = 100


async def job_detail(qm: JobQueueManager, job_id: str) -> JobDetailOut:
    info = await qm.get_job(job_id)
    logs, count = await qm.get_job_logs(job_id, limit=DETAIL_LOG_LINES)
    return JobDetailOut(
        **JobOut.of(info).model_dump(), logs=logs, log_count=count, stacktrace=info.stacktrace
    )


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, qm: Manager) -> JobDetailOut:
    """The job with its data, progress, result or error, and its newest log lines."""
    return await job_detail(qm, job_id)


@router.post("/jobs/{job_id}/retry")
async def retry_job(job_id: str, qm: Manager) -> JobDetailOut:
    """Move a failed job back to waiting (its attempt count is kept)."""
    info = await qm.get_job(job_id)
    if info.state is not JobState.FAILED:
        raise HTTPException(409, f"job is {info.state}; only failed jobs can be retried")
    await qm.retry_job(job_id)
    return await job_detail(qm, job_id)


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response)
async def delete_job(job_id: str, qm: Manager) -> Response:
    info = await qm.get_job(job_id)
    if info.state is JobState.ACTIVE:
        raise HTTPException(409, "job is active; it can be removed once it has finished")
    await qm.remove_job(job_id)
    return Response(status_code=204)
