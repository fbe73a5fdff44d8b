"""Corral: a distributed job queue and cron scheduler for Python on the BullMQ protocol.

The handler API (``Job``, ``job_handler``), the job types and the errors load with the package;
the rest loads on first use. A worker imports this package from every handlers module, and the
producer, scheduler and monitoring facades would otherwise pull SQLAlchemy, Alembic and the
Prometheus client into a process that needs none of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from corral.core.events import QueueEvent
from corral.core.handlers import Job, job_handler
from corral.core.jobs import Backoff, JobExecutionStatus, JobPriority
from corral.errors import (
    BrokerOutOfMemory,
    BrokerUnavailable,
    ConfigurationError,
    CorralError,
    HandlerNotFound,
    InvalidCronExpression,
    InvalidJobOptions,
    JobNotFound,
    JobTimeoutError,
    UnrecoverableError,
    ValidationError,
)

if TYPE_CHECKING:
    from corral.manager import JobQueueManager
    from corral.scheduler import TaskScheduler
    from corral.services.monitoring import HealthReport, Metrics
    from corral.settings import CorralSettings, load_settings

#: Exported names loaded on first use, and the module each comes from.
_LAZY = {
    "JobQueueManager": "corral.manager",
    "TaskScheduler": "corral.scheduler",
    "HealthReport": "corral.services.monitoring",
    "Metrics": "corral.services.monitoring",
    "CorralSettings": "corral.settings",
    "load_settings": "corral.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corral' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Backoff",
    "BrokerOutOfMemory",
    "BrokerUnavailable",
    "ConfigurationError",
    "CorralError",
    "CorralSettings",
    "HandlerNotFound",
    "HealthReport",
    "InvalidCronExpression",
    "InvalidJobOptions",
    "Job",
    "JobExecutionStatus",
    "JobNotFound",
    "JobPriority",
    "JobQueueManager",
    "JobTimeoutError",
    "Metrics",
    "QueueEvent",
    "TaskScheduler",
    "UnrecoverableError",
    "ValidationError",
    "job_handler",
    "load_settings",
]
