"""The worker side: one bullmq ``Worker`` per queue, dispatching by job name.

Three changes over stock bullmq make it fast:

* a pooled Redis client, so concurrent jobs do not queue on one connection's lock, and a client
  of its own for the blocking pop that waits for new jobs (it holds its connection for seconds;
  on the shared pool it would compete with the jobs' own commands);
* completion asks the ``moveToFinished`` script for the next job (``fetch_next``) and runs it in
  the same task: one round trip per job instead of two.
* that call is sent by ``hotpath.Completion``, with the completions of the other jobs that
  finished in the same turn of the event loop, in one write (``batching.py``).

And the traps of the Python port are contained here: the Redis version is loaded before
``run()`` (else every timer rounds up to a whole second), the limiter gets a short drain delay,
shutdown has its own deadline (``Worker.close()`` waits forever) and returns cut-off jobs to the
queue at once instead of leaving them to the stalled-job checker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from bullmq import Job as BullJob

from corral.adapters.bullmq import internals
from corral.adapters.bullmq.bullworker import CorralWorker
from corral.adapters.bullmq.cluster import StatsReporter
from corral.adapters.bullmq.connection import SOCKET_TIMEOUT_S
from corral.adapters.bullmq.keys import Keys
from corral.adapters.bullmq.mapping import timeout_of
from corral.core.attempts import AttemptOutcome
from corral.core.handlers import Job
from corral.core.ports import JobRunner
from corral.core.throttle import LogThrottle, held_note
from corral.errors import HandlerNotFound, UnrecoverableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    queue: str
    prefix: str
    concurrency: int = 10
    #: Jobs held beyond ``concurrency`` so a free handler slot starts the next at once.
    prefetch: int = 0
    limiter_max: int | None = None
    limiter_duration_ms: int | None = None
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 1

    @property
    def limited(self) -> bool:
        return self.limiter_max is not None and self.limiter_duration_ms is not None

    @property
    def held(self) -> int:
        """Jobs this worker takes from the queue at most: its handler slots and the prefetch.
        A rate-limited queue gets no prefetch: the limiter counts jobs as they are fetched, so
        jobs held back and started later could bunch more starts into one window than it
        allows."""
        return self.concurrency + self.effective_prefetch

    @property
    def effective_prefetch(self) -> int:
        """The prefetch this worker applies: none on a rate-limited queue (see ``held``)."""
        return 0 if self.limited else self.prefetch

    def worker_options(self, client: aioredis.Redis) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "connection": client,
            "prefix": self.prefix,
            "concurrency": self.held,
            "autorun": False,
            "lockDuration": self.lock_duration_ms,
            "stalledInterval": self.stalled_interval_ms,
            "maxStalledCount": self.max_stalled_count,
            # bullmq retries a failed fetch after this long; its 15 s default makes a worker
            # resume long after Redis is back.
            "runRetryDelay": 1000,
            "drainDelay": 5,
        }
        if self.limited:
            opts["limiter"] = {"max": self.limiter_max, "duration": self.limiter_duration_ms}
            opts["drainDelay"] = 1  # the limiter stalls after one window with a long drain delay
        return opts


class Control:
    """``JobControl`` for a bullmq job: what a running handler reports goes to Redis."""

    __slots__ = ("_job",)

    def __init__(self, job: BullJob) -> None:
        self._job = job

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        await self._job.updateProgress(progress)

    async def log(self, line: str) -> None:
        await self._job.log(line)


class BadJobData(UnrecoverableError):
    """The job's data is not a JSON object (a foreign or hand-written job)."""


def _deferred_reason(reason: str, job: BullJob) -> str:
    """BullMQ's reason for a job failed by stalled-job recovery, with what it means here."""
    if reason != internals.STALLED_TOO_OFTEN:
        return reason
    return (
        f"{reason}: the worker running it stopped (crashed or was killed) "
        f"{internals.stalled_count(job)} times, the last time with no other job beside it"
    )


class BullConsumer:
    """Runs one queue's worker until closed. Owns its Redis clients: ``client`` for the jobs'
    commands, ``blocking_client`` for the wait for new jobs."""

    def __init__(
        self,
        client: aioredis.Redis,
        config: WorkerConfig,
        executor: JobRunner,
        *,
        blocking_client: aioredis.Redis,
    ) -> None:
        self.client = client
        self.blocking_client = blocking_client
        self.config = config
        self.executor = executor
        self._worker: CorralWorker | None = None
        self._run_task: asyncio.Task[Any] | None = None
        self.stats = StatsReporter(client, Keys(config.prefix, config.queue))
        self._error_throttles: dict[str, LogThrottle] = {}
        executor.add_listener(self.stats)

    async def run(self, job: BullJob) -> AttemptOutcome:
        """One attempt of ``job``: its handler's, or a failure at once when stalled-job
        recovery has failed the job, no handler has its name or its data is not an object."""
        data, refused = job.data, None
        try:
            deferred = internals.deferred_failure(job)
            if deferred is not None:
                raise UnrecoverableError(_deferred_reason(deferred, job))
            self.executor.handler_for(job.name)
            if not isinstance(data, dict):
                raise BadJobData(f"job data must be a JSON object, got {type(data).__name__}")
        except (UnrecoverableError, HandlerNotFound) as exc:
            refused = exc
        corral_job = Job(
            id=str(job.id),
            name=job.name,
            data=data if refused is None else {},
            attempts_made=int(job.attemptsMade),
            timestamp_ms=int(job.timestamp),
            control=Control(job),
        )
        return await self.executor.run(corral_job, timeout_of(job.opts), refused=refused)

    async def start(self) -> None:
        config = self.config
        worker = CorralWorker(self, config.worker_options(self.client), handlers=config.concurrency)
        worker.on("error", self._on_error)
        worker.on("stalled", self._on_stalled)
        await internals.load_redis_version(worker)
        self._worker = worker
        info = {
            "id": worker.id,
            "name": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.config.concurrency,
            "prefetch": self.config.effective_prefetch,
            "handlers": self.executor.handler_names(),
            "started_at_ms": int(time.time() * 1000),
        }
        await self.stats.start(worker.id, json.dumps(info))
        self._run_task = asyncio.create_task(
            worker.run(), name=f"corral-worker-{self.config.queue}"
        )
        logger.info(
            "worker %s started on queue %s (concurrency %d, prefetch %d)",
            worker.id,
            self.config.queue,
            self.config.concurrency,
            self.config.effective_prefetch,
            extra={"event": "worker.started", "worker_id": worker.id},
        )

    def _on_error(self, err: BaseException, job: BullJob | None = None) -> None:
        # bullmq reports a refused fetch or lock renewal each time it retries: during an outage
        # or at Redis' memory limit that is many times a second. One line per kind per 10 s.
        throttle = self._error_throttles.setdefault(type(err).__name__, LogThrottle())
        held = throttle.allow(time.monotonic())
        if held is not None:
            logger.warning(
                "worker error: %s%s", err, held_note(held), extra={"event": "worker.error"}
            )

    def _on_stalled(self, job_id: str, *_: object) -> None:
        self.stats.job_stalled()
        logger.warning(
            "job %s stalled and was put back in the queue",
            job_id,
            extra={"event": "job.stalled", "job_id": job_id},
        )

    @property
    def running(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    async def wait_closed(self) -> None:
        if self._run_task is not None:
            await asyncio.gather(self._run_task, return_exceptions=True)

    async def close(self, timeout_ms: int, hurry: asyncio.Event | None = None) -> bool:
        """Stop taking jobs, let active ones finish within ``timeout_ms``, then close.

        Jobs still running at the deadline are moved back to the queue at once (their lock
        released), so another worker takes them without waiting for stalled-job recovery.
        ``hurry`` set while draining moves the deadline to now.
        Returns True when every active job finished in time.
        """
        worker = self._worker
        if worker is None:
            return True
        closing = asyncio.ensure_future(worker.close())
        hurried = asyncio.ensure_future((hurry or asyncio.Event()).wait())
        first_done = asyncio.FIRST_COMPLETED
        await asyncio.wait({closing, hurried}, timeout=timeout_ms / 1000, return_when=first_done)
        hurried.cancel()
        drained = bool(closing.done())
        if not drained:
            worker.forceClosing = True
            for job, token in list(worker.jobs):
                await worker.finisher.requeue(job, token, "cut off by shutdown")
            internals.cancel_all(worker)
            await asyncio.wait({closing}, timeout=SOCKET_TIMEOUT_S)
        await self.stats.stop()
        await self.wait_closed()
        await self.client.aclose()
        await self.blocking_client.aclose()
        self.executor.close()
        logger.info(
            "worker %s stopped%s",
            worker.id,
            "" if drained else " (deadline hit; jobs requeued)",
            extra={"event": "worker.stopped", "worker_id": worker.id},
        )
        return drained
