"""Run one attempt of one job: dispatch by name, enforce the timeout, tell the listeners.

Sync handlers run in a thread pool, never on the event loop: a handler that blocks the loop
would stop lock renewal and let another worker take the job (a duplicate run). A thread cannot
be killed, so on timeout the attempt fails on time and the thread is left to finish (logged).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from corral.core.attempts import Attempt, AttemptOutcome
from corral.core.handlers import Handler, HandlerRegistry, Job
from corral.core.ports import AttemptListener
from corral.errors import JobTimeoutError
from corral.services.deadlines import Deadlines

logger = logging.getLogger(__name__)


def _now_ms() -> float:
    return time.time() * 1000


class Executor:
    def __init__(
        self,
        registry: HandlerRegistry,
        *,
        threads: int,
        listeners: Sequence[AttemptListener] = (),
    ) -> None:
        self.registry = registry
        self.listeners = list(listeners)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="corral-handler")
        self._deadlines = Deadlines()

    def handler_for(self, name: str) -> Handler:
        """The handler for a job name; raises HandlerNotFound (the caller fails the job at once)."""
        return self.registry.get_handler(name)

    def handler_names(self) -> list[str]:
        return sorted(self.registry)

    def add_listener(self, listener: AttemptListener) -> None:
        self.listeners.append(listener)

    async def run(
        self, job: Job, timeout_ms: int | None, *, refused: Exception | None = None
    ) -> AttemptOutcome:
        """Run one attempt of ``job``, or fail it at once with ``refused`` (a reason known before
        it runs); a failure is in the outcome, only cancellation raises. The listeners hear of
        the start now; of the end through :meth:`finished`, once the broker has recorded it."""
        attempt = Attempt(
            job_id=job.id,
            enqueued_ms=job.timestamp_ms,
            name=job.name,
            number=job.attempts_made + 1,
            started_ms=_now_ms(),
        )
        self._tell("attempt_started", attempt)
        try:
            if refused is not None:
                raise refused
            result = await self._call(self.handler_for(job.name), job, timeout_ms)
        except Exception as exc:
            return attempt.failed(exc, _now_ms())
        return attempt.completed(result, _now_ms())

    def finished(self, outcome: AttemptOutcome) -> None:
        self._tell("attempt_finished", outcome)

    def _tell(self, what: str, about: Attempt | AttemptOutcome) -> None:
        # A listener's exception is logged and never fails the job.
        for listener in self.listeners:
            try:
                getattr(listener, what)(about)
            except Exception:
                logger.exception("attempt listener failed", extra={"event": "listener.error"})

    async def _call(self, handler: Handler, job: Job, timeout_ms: int | None) -> Any:
        if handler.is_async:
            work = handler.func(job)
        else:  # shielded: a thread cannot be cut off, so a timeout leaves it to run on
            loop = asyncio.get_running_loop()
            work = asyncio.shield(loop.run_in_executor(self._pool, handler.func, job))
        # Not asyncio.wait_for: a TimeoutError the handler raises itself (an HTTP or socket
        # timeout) must stay that error, not become "the job timed out". Not asyncio.timeout
        # either: one timer per attempt cost more than the rest of this method (deadlines.py).
        deadline = None if timeout_ms is None else self._deadlines.start(timeout_ms / 1000)
        try:
            result = await work
            if not handler.is_async and inspect.isawaitable(result):  # wraps async code
                result = await result
        except asyncio.CancelledError:
            ended, deadline = deadline, None
            if ended is None or not self._deadlines.end(ended):
                raise
            if not handler.is_async:
                logger.warning(
                    "sync handler %s for job %s timed out after %s ms; its thread runs on",
                    handler.name,
                    job.id,
                    timeout_ms,
                    extra={"event": "job.timeout_thread_left", "job_id": job.id},
                )
            raise JobTimeoutError(timeout_ms or 0) from None
        finally:
            if deadline is not None:
                self._deadlines.end(deadline)
        return result

    def close(self) -> None:
        """Stop accepting thread work; threads of timed-out handlers are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._deadlines.close()
