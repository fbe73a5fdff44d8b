"""Corral: a distributed job queue and cron scheduler for Python on the BullMQ protocol."""

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
from corral.manager import JobQueueManager
from corral.scheduler import TaskScheduler
from corral.services.monitoring import HealthReport, Metrics
from corral.settings import CorralSettings, load_settings

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
