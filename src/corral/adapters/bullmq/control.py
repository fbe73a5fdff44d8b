"""``JobControl`` for a bullmq job: what a running handler reports goes to Redis."""

from __future__ import annotations

from typing import Any

from bullmq import Job as BullJob


class Control:
    __slots__ = ("_job",)

    def __init__(self, job: BullJob) -> None:
        self._job = job

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        await self._job.updateProgress(progress)

    async def log(self, line: str) -> None:
        await self._job.log(line)
