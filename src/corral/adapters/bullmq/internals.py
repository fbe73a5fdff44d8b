"""Every part of bullmq's internals that Corral calls, in one place (with its test).

bullmq's public surface (``Queue``, ``Worker`` with a processor, ``Job``) cannot run Corral's
worker: the fetch-next fast path, the isolation of recovered jobs, finishing through a Redis
outage and returning cut-off jobs at shutdown all need the methods and scripts below, and the
``Worker`` and ``Job`` attributes the test lists. ``tests/unit/test_bullmq_internals.py`` checks
each against the installed package, so an upgrade that moves one fails there, loudly, rather
than in production. ``CorralWorker`` overrides ``Worker.getNextJob`` (the limiter's wait,
isolation) and ``Worker.processJob``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Queue, Worker
from bullmq.redis_connection import RedisConnection, loadScript

from corral.adapters.bullmq.hotpath import job_from_raw

#: The script that moves an active job back to the front of its queue with its lock released
#: and no stall counted, and the ``scripts.keys`` it takes, in order.
REQUEUE_SCRIPT: Final = "moveJobFromActiveToWait-9.lua"
REQUEUE_KEYS: Final = (
    "active",
    "wait",
    "stalled",
    "paused",
    "meta",
    "limiter",
    "prioritized",
    "marker",
    "events",
)

#: How ``Scripts.finishedErrors`` begins the TypeError a finishing script raises when the job's
#: lock or key is gone (another worker holds the job now): such a refusal is not a failure.
REFUSAL_PREFIXES: Final = ("Missing lock", "Missing key", "Lock mismatch", "Job ")

#: The ``deferredFailure`` stalled-job recovery gives a job that stalled too often.
STALLED_TOO_OFTEN: Final = "job stalled more than allowable limit"


def refused(exc: TypeError) -> bool:
    return str(exc).startswith(REFUSAL_PREFIXES)


def use_blocking_client(worker: Worker, client: aioredis.Redis) -> None:
    """Give the wait for new jobs (BZPOPMIN) a client of its own: bullmq wraps the one client
    it is given twice; the wait uses ``backend.blocking_connection`` (closed with the worker)."""
    dedicated = RedisConnection(client)
    worker.backend.blocking_connection = dedicated
    worker.blockingRedisConnection = dedicated
    worker.bclient = dedicated.conn


async def load_redis_version(worker: Worker) -> None:
    """Until a connection knows the Redis version, bullmq rounds every wait up to a whole
    second (delayed jobs late, limiter windows stretched)."""
    for connection in (worker.redisConnection, worker.blockingRedisConnection):
        if connection is not None:
            await connection.getRedisVersion()


def take_limit_wait_ms(worker: Worker) -> int:
    """The ms until the rate limiter's window ends (``limitUntil``), cleared once taken."""
    limit_ms = int(getattr(worker, "limitUntil", 0) or 0)
    worker.limitUntil = 0
    return limit_ms


async def move_to_active(worker: Worker, token: str) -> BullJob | None:
    """Fetch the next job now, without the wait on the queue's marker."""
    job: BullJob | None = await worker.moveToActive(token)
    if job is not None:
        worker.emit("active", job, "waiting")
    return job


#: How often a shutdown waiting for its jobs looks whether its deadline has passed.
_FORCE_CHECK_S: Final = 0.25


def renew_locks_until_jobs_end(worker: Worker) -> None:
    """Keep renewing the locks of the jobs in hand until their tasks end, whoever stops the
    lock manager.

    bullmq's ``Worker.run`` stops the renewals (``lockManager.close()``) as it leaves, and while
    closing it leaves as soon as any task comes back without a job: the cancelled wait for new
    jobs, a fetch that found none, a held job sent back. Jobs still running then lost their
    locks a lock duration later, their results were refused and stalled-job recovery ran them
    again. Here the manager's ``close`` first waits for the worker's other tasks, until they
    end or shutdown's deadline passes (``forceClosing``: the jobs are cancelled and requeued
    then, and a handler that ignores its cancellation must not hold the shutdown)."""
    manager = worker.lockManager
    close = manager.close

    async def close_once_jobs_end() -> None:
        me = asyncio.current_task()
        while not worker.forceClosing and (
            running := [t for t in worker.processing if not t.done() and t is not me]
        ):
            await asyncio.wait(running, timeout=_FORCE_CHECK_S)
        await close()

    manager.close = close_once_jobs_end


def track(worker: Worker, job: BullJob, token: str, now_ms: int) -> None:
    """Hold the job: bullmq renews the locks of the jobs it tracks; shutdown returns them."""
    worker.jobs.add((job, token))
    worker.lockManager.track_job(job.id, token, now_ms)


def untrack(worker: Worker, job: BullJob, token: str) -> None:
    worker.jobs.discard((job, token))
    worker.lockManager.untrack_job(job.id)


def stalled_count(job: BullJob) -> int:
    """How often the job stalled (its worker died while running it)."""
    return int(job.stalledCounter or 0)


def deferred_failure(job: BullJob) -> str | None:
    """Why stalled-job recovery failed the job (it is fetched once more, to be failed)."""
    return str(job.deferredFailure) if job.deferredFailure else None


async def next_job(worker: Worker, fetched: list[Any], token: str) -> BullJob | None:
    """The job a completion fetched (``[data, id, limitUntil, delayUntil]``), made active.

    bullmq's ``nextJobFromJobData`` with the job decoded by :func:`job_from_raw`; a job of a
    job scheduler (``rjk``), whose next iteration bullmq materializes here, and an empty fetch
    take bullmq's own path."""
    job_data, job_id, limit_until, delay_until = fetched
    if not job_data or job_data.get("rjk"):
        job: BullJob | None = await worker.nextJobFromJobData(
            job_data, job_id, limit_until or 0, delay_until or 0, token
        )
        return job
    worker.limitUntil = max(limit_until or 0, 0) or 0
    if delay_until:
        worker.blockUntil = max(int(delay_until), 0) or 0
    worker.drained = False
    job = job_from_raw(worker, job_data, job_id)
    job.token = token
    return job


async def move_to_failed(job: BullJob, error: Exception, token: str, cause: Exception) -> bool:
    """Record a failure; True when it is final (no attempts left: ``finishedOn`` is set).

    ``Job.moveToFailed`` stores ``traceback.format_exc()``, the exception being handled, as
    this attempt's traceback: so it is called while ``cause`` is handled, with ``cause``'s
    own traceback (raising it again would add this frame)."""
    trace = cause.__traceback__
    try:
        raise cause
    except Exception:
        cause.__traceback__ = trace
        await job.moveToFailed(error, token)
    return bool(getattr(job, "finishedOn", None))


async def job_state(worker: Worker, job_id: str) -> str:
    return str(await worker.backend.getState(job_id))


def requeue_script(client: aioredis.Redis) -> Any:
    return client.register_script(loadScript(REQUEUE_SCRIPT))


async def requeue(script: Any, worker: Worker, job: BullJob, token: str) -> None:
    """Move an active job of ours back to the front of its queue (see ``REQUEUE_SCRIPT``).

    The script wakes no one for a job with a priority (every Corral job has one): it adds no
    marker, so workers waiting on an empty queue, this one included, would find the job only
    when their wait times out (``drainDelay``, seconds). So a marker is added, as an add does,
    and this worker's next fetch looks in the queue instead of waiting."""
    keys = [worker.scripts.keys[name] for name in REQUEUE_KEYS]
    await script(keys=keys, args=[job.id, token, worker.scripts.toKey(job.id)])
    await script.registered_client.zadd(worker.scripts.keys["marker"], {"0": 0})
    worker.drained = False


def cancel_all(worker: Worker) -> None:
    """Shutdown's deadline: cut every running attempt (their jobs are back in the queue)."""
    worker.cancelProcessing()


async def add_in(pipe: Any, queue: Queue, job: BullJob) -> None:
    """Queue the adding of ``job`` on a transaction's pipeline, so it commits with the
    schedule's watermark or not at all."""
    await queue.scripts.addJob(job, pipe)
