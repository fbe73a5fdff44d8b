"""Handlers for the how-to pages: async with progress, sync, flaky, and unrecoverable."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from corral import Job, UnrecoverableError, job_handler


# --8<-- [start:async]
@job_handler("dataProcessingJob")
async def data_processing_job(job: Job) -> dict[str, Any]:
    source = job.data.get("dataSource", "default")
    await job.update_progress(25)
    await asyncio.sleep(0.05)  # stands for real async I/O
    await job.log(f"read {source}")
    await job.update_progress(100)
    return {"success": True, "processedCount": 1000}


# --8<-- [end:async]


# --8<-- [start:sync]
@job_handler  # registered under the function's name: "resize_image"
def resize_image(job: Job) -> dict[str, Any]:
    """A plain function: the worker runs it in a thread, off the event loop."""
    time.sleep(0.05)  # stands for blocking work
    job.update_progress_sync(100)  # the *_sync variants hand the call to the worker's loop
    job.log_sync("resized")
    return {"width": job.data["width"] // 2}


# --8<-- [end:sync]


# --8<-- [start:retries]
@job_handler("flaky-task")
async def flaky_task(job: Job) -> dict[str, Any]:
    """Fails on its first attempt, succeeds on the second."""
    if job.attempts_made == 0:
        raise RuntimeError("upstream timed out")
    return {"attempt": job.attempts_made + 1}


@job_handler("charge-card")
async def charge_card(job: Job) -> dict[str, Any]:
    amount = job.data.get("amount")
    if not isinstance(amount, int) or amount <= 0:
        # Retrying cannot fix bad input: fail the job now, whatever its attempts.
        raise UnrecoverableError(f"amount must be a positive integer, got {amount!r}")
    return {"charged": amount}


# --8<-- [end:retries]


_RUN_SEQUENCE = itertools.count(1)


@job_handler("record-order")
async def record_order(job: Job) -> dict[str, Any]:
    # The position in which this worker ran it (millisecond timestamps can tie).
    return {"order": job.data["order"], "seq": next(_RUN_SEQUENCE)}
