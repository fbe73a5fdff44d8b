"""Request-scoped access to the facades the app holds."""

from __future__ import annotations

from fastapi import Request

from corral.manager import JobQueueManager
from corral.scheduler import TaskScheduler


def manager(request: Request) -> JobQueueManager:
    qm: JobQueueManager = request.app.state.manager
    return qm


def scheduler(request: Request) -> TaskScheduler:
    ts: TaskScheduler = request.app.state.scheduler
    return ts
