"""``/api/admin/queues/{name}``: the served queue's status and metrics, pause / resume / clean,
its jobs by state, and adding a job.

The app serves the one queue its settings name (``CORRAL_QUEUE``); any other name is a 404.
Adding a job goes through ``JobQueueManager.add_job``, so the API and the Python API accept and
reject the same jobs; the API spells the options in camelCase (``jobId``, ``removeOnComplete``)
and its errors name them so (``options.removeOnComplete.count``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query
from starlette.exceptions import HTTPException

from corral.core.jobs import OPTION_NAMES
from corral.core.queue_jobs import JobState
from corral.errors import InvalidJobOptions, ValidationError
from corral.http.deps import Limit, Manager, Offset
from corral.http.names import camel_path, to_camel
from corral.http.schemas import (
    JobCreate,
    JobCreated,
    JobOut,
    Page,
    QueueCleanIn,
    QueueCleanOut,
    QueuePausedOut,
    QueueStatusOut,
    ThroughputOut,
    ThroughputPointOut,
)
from corral.manager import JobQueueManager
from corral.services.monitoring import MAX_THROUGHPUT_MINUTES

router = APIRouter(tags=["queues"])

#: In a job list, a job's data, result or progress larger than this (as JSON) is left out.
LIST_VALUE_MAX_BYTES: Final = 4096
#: In a job list, a longer failure reason is cut to this many characters.
LIST_TEXT_MAX_CHARS: Final = 1000

#: camelCase option name (JSON) -> add_job keyword.
OPTION_KEYS: Final = {to_camel(name): name for name in sorted(OPTION_NAMES)}
_KNOWN: Final = ", ".join(OPTION_KEYS)


def served_queue(queue_name: str, qm: Manager) -> JobQueueManager:
    """The manager, if ``queue_name`` is the queue this app serves; else 404."""
    if queue_name != qm.queue_name:
        raise HTTPException(404, f"queue {queue_name[:64]!r} not found")
    return qm


Queue = Annotated[JobQueueManager, Depends(served_queue)]


@router.get("/queues/{queue_name}")
async def get_queue(qm: Queue) -> QueueStatusOut:
    status = await qm.get_queue_status()
    return QueueStatusOut(
        name=status["queue"],
        paused=status["paused"],
        counts=status["counts"],
        workers=status["workers"],
        metrics=await qm.get_metrics(),
    )


@router.get("/queues/{queue_name}/throughput")
async def get_throughput(
    qm: Queue,
    minutes: Annotated[int, Query(ge=1, le=MAX_THROUGHPUT_MINUTES)] = 60,
) -> ThroughputOut:
    """Jobs completed and failed per minute (cluster-wide), oldest first, this minute last."""
    points = await qm.get_throughput(minutes)
    return ThroughputOut(
        queue=qm.queue_name,
        points=[
            ThroughputPointOut(
                at=datetime.fromtimestamp(p.minute_start_ms / 1000, UTC),
                completed=p.completed,
                failed=p.failed,
            )
            for p in points
        ],
    )


@router.post("/queues/{queue_name}/pause")
async def pause_queue(qm: Queue) -> QueuePausedOut:
    """Workers finish their active jobs and take no new ones until resumed."""
    await qm.pause()
    return QueuePausedOut(name=qm.queue_name, paused=True)


@router.post("/queues/{queue_name}/resume")
async def resume_queue(qm: Queue) -> QueuePausedOut:
    await qm.resume()
    return QueuePausedOut(name=qm.queue_name, paused=False)


@router.post("/queues/{queue_name}/clean")
async def clean_queue(body: QueueCleanIn, qm: Queue) -> QueueCleanOut:
    """Remove up to ``limit`` jobs in ``status`` that are older than ``graceMs``."""
    removed = await qm.clean_jobs(body.grace_ms, body.limit, body.status)
    return QueueCleanOut(removed=removed)


@router.get("/queues/{queue_name}/jobs")
async def list_jobs(
    qm: Queue,
    state: JobState = JobState.WAITING,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobOut]:
    """Finished jobs newest first; the others in the order they will run."""
    jobs, total = await qm.list_jobs(state.value, limit=limit, offset=offset)
    items = [list_item(JobOut.of(j)) for j in jobs]
    return Page[JobOut](items=items, total=total, limit=limit, offset=offset)


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def list_item(job: JobOut) -> JobOut:
    """``job`` as a list shows it: each of data, result and progress over
    :data:`LIST_VALUE_MAX_BYTES` is null, and the failure reason is cut to
    :data:`LIST_TEXT_MAX_CHARS`; ``truncated`` names what was left out. A page of 500 jobs
    with megabytes of data each stays a few MB; the job's own route returns it whole."""
    changes: dict[str, Any] = {}
    truncated = []
    for name in ("data", "result", "progress"):
        value = getattr(job, name)
        if value is not None and _json_bytes(value) > LIST_VALUE_MAX_BYTES:
            changes[name] = None
            truncated.append(name)
    reason = job.failed_reason
    if reason is not None and len(reason) > LIST_TEXT_MAX_CHARS:
        changes["failed_reason"] = reason[:LIST_TEXT_MAX_CHARS] + "…"
        truncated.append("failedReason")
    if not truncated:
        return job
    return job.model_copy(update={**changes, "truncated": truncated})


def _camel_path(path: str) -> str:
    """``options.remove_on_complete.count`` -> ``options.removeOnComplete.count``."""
    head, dot, rest = path.partition(".")
    return f"options.{camel_path(rest)}" if head == "options" and dot else path


def _options(raw: dict[str, Any] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = OPTION_KEYS.get(key)
        if name is None:
            raise InvalidJobOptions(f"options.{key}", f"unknown option (known: {_KNOWN})")
        options[name] = value
    return options


@router.post("/queues/{queue_name}/jobs", status_code=201)
async def add_job(body: JobCreate, qm: Queue) -> JobCreated:
    """Validate and enqueue one job, exactly as ``JobQueueManager.add_job`` does."""
    options = _options(body.options)
    try:
        job_id = await qm.add_job(body.name, body.data, **options)
    except ValidationError as exc:
        raise InvalidJobOptions(_camel_path(exc.path), exc.problem) from None
    return JobCreated(id=job_id)
