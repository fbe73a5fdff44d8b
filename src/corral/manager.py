"""JobQueueManager: add jobs, watch and manage the queue, run a worker in-process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from corral.core.events import QueueEvent
from corral.core.handlers import HandlerRegistry
from corral.core.jobs import JobExecutionStatus, build_bulk, build_spec
from corral.core.queries import MAX_LIMIT
from corral.core.queue_jobs import FINISHED_STATES, JobInfo, JobState
from corral.core.redaction import mask_payload
from corral.core.validation import strict_int
from corral.errors import BrokerPoolExhausted, BrokerUnavailable, ValidationError
from corral.runtime import Listener, Runtime
from corral.services.monitoring import (
    MAX_THROUGHPUT_MINUTES,
    HealthReport,
    Metrics,
    ThroughputPoint,
    compute_metrics,
    evaluate_health,
    redis_warnings,
    throughput_series,
)
from corral.settings import CorralSettings, load_settings

logger = logging.getLogger(__name__)

#: The states ``clean_jobs`` accepts: those an execution status names too.
_CLEANABLE = (
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.DELAYED,
    JobState.WAITING,
    JobState.ACTIVE,
    JobState.PAUSED,
)


class JobQueueManager:
    """The queue, as one object. Nothing connects until first use; close with
    :meth:`graceful_shutdown` (or use ``async with``)."""

    def __init__(self, settings: CorralSettings | None = None, *, queue: str | None = None) -> None:
        self.settings = settings or load_settings()
        self._rt = Runtime(self.settings, queue=queue)
        self._closed = False
        self._events_task: asyncio.Future[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._rt.queue_name

    @property
    def runtime(self) -> Runtime:
        """The connections behind this manager. Not part of the Python API: the admin API reads
        readiness and ``/metrics`` through it, and the CLI checks the Redis password."""
        return self._rt

    async def __aenter__(self) -> JobQueueManager:
        await self._rt.queue()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.graceful_shutdown()

    # -- adding jobs --------------------------------------------------------------------------
    async def add_job(
        self, name: str, data: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        """Validate and enqueue one job; returns its id. Raises InvalidJobOptions naming the
        option (nothing is enqueued) or BrokerUnavailable."""
        spec = build_spec(
            name,
            dict(data) if isinstance(data, Mapping) else data,
            options,
            max_data_bytes=self.settings.max_job_data_bytes,
        )
        job_id = await (await self._rt.queue()).add(spec)
        logger.info(
            "job %s (%s) added", job_id, name, extra={"event": "job.added", "job_id": job_id}
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("job %s data: %s", job_id, mask_payload(spec.data))
        return job_id

    async def add_bulk_jobs(self, jobs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Validate every job first, then add them in one transaction: one bad item rejects
        the whole batch, naming it (``jobs[3].options.priority``)."""
        specs = build_bulk(list(jobs), max_data_bytes=self.settings.max_job_data_bytes)
        ids = await (await self._rt.queue()).add_bulk(specs)
        logger.info("%d jobs added in bulk", len(ids), extra={"event": "job.bulk_added"})
        return ids

    # -- monitoring ---------------------------------------------------------------------------
    async def get_queue_status(self) -> dict[str, Any]:
        queue = await self._rt.queue()
        counts, paused, workers = await asyncio.gather(
            queue.counts(), queue.is_paused(), queue.live_workers()
        )
        return {"queue": queue.name, "counts": counts, "paused": paused, "workers": workers}

    async def get_metrics(self) -> Metrics:
        """Totals for the whole cluster, from the counters every worker flushes each second."""
        return compute_metrics(await (await self._rt.queue()).cluster_stats())

    async def get_throughput(self, minutes: int = 60) -> list[ThroughputPoint]:
        """Jobs completed and failed per UTC minute over the last ``minutes`` (1-1440), oldest
        first, the current minute last; cluster-wide, from the workers' per-second flushes."""
        strict_int(minutes, "minutes", 1, MAX_THROUGHPUT_MINUTES)
        now_ms = int(time.time() * 1000)
        current = now_ms // 60_000
        counts = await (await self._rt.queue()).minute_counts(current - minutes + 1, current)
        return throughput_series(now_ms, minutes, counts)

    async def health_check(self) -> HealthReport:
        try:
            latency = await self._rt.ping()
            queue = await self._rt.monitor()
            counts, paused, workers, stats, info, skews = await asyncio.gather(
                queue.counts(),
                queue.is_paused(),
                queue.live_workers(),
                queue.cluster_stats(),
                self._rt.redis_info(),
                queue.scheduler_clock_skews(),
            )
        except BrokerUnavailable as exc:
            return evaluate_health(
                redis_error=str(exc),
                latency_ms=None,
                counts=None,
                workers=None,
                metrics=None,
                paused=None,
                redis_busy=isinstance(exc, BrokerPoolExhausted),
            )
        return evaluate_health(
            redis_error=None,
            latency_ms=latency,
            counts=counts,
            workers=workers,
            metrics=compute_metrics(stats),
            paused=paused,
            warnings=redis_warnings(
                info=info,
                has_password=self._rt.redis_has_password,
                host=self._rt.redis_host,
            ),
            scheduler_clock_skews=skews,
        )

    # -- management ---------------------------------------------------------------------------
    async def clean_jobs(
        self,
        grace_ms: int,
        limit: int,
        status: JobExecutionStatus | str = JobExecutionStatus.COMPLETED,
    ) -> int:
        """Remove up to ``limit`` jobs (0 = no limit) in ``status`` older than ``grace_ms``;
        returns how many. ``waiting`` covers prioritized jobs too."""
        strict_int(grace_ms, "grace_ms", 0)
        strict_int(limit, "limit", 0)
        # Not every execution-log state is a queue state (``missed`` rows have no job).
        state = next((s for s in _CLEANABLE if s == status), None)
        if state is None:
            raise ValidationError("status", f"must be one of {', '.join(_CLEANABLE)}")
        queue = await self._rt.queue()
        count = await queue.clean(grace_ms, limit, state)
        if state is JobState.WAITING and (limit == 0 or count < limit):
            # Corral always gives jobs a priority, so BullMQ keeps waiting jobs in its
            # "prioritized" set, not the wait list: clean both.
            prioritized = JobState.PRIORITIZED
            count += await queue.clean(grace_ms, limit - count if limit else 0, prioritized)
        logger.info("cleaned %d %s jobs", count, state, extra={"event": "queue.cleaned"})
        return count

    async def pause(self) -> None:
        await (await self._rt.queue()).pause()

    async def resume(self) -> None:
        await (await self._rt.queue()).resume()

    async def get_job(self, job_id: str) -> JobInfo:
        return await (await self._rt.queue()).get_job(job_id)

    async def get_job_logs(self, job_id: str, *, limit: int = 100) -> tuple[list[str], int]:
        """The newest ``limit`` lines the job's handler logged with ``job.log()`` (oldest
        first), and how many lines it logged in all."""
        strict_int(limit, "limit", 1, MAX_LIMIT)
        return await (await self._rt.queue()).job_logs(job_id, limit=limit)

    async def retry_job(self, job_id: str) -> None:
        await (await self._rt.queue()).retry_job(job_id)

    async def remove_job(self, job_id: str) -> None:
        await (await self._rt.queue()).remove_job(job_id)

    async def list_jobs(
        self, state: str = "waiting", *, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobInfo], int]:
        """One page of the jobs in ``state`` (waiting, active, completed, failed, delayed,
        paused, prioritized, waiting-children) and how many are in that state. Finished jobs
        come newest first; the others in the order they will run."""
        job_state = next((s for s in JobState if s == state), None)
        if job_state is None:
            raise ValidationError("state", f"must be one of {', '.join(JobState)}")
        strict_int(limit, "limit", 1, MAX_LIMIT)
        strict_int(offset, "offset", 0)
        queue = await self._rt.queue()
        ascending = job_state not in FINISHED_STATES
        jobs, counts = await asyncio.gather(
            queue.list_jobs(job_state, offset=offset, limit=limit, ascending=ascending),
            queue.counts(),
        )
        return jobs, counts.get(job_state, 0)

    # -- events -------------------------------------------------------------------------------
    def on(self, event: str, listener: Listener) -> None:
        """Call ``listener(QueueEvent)`` for ``event`` (completed, failed, progress, active,
        stalled, ...) from every worker in the cluster. Sync and async listeners both work.
        The stream starts now if an event loop is running, else on first use."""
        self._rt.listeners.add(event, listener)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._events_task = asyncio.ensure_future(self._rt.start_events())

    async def start_events(self) -> None:
        """Wait until the event stream is reading (events after this call are delivered)."""
        await self._rt.start_events()

    # -- in-process worker --------------------------------------------------------------------
    async def start_worker(
        self,
        handlers: HandlerRegistry | Iterable[str] | None = None,
        *,
        concurrency: int | None = None,
        limiter_max: int | None = None,
        limiter_duration_ms: int | None = None,
        execution_log: bool | None = None,
        prefetch: int | None = None,
    ) -> None:
        """Run a worker for this queue inside this process until :meth:`graceful_shutdown`.

        It runs ``concurrency`` jobs at once (default CORRAL_CONCURRENCY) and holds up to
        ``prefetch`` more, ready to start (default CORRAL_PREFETCH, else one fewer than
        ``concurrency``; 0 holds none).

        Every execution is written to ``system_job_execution_logs`` in DATABASE_URL unless
        ``execution_log`` is False (default: the CORRAL_EXECUTION_LOG setting).
        """
        registry = self._rt.registry_from(handlers)
        log = self.settings.execution_log if execution_log is None else execution_log
        await self._rt.start_consumer(
            registry,
            concurrency=concurrency,
            prefetch=prefetch,
            limiter_max=limiter_max,
            limiter_duration_ms=limiter_duration_ms,
            lifecycle=await self._rt.execution_log_writer() if log else None,
        )

    async def graceful_shutdown(self, timeout_ms: int | None = None) -> bool:
        """Stop taking jobs, let active ones finish within ``timeout_ms`` (jobs still running
        then go back to the queue), close every connection. True if everything drained."""
        if self._closed:
            return True
        self._closed = True
        timeout = self.settings.shutdown_timeout_ms if timeout_ms is None else timeout_ms
        drained = await self._rt.stop_consumers(timeout)
        await self._rt.aclose()
        return drained


__all__ = ["JobQueueManager", "QueueEvent"]
