"""Time limits for the attempts a worker runs, on one timer per distinct limit.

``asyncio.timeout`` arms a timer of the event loop for every attempt and disarms it when the
attempt ends: with thousands of short jobs a second, that pair cost more CPU than anything
else the executor does per job. A worker's attempts share a handful of limits (most jobs keep
the default 30 s), and with one limit, deadlines fall in the order the attempts started. So
each limit keeps its running attempts in an insertion-ordered dict (oldest deadline first,
removal in O(1) when an attempt ends) and one timer, armed for the oldest deadline. When it
fires, attempts past their deadline are cancelled, as ``asyncio.timeout`` cancels them, and the
timer is armed again for the oldest one left; an attempt that ended in time is simply gone.

The semantics are ``asyncio.timeout``'s: the attempt's task is cancelled; the caller turns the
``CancelledError`` into its timeout only when the deadline expired and nobody else cancelled
the task too (``Task.cancelling``), so a shutdown's cancellation stays a cancellation, and a
``TimeoutError`` the handler raises itself stays that error.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

#: A loop may run a timer up to its clock's resolution before the time asked: a deadline that
#: close is due (``asyncio.timeout`` cancels whenever its timer runs).
_EARLY_S: Final = 0.001


class Deadline:
    """One attempt's time limit: ``expired`` once its task was cancelled for running late."""

    __slots__ = ("cancelling", "expired", "limit_s", "task", "when")

    def __init__(self, limit_s: float, when: float, task: asyncio.Task[Any]) -> None:
        self.limit_s = limit_s
        self.when = when
        self.task = task
        self.cancelling = task.cancelling()  # cancellations asked before this limit began
        self.expired = False


class Deadlines:
    """The limits of one executor's running attempts (see the module's docstring)."""

    def __init__(self) -> None:
        self._running: dict[float, dict[Deadline, None]] = {}
        self._timers: dict[float, asyncio.TimerHandle] = {}

    def start(self, limit_s: float) -> Deadline:
        """The current task's limit, ``limit_s`` from now; :meth:`end` it when it ends."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a task to cancel")
        deadline = Deadline(limit_s, loop.time() + limit_s, task)
        running = self._running.get(limit_s)
        if running is None:
            running = self._running[limit_s] = {}
        running[deadline] = None
        if limit_s not in self._timers:  # else armed for an older deadline: it re-arms then
            self._timers[limit_s] = loop.call_at(deadline.when, self._expire, limit_s)
        return deadline

    def end(self, deadline: Deadline) -> bool:
        """End ``deadline`` (once, however its attempt ended). True when it expired and its
        cancellation was the only one: after a ``CancelledError`` the caller then reports a
        timeout instead. As ``asyncio.timeout``, an expired limit takes its cancellation
        back from the task's count whatever the attempt did with it."""
        running = self._running.get(deadline.limit_s)
        if running is not None:
            running.pop(deadline, None)
        return deadline.expired and deadline.task.uncancel() <= deadline.cancelling

    def _expire(self, limit_s: float) -> None:
        del self._timers[limit_s]
        running = self._running[limit_s]
        loop = asyncio.get_running_loop()
        now = loop.time() + _EARLY_S
        while running:
            oldest = next(iter(running))
            if oldest.when > now:
                self._timers[limit_s] = loop.call_at(oldest.when, self._expire, limit_s)
                return
            del running[oldest]
            oldest.expired = True
            oldest.task.cancel()
        del self._running[limit_s]  # no attempt with this limit left: no timer, no entry

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._running.clear()
