"""Schedule-change nudges over Redis pub/sub, so running schedulers reload within moments.

Pub/sub is fire-and-forget: a scheduler that is disconnected misses nudges. That is why the
scheduler also polls the store's change marker; the nudge only makes propagation fast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from corral.adapters.bullmq import keys
from corral.core.throttle import LogThrottle, held_note

logger = logging.getLogger(__name__)


async def publish_change(client: aioredis.Redis, *, prefix: str, queue: str, what: str) -> None:
    try:
        await client.publish(keys.schedule_changes(prefix, queue), what)
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
        self.channel = keys.schedule_changes(prefix, queue)
        self.on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="corral-schedule-changes")

    async def _run(self) -> None:
        delay = 0.1
        throttle = LogThrottle()
        missed = False
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    delay = 0.1
                    if missed:  # nudges may have been lost while disconnected
                        missed = False
                        self.on_change()
                        if throttle.clear():
                            logger.info(
                                "schedule change feed restored",
                                extra={"event": "schedules.feed_restored"},
                            )
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=5.0
                        )
                        if message is not None:
                            self.on_change()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                missed = True
                held = throttle.allow(time.monotonic())
                if held is not None:
                    logger.warning(
                        "schedule change feed lost: %s%s",
                        exc,
                        held_note(held),
                        extra={"event": "schedules.feed_lost"},
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()
