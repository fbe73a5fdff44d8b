"""Recording a finished attempt in BullMQ, through a Redis outage and a lost lock.

A job whose handler has finished must not be re-run because Redis was away for a few seconds
when its result was recorded: dropped, it would wait for stalled-job recovery (a lock duration
later) and run a second time. So the recording script is called again while Redis cannot be
reached, for as long as the job's lock could still be ours. BullMQ's script checks the lock, so
a retry after the lock expired is refused (``Missing lock``) rather than applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import UnrecoverableError as BullUnrecoverable
from bullmq import Worker

from corral.adapters.bullmq import internals
from corral.adapters.bullmq.connection import REDIS_DOWN
from corral.adapters.bullmq.hotpath import Completion
from corral.core.attempts import AttemptOutcome
from corral.errors import HandlerNotFound, UnrecoverableError

logger = logging.getLogger(__name__)
T = TypeVar("T")

_UNRECOVERABLE = (UnrecoverableError, HandlerNotFound)


class _Failed(Exception):
    """A failed attempt as handed to BullMQ: its text is the described error."""


def _could_not(what: str, job: BullJob, exc: Exception, event: str) -> None:
    logger.error("could not %s: %s", what, exc, extra={"event": event, "job_id": job.id})


class Finisher:
    """Records the outcomes of one worker's attempts."""

    def __init__(self, worker: Worker, client: aioredis.Redis) -> None:
        self.worker = worker
        self._retried: set[str] = set()
        self._requeue = internals.requeue_script(client)
        self._complete = Completion(worker)

    async def complete(
        self, job: BullJob, token: str, result: Any, fetch: bool
    ) -> dict[str, Any] | None:
        """Record a success; None when BullMQ refused it (the lock was lost)."""

        def complete() -> Awaitable[dict[str, Any]]:
            return self._complete(job, result, token, fetch_next=fetch)

        try:
            return await self._through_outage(job, complete)
        except TypeError as exc:
            if not internals.refused(exc):
                raise
            if await self._completed_by_us(job):
                return {"result": None}
            self._log_refused(job, exc)
            return None

    async def fail(
        self, job: BullJob, token: str, outcome: AttemptOutcome
    ) -> AttemptOutcome | None:
        """Record a failure; the outcome with ``retrying`` known, None if it was not recorded."""
        # BullMQ stores str(error) as the failure reason: hand it the described error, so the
        # queue, the API and the log all say "KeyError: 'width'", not "'width'".
        reason = outcome.error or ""
        err = outcome.exception or _Failed(reason)
        error = BullUnrecoverable(reason) if isinstance(err, _UNRECOVERABLE) else _Failed(reason)
        trace = list(job.stacktrace)

        def record() -> Awaitable[bool]:
            job.stacktrace = list(trace)  # each call appends this attempt's traceback once
            return internals.move_to_failed(job, error, token, err)

        try:
            final = await self._through_outage(job, record)
        except TypeError as exc:
            if not internals.refused(exc):
                raise
            self._log_refused(job, exc)
            return None
        except Exception as exc:
            _could_not(f"record the failure of job {job.id}", job, exc, "job.fail_record_failed")
            return None
        logger.log(
            logging.WARNING if final else logging.INFO,
            "job %s (%s) attempt %d failed%s: %s",
            job.id,
            job.name,
            outcome.attempt.number,
            "" if final else ", will retry",
            reason,
            # The traceback once, with the final failure; a retry's one line says enough.
            exc_info=err if final else None,
            extra={"event": "job.failed" if final else "job.retrying", "job_id": job.id},
        )
        return replace(outcome, retrying=not final)

    async def requeue(
        self, job: BullJob, token: str, why: str, level: int = logging.WARNING
    ) -> None:
        """Move an active job of ours back to the front of its queue, its lock released, with
        no stall counted (BullMQ's moveJobFromActiveToWait)."""
        try:
            await internals.requeue(self._requeue, self.worker, job, token)
        except Exception as exc:
            what = f"return job {job.id} to the queue (stalled-job recovery will)"
            _could_not(what, job, exc, "job.requeue_failed")
            return
        logger.log(
            level,
            "job %s %s; returned to the queue",
            job.id,
            why,
            extra={"event": "job.requeued", "job_id": job.id},
        )

    async def _through_outage(self, job: BullJob, call: Callable[[], Awaitable[T]]) -> T:
        """Await a recording script, calling it again while Redis cannot be reached, for as
        long as the job's lock could still be ours."""
        pending = call()
        deadline: float | None = None
        delay = 0.05
        while True:
            try:
                return await pending
            except REDIS_DOWN as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.worker.opts["lockDuration"] / 1000
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
                self._retried.add(str(job.id))
                pending = call()

    async def _completed_by_us(self, job: BullJob) -> bool:
        """After a retried completion was refused: did the first call land and only its reply
        get lost (the job is completed, its lock gone with it)?"""
        if str(job.id) not in self._retried:
            return False
        self._retried.discard(str(job.id))
        try:
            return await internals.job_state(self.worker, str(job.id)) == "completed"
        except Exception:
            return False

    def _log_refused(self, job: BullJob, exc: Exception) -> None:
        self._retried.discard(str(job.id))
        logger.warning(
            "job %s (%s) finished after its lock was lost; the result is discarded and the job "
            "is left to the worker that holds it now (%s)",
            job.id,
            job.name,
            exc,
            extra={"event": "job.finish_refused", "job_id": job.id},
        )
