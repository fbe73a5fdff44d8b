"""Schedule-change nudges over Redis pub/sub, so running schedulers reload within moments.

Pub/sub is fire-and-forget: a scheduler that is disconnected misses nudges. That is why the
scheduler also polls the store's change marker; the nudge only makes propagation fast.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from corral.adapters.bullmq.keys import Keys
from corral.core.backoff import RetryPolicy
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)


async def publish_change(client: aioredis.Redis, *, prefix: str, queue: str, what: str) -> None:
    try:
        await client.publish(Keys(prefix, queue).schedule_changes, what)
    except Exception as exc:  # the poll picks the change up anyway
        logger.warning(
            "could not publish a schedule change: %s",
            exc,
            extra={"event": "schedules.publish_failed"},
        )


class ChangeFeed:
    """Calls ``on_change`` for each nudge; resubscribes after errors (calling it once when back,
    since nudges may have been missed). An outage logs one line, then one per 10 s."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str, queue: str, on_change: Callable[[], None]
    ) -> None:
        self.client = client
        self.channel = Keys(prefix, queue).schedule_changes
        self.on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="corral-schedule-changes")

    async def _run(self) -> None:
        supervisor = Supervisor(
            logger,
            failure="schedule change feed lost: {error}",
            event="schedules.feed_lost",
            recovery="schedule change feed restored",
            recovered_event="schedules.feed_restored",
            policy=RetryPolicy(initial_s=0.1, max_s=5.0),
        )
        while True:
            await supervisor.attempt(lambda: self._listen(supervisor))

    async def _listen(self, supervisor: Supervisor) -> None:
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(self.channel)
            if supervisor.recovered():  # nudges may have been lost while disconnected
                self.on_change()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None:
                    self.on_change()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()
