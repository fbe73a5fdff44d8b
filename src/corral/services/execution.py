"""Run one attempt of one job: dispatch by name, enforce the timeout, notify observers.

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

from corral.core.handlers import Handler, HandlerRegistry, Job
from corral.core.ports import ExecutionObserver
from corral.errors import JobTimeoutError

logger = logging.getLogger(__name__)


class Executor:
    def __init__(
        self,
        registry: HandlerRegistry,
        *,
        threads: int,
        observers: Sequence[ExecutionObserver] = (),
    ) -> None:
        self.registry = registry
        self.observers = list(observers)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="corral-handler")

    def handler_for(self, name: str) -> Handler:
        """The handler for a job name; raises HandlerNotFound (the caller fails the job at once)."""
        return self.registry.get_handler(name)

    def handler_names(self) -> list[str]:
        return sorted(self.registry)

    async def run(self, handler: Handler, job: Job, timeout_ms: int | None) -> Any:
        attempt = job.attempts_made + 1
        self._notify_started(job, attempt)
        started = time.perf_counter()
        try:
            result = await self._call(handler, job, timeout_ms)
        except BaseException as exc:
            duration_ms = (time.perf_counter() - started) * 1000
            self._notify_finished(job, attempt, ok=False, duration_ms=duration_ms, error=repr(exc))
            raise
        duration_ms = (time.perf_counter() - started) * 1000
        self._notify_finished(job, attempt, ok=True, duration_ms=duration_ms, error=None)
        return result

    async def _call(self, handler: Handler, job: Job, timeout_ms: int | None) -> Any:
        # asyncio.timeout, not wait_for: a TimeoutError the handler raises itself (an HTTP or
        # socket timeout) must stay that error, not become "the job timed out".
        timeout_s = None if timeout_ms is None else timeout_ms / 1000
        if handler.is_async:
            scope = asyncio.timeout(timeout_s)
            try:
                async with scope:
                    return await handler.func(job)
            except TimeoutError:
                if not scope.expired():
                    raise
                raise JobTimeoutError(timeout_ms or 0) from None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, handler.func, job)
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                result = await asyncio.shield(future)
                if inspect.isawaitable(result):  # a plain wrapper around async code
                    result = await result
                return result
        except TimeoutError:
            if not scope.expired():
                raise
            logger.warning(
                "sync handler %s for job %s timed out after %s ms; its thread runs on",
                handler.name,
                job.id,
                timeout_ms,
                extra={"event": "job.timeout_thread_left", "job_id": job.id},
            )
            raise JobTimeoutError(timeout_ms or 0) from None

    def _notify_started(self, job: Job, attempt: int) -> None:
        for observer in self.observers:
            try:
                observer.attempt_started(job.id, job.name, attempt)
            except Exception:
                logger.exception("execution observer failed", extra={"event": "observer.error"})

    def _notify_finished(
        self, job: Job, attempt: int, *, ok: bool, duration_ms: float, error: str | None
    ) -> None:
        for observer in self.observers:
            try:
                observer.attempt_finished(
                    job.id, job.name, attempt, ok=ok, duration_ms=duration_ms, error=error
                )
            except Exception:
                logger.exception("execution observer failed", extra={"event": "observer.error"})

    def close(self) -> None:
        """Stop accepting thread work; threads of timed-out handlers are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)
