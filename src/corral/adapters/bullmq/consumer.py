"""The worker side: one bullmq ``Worker`` per queue, dispatching by job name.

Two changes over stock bullmq make it fast:

* a pooled Redis client, so concurrent jobs do not queue on one connection's lock, and a client
  of its own for the blocking pop that waits for new jobs (it holds its connection for seconds;
  on the shared pool it would compete with the jobs' own commands);
* completion asks the ``moveToFinished`` script for the next job (``fetch_next``) and runs it in
  the same task: one round trip per job instead of two.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import UnrecoverableError as BullUnrecoverable
from bullmq import Worker
from bullmq.redis_connection import RedisConnection, loadScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from corral.adapters.bullmq import keys
from corral.adapters.bullmq.connection import SOCKET_TIMEOUT_S
from corral.adapters.bullmq.mapping import timeout_of
from corral.core.failures import describe, stacktrace
from corral.core.handlers import Job
from corral.core.ports import JobLifecycle, JobRunner
from corral.core.throttle import LogThrottle, held_note
from corral.errors import HandlerNotFound, UnrecoverableError

logger = logging.getLogger(__name__)
T = TypeVar("T")

_UNRECOVERABLE = (UnrecoverableError, HandlerNotFound)


class BadJobData(UnrecoverableError):
    """The job's data is not a JSON object (a foreign or hand-written job)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    queue: str
    prefix: str
    concurrency: int = 10
    limiter_max: int | None = None
    limiter_duration_ms: int | None = None
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 1
    name: str | None = None


class _Control:
    """``JobControl`` for a bullmq job: progress and log lines go to Redis."""

    __slots__ = ("_job",)

    def __init__(self, job: BullJob) -> None:
        self._job = job

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        await self._job.updateProgress(progress)

    async def log(self, line: str) -> None:
        await self._job.log(line)


class StatsReporter:
    """Per-process counters flushed to Redis every second with this worker's heartbeat.

    Metrics are therefore cluster-wide (every worker adds to one hash) at the cost of up to one
    second of lag; a SIGKILLed worker loses at most its last second of counts.
    """

    def __init__(self, client: aioredis.Redis, config: WorkerConfig, worker_id: str) -> None:
        self.client = client
        self.config = config
        self.worker_id = worker_id
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.stalled = 0
        self.processing_ms = 0.0
        self._started_at_ms = int(time.time() * 1000)
        self.handlers: list[str] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def _info(self) -> str:
        return json.dumps(
            {
                "id": self.worker_id,
                "name": self.config.name,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.config.concurrency,
                "handlers": self.handlers,
                "started_at_ms": self._started_at_ms,
            }
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="corral-heartbeat")

    async def _loop(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(keys.HEARTBEAT_INTERVAL_S)
            try:
                await self.flush()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    logger.warning(
                        "worker heartbeat failed: %s",
                        exc,
                        extra={"event": "worker.heartbeat_failed"},
                    )

    async def flush(self, *, final: bool = False) -> None:
        completed, failed, retried, stalled, ms = (
            self.completed,
            self.failed,
            self.retried,
            self.stalled,
            self.processing_ms,
        )
        self.completed = self.failed = self.retried = self.stalled = 0
        self.processing_ms = 0.0
        p, q = self.config.prefix, self.config.queue
        now_ms = int(time.time() * 1000)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                stats_key = keys.stats(p, q)
                if completed:
                    pipe.hincrby(stats_key, "completed", completed)
                if failed:
                    pipe.hincrby(stats_key, "failed", failed)
                if retried:
                    pipe.hincrby(stats_key, "retried", retried)
                if stalled:
                    pipe.hincrby(stats_key, "stalled", stalled)
                if ms:
                    pipe.hincrbyfloat(stats_key, "processing_ms", round(ms, 3))
                if completed or failed:
                    # The per-minute series behind the dashboard's chart; a job is counted in
                    # the minute of the flush, at most a second after it finished.
                    minute_key = keys.minute(p, q, now_ms // 60_000)
                    if completed:
                        pipe.hincrby(minute_key, "completed", completed)
                    if failed:
                        pipe.hincrby(minute_key, "failed", failed)
                    pipe.pexpire(minute_key, keys.MINUTE_TTL_MS)
                if final:
                    pipe.zrem(keys.workers(p, q), self.worker_id)
                    pipe.hdel(keys.worker_info(p, q), self.worker_id)
                else:
                    pipe.zadd(keys.workers(p, q), {self.worker_id: now_ms})
                    pipe.hset(keys.worker_info(p, q), self.worker_id, self._info)
                    stale = now_ms - 3_600_000
                    pipe.zremrangebyscore(keys.workers(p, q), "-inf", stale)
                await pipe.execute()
        except BaseException:
            # Not flushed: keep the counts for the next try.
            self.completed += completed
            self.failed += failed
            self.retried += retried
            self.stalled += stalled
            self.processing_ms += ms
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush(final=True)
        except Exception as exc:
            logger.warning(
                "final stats flush failed: %s", exc, extra={"event": "worker.flush_failed"}
            )


class _Isolation:
    """Runs a job that was recovered from a dead worker alone on this worker.

    When a worker process dies (a crash, the OOM killer, ``os._exit`` in a handler), every job
    it was running stalls, and BullMQ fails a job that stalls more than ``maxStalledCount``
    times. Run side by side again, the job that kills its worker takes its innocent
    neighbours down with it a second time, and they are failed for a crash they did not cause.
    So a recovered job (``stc`` > 0) runs with no other job beside it: if its worker dies now,
    it died alone, and its next stall fails it; a bystander simply completes. Jobs that arrive
    while a recovered job waits or runs go straight back to the front of the queue, so no job
    stalls beside it while merely waiting.
    """

    def __init__(self) -> None:
        self.running = 0  # ordinary attempts in progress on this worker
        self.suspect = False  # a recovered job is waiting for the others, or running
        self._changed = asyncio.Condition()

    async def until_clear(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self.suspect)

    async def until_alone(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.running == 0)

    async def changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()


_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
#: BullMQ's finishing scripts refuse a job whose lock is gone (``finishedErrors``).
_REFUSALS = ("Missing lock", "Missing key", "Lock mismatch", "Job ")


def _refused(exc: TypeError) -> bool:
    return str(exc).startswith(_REFUSALS)


class _CorralWorker(Worker):  # type: ignore[misc]
    """bullmq's Worker with Corral's dispatch and the fetch-next fast path."""

    def __init__(self, consumer: BullConsumer, opts: dict[str, Any]) -> None:
        super().__init__(consumer.config.queue, None, opts)
        self.consumer = consumer
        self.isolation = _Isolation()
        self._retried_finish: set[str] = set()
        if consumer.blocking_client is not None:
            # bullmq wraps the one client it is given twice; the marker wait (BZPOPMIN) goes
            # through ``backend.blocking_connection``, which closes with the worker.
            dedicated = RedisConnection(consumer.blocking_client)
            self.backend.blocking_connection = dedicated
            self.blockingRedisConnection = dedicated
            self.bclient = dedicated.conn

    async def getNextJob(self, token: str) -> BullJob | None:
        """Honour the rate limiter's wait. bullmq-python records ``limitUntil`` (the ms until
        the limiter's window ends) but then blocks for ``drainDelay`` on a marker that a
        rate-limited queue does not get, stretching every window to a second or more. As
        BullMQ's Node worker does, sleep until the window ends and fetch again.

        While a recovered job runs alone (see :class:`_Isolation`) nothing is fetched."""
        if self.isolation.suspect:
            await self.isolation.until_clear()
        limit_ms = int(getattr(self, "limitUntil", 0) or 0)
        if limit_ms > 0 and not self.closing and not self.paused:
            wait_s = limit_ms / 1000
            self.limitUntil = 0
            await asyncio.sleep(wait_s)
            if self.closing or self.paused:
                return None
            job: BullJob | None = await self.moveToActive(token)
            if job is not None:
                self.emit("active", job, "waiting")
            return job
        nxt: BullJob | None = await super().getNextJob(token)
        return nxt

    async def processJob(self, job: BullJob, token: str) -> None:
        current: BullJob | None = job
        while current is not None:
            current = await self._process_one(current, token)

    async def _process_one(self, job: BullJob, token: str) -> BullJob | None:
        self.jobs.add((job, token))
        self.lockManager.track_job(job.id, token, int(time.time() * 1000))
        isolation = self.isolation
        try:
            if isolation.suspect:
                await self.consumer.return_to_queue(
                    self, job, token, "arrived while a job runs alone here", logging.DEBUG
                )
                return None
            if int(job.stalledCounter or 0) > 0 and not job.deferredFailure:
                return await self._alone(job, token)
            isolation.running += 1
            try:
                return await self._attempt(job, token)
            finally:
                isolation.running -= 1
                if isolation.suspect and not isolation.running:
                    await isolation.changed()
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)

    async def _alone(self, job: BullJob, token: str) -> BullJob | None:
        isolation = self.isolation
        isolation.suspect = True
        logger.warning(
            "job %s (%s) was running on a worker that died (%d time(s)); running it alone",
            job.id,
            job.name,
            job.stalledCounter,
            extra={"event": "job.isolated", "job_id": job.id},
        )
        try:
            await isolation.until_alone()
            return await self._attempt(job, token)
        finally:
            isolation.suspect = False
            await isolation.changed()

    async def _attempt(self, job: BullJob, token: str) -> BullJob | None:
        consumer = self.consumer
        lifecycle = consumer.lifecycle
        started = time.perf_counter()
        started_ms = time.time() * 1000
        if lifecycle is not None:
            lifecycle.job_active(
                str(job.id), int(job.timestamp), job.name, int(job.attemptsMade) + 1, started_ms
            )
        try:
            if job.deferredFailure:
                raise UnrecoverableError(_deferred_reason(job))
            result = await consumer.execute(job)
            if self.forceClosing:
                return None
            fetch = not self.closing and not self.paused and not self.isolation.suspect
            outcome = await self._complete(job, token, result, fetch)
            if outcome is None:
                return None
        except asyncio.CancelledError:
            raise
        except Exception as err:
            consumer.stats.processing_ms += (time.perf_counter() - started) * 1000
            if not self.forceClosing:
                await self._fail(job, token, err, started_ms)
            return None
        consumer.stats.completed += 1
        consumer.stats.processing_ms += (time.perf_counter() - started) * 1000
        if lifecycle is not None:
            lifecycle.job_finished(
                str(job.id),
                int(job.timestamp),
                job.name,
                int(job.attemptsMade) + 1,
                started_ms=started_ms,
                finished_ms=time.time() * 1000,
                result=result,
            )
        if fetch and outcome["result"]:
            job_data, job_id, limit_until, delay_until = outcome["result"]
            nxt: BullJob | None = await self.nextJobFromJobData(
                job_data, job_id, limit_until or 0, delay_until or 0, token
            )
            return nxt
        return None

    async def _complete(
        self, job: BullJob, token: str, result: Any, fetch: bool
    ) -> dict[str, Any] | None:
        """Record a successful attempt; None when BullMQ refused it (the lock was lost)."""
        remove = job.opts.get("removeOnComplete", False)

        def complete() -> Awaitable[Any]:
            call: Awaitable[Any] = self.backend.moveToCompleted(
                job, result, remove, token, fetch_next=fetch
            )
            return call

        try:
            first = complete()  # serialises the result: a TypeError here is the result's
        except (TypeError, ValueError) as exc:
            raise UnrecoverableError(f"handler returned a non-JSON result: {exc}") from exc
        try:
            outcome: dict[str, Any] = await self._through_outage(job, first, complete)
        except TypeError as exc:
            if not _refused(exc):
                raise
            if await self._completed_by_us(job):
                return {"result": None}
            self._log_refused(job, exc)
            return None
        return outcome

    async def _through_outage(
        self, job: BullJob, first: Awaitable[T], again: Callable[[], Awaitable[T]]
    ) -> T:
        """Await a script that records a finished attempt, calling it again while Redis cannot
        be reached, for as long as the job's lock could still be ours.

        A job whose handler has finished must not be re-run because Redis was away for a few
        seconds when its result was recorded: dropped, it would wait for stalled-job recovery
        (a lock duration later) and run a second time. BullMQ's script checks the lock, so a
        retry after the lock expired is refused (``Missing lock``) rather than applied twice.
        """
        pending = first
        deadline: float | None = None
        delay = 0.05
        while True:
            try:
                return await pending
            except _REDIS_DOWN as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.opts["lockDuration"] / 1000
                    logger.warning(
                        "job %s finished but Redis is not reachable (%s); retrying for %.0f s",
                        job.id,
                        exc,
                        deadline - now,
                        extra={"event": "job.finish_retrying", "job_id": job.id},
                    )
                if now + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                self._retried_finish.add(str(job.id))
                pending = again()

    async def _completed_by_us(self, job: BullJob) -> bool:
        """After a retried completion was refused: did the first call land and only its reply
        get lost (the job is completed, its lock gone with it)?"""
        if str(job.id) not in self._retried_finish:
            return False
        self._retried_finish.discard(str(job.id))
        try:
            return str(await self.backend.getState(str(job.id))) == "completed"
        except Exception:
            return False

    def _log_refused(self, job: BullJob, exc: Exception) -> None:
        self._retried_finish.discard(str(job.id))
        logger.warning(
            "job %s (%s) finished after its lock was lost; the result is discarded and the job "
            "is left to the worker that holds it now (%s)",
            job.id,
            job.name,
            exc,
            extra={"event": "job.finish_refused", "job_id": job.id},
        )

    async def _fail(self, job: BullJob, token: str, err: Exception, started_ms: float) -> None:
        # BullMQ stores str(error) as the failure reason: hand it the described error, so the
        # queue, the API and the log all say "KeyError: 'width'", not "'width'". Called from
        # the attempt's except block, so BullMQ's own traceback capture sees ``err``.
        reason = describe(err)
        error = BullUnrecoverable(reason) if isinstance(err, _UNRECOVERABLE) else _Failed(reason)
        trace = list(job.stacktrace)

        def record() -> Awaitable[Any]:
            job.stacktrace = list(trace)  # each call appends this attempt's traceback once
            call: Awaitable[Any] = job.moveToFailed(error, token)
            return call

        try:
            await self._through_outage(job, record(), record)
        except TypeError as exc:
            if not _refused(exc):
                raise
            self._log_refused(job, exc)
            return
        except Exception as exc:
            logger.error(
                "could not record the failure of job %s: %s",
                job.id,
                exc,
                extra={"event": "job.fail_record_failed", "job_id": job.id},
            )
            return
        final = bool(getattr(job, "finishedOn", None))
        if final:
            self.consumer.stats.failed += 1
        else:
            self.consumer.stats.retried += 1
        if self.consumer.lifecycle is not None:
            self.consumer.lifecycle.job_finished(
                str(job.id),
                int(job.timestamp),
                job.name,
                int(job.attemptsMade),
                started_ms=started_ms,
                finished_ms=time.time() * 1000,
                error=reason,
                stacktrace=stacktrace(err),
                retrying=not final,
            )
        logger.log(
            logging.WARNING if final else logging.INFO,
            "job %s (%s) attempt %d failed%s: %s",
            job.id,
            job.name,
            job.attemptsMade,
            "" if final else ", will retry",
            reason,
            # The traceback once, with the final failure; a retry's one line says enough.
            exc_info=err if final else None,
            extra={"event": "job.failed" if final else "job.retrying", "job_id": job.id},
        )


def _deferred_reason(job: BullJob) -> str:
    """BullMQ's reason for a job failed by stalled-job recovery, with what it means here."""
    reason = str(job.deferredFailure)
    if reason != _STALLED_TOO_OFTEN:
        return reason
    return (
        f"{reason}: the worker running it stopped (crashed or was killed) "
        f"{job.stalledCounter} times, the last time with no other job beside it"
    )


_STALLED_TOO_OFTEN = "job stalled more than allowable limit"


class _Failed(Exception):
    """A failed attempt as handed to BullMQ: its text is the described error."""


class BullConsumer:
    """Runs one queue's worker until closed. Owns its Redis clients: ``client`` for the jobs'
    commands, ``blocking_client`` (if given) for the wait for new jobs."""

    def __init__(
        self,
        client: aioredis.Redis,
        config: WorkerConfig,
        executor: JobRunner,
        lifecycle: JobLifecycle | None = None,
        *,
        blocking_client: aioredis.Redis | None = None,
    ) -> None:
        self.client = client
        self.blocking_client = blocking_client
        self.lifecycle = lifecycle
        self.config = config
        self.executor = executor
        self._worker: _CorralWorker | None = None
        self._run_task: asyncio.Task[Any] | None = None
        self.stats = StatsReporter(client, config, worker_id="")
        self._error_throttles: dict[str, LogThrottle] = {}
        self.stats.handlers = executor.handler_names()
        self._requeue = client.register_script(loadScript("moveJobFromActiveToWait-9.lua"))

    @property
    def worker_id(self) -> str:
        return self._worker.id if self._worker is not None else ""

    async def execute(self, job: BullJob) -> Any:
        handler = self.executor.handler_for(job.name)
        data = job.data
        if not isinstance(data, dict):
            raise BadJobData(f"job data must be a JSON object, got {type(data).__name__}")
        corral_job = Job(
            id=str(job.id),
            name=job.name,
            data=data,
            attempts_made=int(job.attemptsMade),
            timestamp_ms=int(job.timestamp),
            control=_Control(job),
        )
        return await self.executor.run(handler, corral_job, timeout_of(job.opts))

    def _worker_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = {
            "connection": self.client,
            "prefix": c.prefix,
            "concurrency": c.concurrency,
            "autorun": False,
            "lockDuration": c.lock_duration_ms,
            "stalledInterval": c.stalled_interval_ms,
            "maxStalledCount": c.max_stalled_count,
            # bullmq retries a failed fetch after this long; its 15 s default makes a worker
            # resume long after Redis is back.
            "runRetryDelay": 1000,
            "drainDelay": 5,
        }
        if c.name:
            opts["name"] = c.name
        if c.limiter_max is not None and c.limiter_duration_ms is not None:
            opts["limiter"] = {"max": c.limiter_max, "duration": c.limiter_duration_ms}
            opts["drainDelay"] = 1  # the limiter stalls after one window with a long drain delay
        return opts

    async def start(self) -> None:
        worker = _CorralWorker(self, self._worker_options())
        worker.on("error", self._on_error)
        worker.on("stalled", self._on_stalled)
        # Load the Redis version now: until the worker knows it, bullmq rounds every wait up
        # to a whole second (delayed jobs late, limiter windows stretched).
        for connection in (worker.redisConnection, worker.blockingRedisConnection):
            if connection is not None:
                await connection.getRedisVersion()
        self._worker = worker
        self.stats.worker_id = worker.id
        await self.stats.flush()
        self.stats.start()
        self._run_task = asyncio.create_task(
            worker.run(), name=f"corral-worker-{self.config.queue}"
        )
        logger.info(
            "worker %s started on queue %s (concurrency %d)",
            worker.id,
            self.config.queue,
            self.config.concurrency,
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
        self.stats.stalled += 1
        logger.warning(
            "job %s stalled and was put back in the queue",
            job_id,
            extra={"event": "job.stalled", "job_id": job_id},
        )

    @property
    def running(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    @property
    def active_count(self) -> int:
        return len(self._worker.jobs) if self._worker is not None else 0

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
        waiters: set[asyncio.Future[Any]] = {closing}
        hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
        if hurried is not None:
            waiters.add(hurried)
        await asyncio.wait(waiters, timeout=timeout_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
        if hurried is not None:
            hurried.cancel()
        drained = bool(closing.done())
        if not drained:
            worker.forceClosing = True
            cut_off = list(worker.jobs)
            for job, token in cut_off:
                await self.return_to_queue(worker, job, token, "cut off by shutdown")
            worker.cancelProcessing()
            await asyncio.wait({closing}, timeout=SOCKET_TIMEOUT_S)
        await self.stats.stop()
        await self.wait_closed()
        await self.client.aclose()
        if self.blocking_client is not None:
            await self.blocking_client.aclose()
        self.executor.close()
        logger.info(
            "worker %s stopped%s",
            worker.id,
            "" if drained else " (deadline hit; jobs requeued)",
            extra={"event": "worker.stopped", "worker_id": worker.id},
        )
        return drained

    async def return_to_queue(
        self, worker: Worker, job: BullJob, token: str, why: str, level: int = logging.WARNING
    ) -> None:
        """Move an active job of ours back to the front of its queue, its lock released, with
        no stall counted (BullMQ's moveJobFromActiveToWait)."""
        k = worker.scripts.keys
        script_keys = [
            k["active"],
            k["wait"],
            k["stalled"],
            k["paused"],
            k["meta"],
            k["limiter"],
            k["prioritized"],
            k["marker"],
            k["events"],
        ]
        try:
            await self._requeue(
                keys=script_keys, args=[job.id, token, worker.scripts.toKey(job.id)]
            )
            logger.log(
                level,
                "job %s %s; returned to the queue",
                job.id,
                why,
                extra={"event": "job.requeued", "job_id": job.id},
            )
        except Exception as exc:
            logger.error(
                "could not return job %s to the queue (stalled-job recovery will): %s",
                job.id,
                exc,
                extra={"event": "job.requeue_failed", "job_id": job.id},
            )
