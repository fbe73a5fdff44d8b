"""Supervised readers of what Redis tells a process about one queue.

* BullMQ's event stream: bullmq's ``QueueEvents`` stops for good after a read error; this
  reader reconnects with a capped backoff and resumes from the last event it delivered, so
  listeners miss nothing that is still in the (trimmed) stream. Events come from every worker
  in the cluster.
* Schedule-change nudges over pub/sub, so running schedulers reload within moments. Pub/sub is
  fire-and-forget: a scheduler that is disconnected misses nudges. That is why the scheduler
  also polls the store's change marker; the nudge only makes propagation fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from corral.adapters.bullmq.keys import Keys
from corral.core.backoff import RetryPolicy
from corral.core.events import QueueEvent
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

_BLOCK_MS = 1000
_FIELD_NAMES = {"returnvalue": "result", "failedReason": "error", "data": "progress"}


def _value(key: str, value: str) -> Any:
    if key in ("returnvalue", "data"):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _decode(fields: dict[str, str]) -> dict[str, Any]:
    skip = ("event", "jobId")
    return {_FIELD_NAMES.get(k, k): _value(k, v) for k, v in fields.items() if k not in skip}


class _Reader:
    """A supervised task reading through a client of its own; closing stops both."""

    client: aioredis.Redis
    _task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.client.aclose()


class EventStream(_Reader):
    """Reads ``{prefix}:{queue}:events`` and calls ``sink`` for each event, in order."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        queue: str,
        sink: Callable[[QueueEvent], None],
        max_backoff_s: float = 5.0,
    ) -> None:
        self.client = client
        self.queue = queue
        self.key = Keys(prefix, queue).events
        self.sink = sink
        self.max_backoff_s = max_backoff_s
        self.last_id: str | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start reading; returns once the stream position is fixed (events after now are seen)."""
        if self._task is None:
            supervisor = Supervisor(
                logger,
                failure="event stream of {queue} lost: {error}; reconnecting",
                event="events.disconnected",
                recovery=f"event stream of {self.queue} reconnected",
                recovered_event="events.reconnected",
                policy=RetryPolicy(initial_s=0.1, max_s=self.max_backoff_s),
            )
            reading = supervisor.forever(self._read, queue=self.queue)
            self._task = asyncio.create_task(reading, name=f"corral-events-{self.queue}")
        await self._ready.wait()

    async def _read(self) -> None:
        try:
            if self.last_id is None:  # start after the newest event
                newest = await self.client.xrevrange(self.key, count=1)
                self.last_id = str(newest[0][0]) if newest else "0-0"
        finally:
            self._ready.set()  # start() must not hang while Redis is down
        response = await self.client.xread({self.key: self.last_id}, block=_BLOCK_MS, count=500)
        for _stream, entries in response or ():
            for event_id, fields in entries:
                self.last_id = event_id
                self._deliver(event_id, fields)

    def _deliver(self, event_id: str, fields: dict[str, str]) -> None:
        event = QueueEvent(
            name=fields.get("event", ""),
            queue=self.queue,
            job_id=fields.get("jobId"),
            data=_decode(fields),
            event_id=event_id,
        )
        try:
            self.sink(event)
        except Exception:
            logger.exception("event sink failed", extra={"event": "events.sink_error"})


async def publish_change(client: aioredis.Redis, *, prefix: str, queue: str, what: str) -> None:
    try:
        await client.publish(Keys(prefix, queue).schedule_changes, what)
    except Exception as exc:  # the poll picks the change up anyway
        logger.warning(
            "could not publish a schedule change: %s",
            exc,
            extra={"event": "schedules.publish_failed"},
        )


class ChangeFeed(_Reader):
    """Calls ``on_change`` for each nudge; resubscribes after errors (calling it once when back,
    since nudges may have been missed). An outage logs one line, then one per 10 s."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str, queue: str, on_change: Callable[[], None]
    ) -> None:
        self.client = client
        self.channel = Keys(prefix, queue).schedule_changes
        self.on_change = on_change

    def start(self) -> None:
        supervisor = Supervisor(
            logger,
            failure="schedule change feed lost: {error}",
            event="schedules.feed_lost",
            recovery="schedule change feed restored",
            recovered_event="schedules.feed_restored",
            policy=RetryPolicy(initial_s=0.1, max_s=5.0),
        )
        listening = supervisor.forever(lambda: self._listen(supervisor))
        self._task = asyncio.create_task(listening, name="corral-schedule-changes")

    async def _listen(self, supervisor: Supervisor) -> None:
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(self.channel)
            if supervisor.recovered():  # nudges may have been lost while disconnected
                self.on_change()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None:
                    self.on_change()
