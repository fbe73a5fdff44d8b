"""Adds stop short of Redis' ``maxmemory``, so a full Redis can always be drained.

With ``maxmemory`` and the ``noeviction`` policy, Redis refuses every write once it is full:
not only adds, but also the scripts a worker runs to take a job (it writes the job's lock) and
to finish it. A queue filled to the limit could then not be drained at all until someone raised
``maxmemory``. So producers refuse adds while Redis is above ``1 - reserve`` of ``maxmemory``
(95 % by default): the last few percent stay for workers, which free memory as they finish and
retention removes old jobs.

The check costs one ``INFO memory`` a second per producer while Redis is comfortably below the
line, and one per add once it is within reach of it (above :data:`NEAR`), where a stale reading
could let a burst of bulk adds run past the reserve.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from corral.adapters.bullmq.connection import where
from corral.core.jobs import JobSpec
from corral.errors import BrokerOutOfMemory

logger = logging.getLogger(__name__)

REFRESH_S: Final = 1.0
#: Above this share of the allowed memory, every add reads the figures afresh.
NEAR: Final = 0.8
#: A job's hash beyond its data: name, options, timestamps, counters (measured: about 1 KiB).
JOB_OVERHEAD_BYTES: Final = 1024


def estimate(specs: Sequence[JobSpec]) -> int:
    """Roughly what ``specs`` will take in Redis."""
    return sum(JOB_OVERHEAD_BYTES + len(json.dumps(s.data, separators=(",", ":"))) for s in specs)


class MemoryReserve:
    """Refuses an add that would take Redis into the reserve left for workers."""

    def __init__(self, client: aioredis.Redis, url: str, *, reserve: float) -> None:
        self.client = client
        self.url = url
        self.reserve = reserve
        self._read_at = float("-inf")
        self._used = 0
        self._limit = 0  # maxmemory; 0 = no limit (or not known)
        self._warned = False
        self._reading: asyncio.Future[None] | None = None

    async def check(self, specs: Sequence[JobSpec]) -> None:
        """Raise BrokerOutOfMemory if adding ``specs`` would cross the line."""
        if self.reserve <= 0:
            return
        now = time.monotonic()
        near = bool(self._limit) and self._used > self._limit * (1 - self.reserve) * NEAR
        if near or now - self._read_at >= REFRESH_S:
            await self._read_once(now)
        if not self._limit:
            return
        line = self._limit * (1 - self.reserve)
        near = self._used > line * NEAR
        # Sizing costs a serialisation: only where it can matter (near the line, or a batch).
        incoming_bytes = estimate(specs) if near or len(specs) > 1 else 0
        if self._used + incoming_bytes > line:
            raise BrokerOutOfMemory(
                f"Redis at {where(self.url)} is nearly out of memory "
                f"({self._used / 2**20:.1f} of {self._limit / 2**20:.1f} MiB maxmemory used): "
                f"adds are refused above {1 - self.reserve:.0%} so workers can still drain "
                "the queue; raise maxmemory, or let workers drain it and clean finished jobs"
            )
        self._used += incoming_bytes  # until the next reading, count our own adds

    async def _read_once(self, now: float) -> None:
        """One reading for every add that needs one meanwhile: a burst of adds (a web app's
        requests, a gather) would otherwise each send an INFO, and take a connection each."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(now))
            self._reading.add_done_callback(self._read_done)
        await asyncio.shield(self._reading)

    def _read_done(self, _: asyncio.Future[None]) -> None:
        self._reading = None

    async def _read(self, now: float) -> None:
        try:
            info = await self.client.info("memory")
        except RedisError as exc:
            # No figures (INFO renamed away on some managed servers): adds go on, and Redis'
            # own refusal at maxmemory still tells the producer clearly.
            if not self._warned:
                self._warned = True
                logger.warning(
                    "cannot read Redis memory figures (%s); adds are not held back before "
                    "maxmemory",
                    type(exc).__name__,
                    extra={"event": "redis.memory_unknown"},
                )
            self._limit, self._read_at = 0, now
            return
        self._used = int(info.get("used_memory", 0))
        self._limit = int(info.get("maxmemory", 0))
        self._read_at = now
