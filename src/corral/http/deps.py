"""What route functions take from the request: the facades the app holds, and the paging and
order parameters every list shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from corral.core.queries import MAX_LIMIT
from corral.manager import JobQueueManager
from corral.scheduler import TaskScheduler


def manager(request: Request) -> JobQueueManager:
    qm: JobQueueManager = request.app.state.manager
    return qm


def scheduler(request: Request) -> TaskScheduler:
    ts: TaskScheduler = request.app.state.scheduler
    return ts


Manager = Annotated[JobQueueManager, Depends(manager)]
Scheduler = Annotated[TaskScheduler, Depends(scheduler)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Order = Annotated[str, Query(pattern="^(asc|desc)$")]
