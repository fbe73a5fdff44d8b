"""A helper the examples share: wait until jobs reach a final state."""

from __future__ import annotations

import asyncio
from typing import Any

from corral import JobQueueManager


async def wait_finished(
    qm: JobQueueManager, job_ids: list[str], timeout_s: float = 15
) -> list[Any]:
    """Poll until every job is completed or failed; return their JobInfo, in order."""
    async with asyncio.timeout(timeout_s):
        while True:
            infos = [await qm.get_job(job_id) for job_id in job_ids]
            if all(info.state in ("completed", "failed") for info in infos):
                return infos
            await asyncio.sleep(0.05)
