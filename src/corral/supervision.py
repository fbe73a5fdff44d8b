"""Supervising a step that runs again and again (a stream read, a flush, a heartbeat, a
connection attempt): one way to wait after failures and one way to log them.

A failing step logs its first failure at once, then at most one line per 10 s saying how many
were held back (an outage must not flood the log), and one line when it works again. The wait
before the next try follows the step's :class:`~corral.core.backoff.RetryPolicy`; a step whose
loop keeps its own pace (the scheduler's poll, the heartbeat's beat) has none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from corral.core.backoff import RetryPolicy
from corral.core.throttle import LogThrottle, held_note


class Supervisor:
    """The failures of one step. ``failure`` and ``recovery`` are ``str.format`` templates:
    ``{error}``, ``{delay}`` (s), ``{failures}`` (in a row) and the fields given to
    :meth:`failed`, which also go into the log record."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        failure: str,
        event: str,
        recovery: str | None = None,
        recovered_event: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.logger = logger
        self.failure, self.event = failure, event
        self.recovery, self.recovered_event = recovery, recovered_event
        self.policy = policy
        self.failures = 0
        self._throttle = LogThrottle()

    @property
    def delay(self) -> float:
        """Seconds to wait before the next try (0 while the step works)."""
        if self.policy is None or not self.failures:
            return 0.0
        return self.policy.delay(self.failures)

    def failed(self, error: BaseException, **fields: Any) -> float:
        """Count and (maybe) log a failure; returns the wait before the next try."""
        self.failures += 1
        held = self._throttle.allow(time.monotonic())
        if held is not None:
            text = self.failure.format(
                error=error, delay=self.delay, failures=self.failures, **fields
            )
            self.logger.warning(
                "%s%s",
                text,
                held_note(held),
                extra={"event": self.event, "failures": self.failures, **fields},
            )
        return self.delay

    def recovered(self) -> bool:
        """The step worked: True if it had been failing (logged if its failure was)."""
        failures, self.failures = self.failures, 0
        if self._throttle.clear() and self.recovery is not None:
            self.logger.info(
                self.recovery.format(failures=failures),
                extra={"event": self.recovered_event, "failures": failures},
            )
        return failures > 0

    async def attempt(
        self,
        step: Callable[[], Awaitable[Any]],
        wait: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        **fields: Any,
    ) -> bool:
        """Run ``step`` once; on failure log it and ``wait`` per the policy. True if it worked."""
        try:
            await step()
        except Exception as exc:
            delay = self.failed(exc, **fields)
            if delay > 0:
                await wait(delay)
            return False
        self.recovered()
        return True

    async def forever(
        self, step: Callable[[], Awaitable[Any]], *, every_s: float = 0.0, **fields: Any
    ) -> None:
        """:meth:`attempt` ``step`` again and again (``every_s`` apart) until cancelled."""
        while True:
            if every_s:
                await asyncio.sleep(every_s)
            await self.attempt(step, **fields)
