"""bullmq's ``Worker`` with Corral's dispatch, the fetch-next fast path, the prefetch (jobs held
beyond the handlers running, ``slots.py``) and the isolation of jobs recovered from a dead
worker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from bullmq import Job as BullJob
from bullmq import Worker

from corral.adapters.bullmq import internals
from corral.adapters.bullmq.finishing import Finisher
from corral.adapters.bullmq.slots import HandlerSlots

if TYPE_CHECKING:
    from corral.adapters.bullmq.consumer import BullConsumer

logger = logging.getLogger(__name__)


class Isolation:
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


class CorralWorker(Worker):  # type: ignore[misc]
    """Runs each fetched job through the consumer, and the job its completion fetched next.

    bullmq's ``concurrency`` here is the number of jobs held (``opts``); ``handlers`` of them
    run at once, the others wait for a slot with their lock renewed like any active job's."""

    def __init__(self, consumer: BullConsumer, opts: dict[str, Any], *, handlers: int) -> None:
        super().__init__(consumer.config.queue, None, opts)
        self.consumer = consumer
        self.slots = HandlerSlots(handlers)
        self.isolation = Isolation()
        self.finisher = Finisher(self, consumer.client)
        internals.use_blocking_client(self, consumer.blocking_client)
        internals.renew_locks_until_jobs_end(self)

    async def getNextJob(self, token: str) -> BullJob | None:
        """Honour the rate limiter's wait. bullmq-python records ``limitUntil`` (the ms until
        the limiter's window ends) but then blocks for ``drainDelay`` on a marker that a
        rate-limited queue does not get, stretching every window to a second or more. As
        BullMQ's Node worker does, sleep until the window ends and fetch again.

        While a recovered job runs alone (see :class:`Isolation`) nothing is fetched.

        While another slot waits for new jobs on an empty queue, a free slot has nothing to
        fetch. bullmq-python's run loop starts a fetch for every free slot at once; Node's
        starts one, which marks itself the waiting one before the next is considered. So here,
        after each job picked up from an idle queue, every free slot but the new waiting one
        ran the fetch script again, finding nothing, ahead of the job's own commands in
        Redis: twice as many futile fetches as Node makes, and more slots with a prefetch."""
        if self.isolation.suspect:
            await self.isolation.until_clear()
        if self.closing or (self.drained and self.waiting is not None):
            return None
        nxt = await self._fetch(token)
        if nxt is not None and self.closing:
            # Fetched as the worker closed: bullmq's run loop may be gone, and a job no slot
            # takes would stay active unrenewed until stalled-job recovery counts a stall.
            await self.finisher.requeue(nxt, token, "was fetched during shutdown", logging.DEBUG)
            return None
        return nxt

    async def _fetch(self, token: str) -> BullJob | None:
        if not self.closing and not self.paused:
            limit_ms = internals.take_limit_wait_ms(self)
            if limit_ms > 0:
                await asyncio.sleep(limit_ms / 1000)
                if self.closing or self.paused:
                    return None
                return await internals.move_to_active(self, token)
        nxt: BullJob | None = await super().getNextJob(token)
        return nxt

    async def close(self, force: bool = False) -> None:
        """Stop taking jobs: the held jobs not started go back to the queue at once (see
        :meth:`_attempt`), the running ones finish."""
        self.slots.close()
        await super().close(force)

    async def processJob(self, job: BullJob, token: str) -> None:
        current: BullJob | None = job
        while current is not None:
            current = await self._process_one(current, token)

    async def _process_one(self, job: BullJob, token: str) -> BullJob | None:
        internals.track(self, job, token, int(time.time() * 1000))
        isolation = self.isolation
        try:
            if isolation.suspect:
                why = "arrived while a job runs alone here"
                await self.finisher.requeue(job, token, why, logging.DEBUG)
                return None
            if internals.stalled_count(job) > 0 and not internals.deferred_failure(job):
                return await self._alone(job, token)
            isolation.running += 1
            try:
                return await self._attempt(job, token)
            finally:
                isolation.running -= 1
                if isolation.suspect and not isolation.running:
                    await isolation.changed()
        finally:
            internals.untrack(self, job, token)

    async def _alone(self, job: BullJob, token: str) -> BullJob | None:
        isolation = self.isolation
        isolation.suspect = True
        logger.warning(
            "job %s (%s) was running on a worker that died (%d time(s)); running it alone",
            job.id,
            job.name,
            internals.stalled_count(job),
            extra={"event": "job.isolated", "job_id": job.id},
        )
        try:
            await isolation.until_alone()
            return await self._attempt(job, token)
        finally:
            isolation.suspect = False
            await isolation.changed()

    async def _attempt(self, job: BullJob, token: str) -> BullJob | None:
        """Run one attempt in a handler slot, record its outcome (the slot already free for a
        held job), tell the listeners; the job fetched with the completion, if any."""
        if not await self.slots.acquire():
            why = "was not started before shutdown"
            await self.finisher.requeue(job, token, why, logging.DEBUG)
            return None
        try:
            outcome = await self.consumer.run(job)
        finally:
            self.slots.release()
        if self.forceClosing:
            return None
        fetched: dict[str, Any] | None = None
        fetch = False
        if outcome.ok:
            fetch = not self.closing and not self.paused and not self.isolation.suspect
            try:
                fetched = await self.finisher.complete(job, token, outcome.result, fetch)
            except Exception as exc:
                outcome = outcome.failed(exc)
            else:
                if fetched is None:
                    return None  # refused: the job is another worker's now
        recorded = outcome if outcome.ok else await self.finisher.fail(job, token, outcome)
        if recorded is not None:
            self.consumer.executor.finished(recorded)
        if fetch and fetched is not None and fetched["result"]:
            return await internals.next_job(self, fetched["result"], token)
        return None
