"""The seed's example jobs: a data-processing job with progress, and the quick-start tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from corral.core.handlers import Job, job_handler

logger = logging.getLogger(__name__)


@job_handler("dataProcessingJob")
async def data_processing_job(job: Job) -> dict[str, Any]:
    data_source = job.data.get("dataSource", "default")
    await job.update_progress(25)
    await asyncio.sleep(0.05)
    await job.update_progress(75)
    await asyncio.sleep(0.05)
    await job.update_progress(100)
    return {"success": True, "message": f"processed {data_source}", "processedCount": 1000}


@job_handler("example-task")
async def example_task(job: Job) -> dict[str, Any]:
    return {"echo": job.data.get("message")}


@job_handler("batch-task")
def batch_task(job: Job) -> dict[str, Any]:
    """A plain function: runs in a thread, off the event loop."""
    return {"index": job.data.get("index")}
