"""A queue's cluster figures in Redis: the counters workers and schedulers flush, the
per-minute throughput buckets, and the worker and scheduler heartbeats (see ``keys``)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from corral.adapters.bullmq.connection import REDIS_DOWN, unavailable
from corral.adapters.bullmq.keys import HEARTBEAT_TTL_MS, Keys
from corral.errors import CorralError


class ClusterReads:
    """Reads of the figures every worker and scheduler of the queue writes, and what every
    reader of one queue's keys shares: the client, the names, and the guard that turns a lost
    connection into ``BrokerUnavailable``."""

    def __init__(self, client: aioredis.Redis, url: str, *, name: str, prefix: str) -> None:
        self.client = client
        self.url = url
        self.name = name
        self.prefix = prefix
        self.keys = Keys(prefix, name)

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (*REDIS_DOWN, OutOfMemoryError) as exc:  # at maxmemory Redis refuses writes
            if isinstance(exc, CorralError):
                raise
            raise unavailable(self.url, exc) from None

    async def cluster_stats(self) -> dict[str, float]:
        """The counters every worker flushes (see ``stats.StatsReporter``)."""
        async with self._guard():
            raw = await self.client.hgetall(self.keys.stats)  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}

    async def minute_counts(
        self, first_minute: int, last_minute: int
    ) -> dict[int, tuple[int, int]]:
        """(completed, failed) per epoch minute in [first, last], for minutes that have any."""
        minutes = range(first_minute, last_minute + 1)
        async with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                for m in minutes:
                    pipe.hmget(self.keys.minute(m), ["completed", "failed"])
                rows = await pipe.execute()
        return {
            m: (int(done or 0), int(failed or 0))
            for m, (done, failed) in zip(minutes, rows, strict=True)
            if done is not None or failed is not None
        }

    async def live_workers(self, *, max_age_ms: int = HEARTBEAT_TTL_MS) -> list[dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        async with self._guard():
            ids = await self.client.zrangebyscore(self.keys.workers, now_ms - max_age_ms, "+inf")
            if not ids:
                return []
            infos = await self.client.hmget(self.keys.worker_info, ids)  # type: ignore[misc]
        return [json.loads(i) if i else {"id": w} for w, i in zip(ids, infos, strict=True)]

    async def known_handlers(self) -> set[str]:
        """Handler names the live workers of this queue have registered."""
        names: set[str] = set()
        for info in await self.live_workers():
            names.update(info.get("handlers") or ())
        return names

    async def scheduler_stats(self) -> dict[str, float]:
        """The counters every scheduler writes when it settles a tick (see ``fires.FireGate``)."""
        async with self._guard():
            raw = await self.client.hgetall(self.keys.scheduler_stats)  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}

    async def live_schedulers(self, *, max_age_ms: int = HEARTBEAT_TTL_MS) -> int | None:
        """How many schedulers sent a heartbeat within ``max_age_ms``; None when no scheduler
        has ever written one (the heartbeat set does not exist)."""
        key = self.keys.schedulers
        now_ms = int(time.time() * 1000)
        async with self._guard():
            if not await self.client.exists(key):
                return None
            return int(await self.client.zcount(key, now_ms - max_age_ms, "+inf"))

    async def scheduler_clock_skews(self) -> dict[str, float]:
        """Scheduler id -> its clock minus Redis's TIME in seconds, for every scheduler that
        sent a heartbeat in the last few seconds by Redis's clock (see ``fires.heartbeat``)."""
        async with self._guard():
            ids = await self.client.zrange(self.keys.schedulers, 0, -1)
            if not ids:
                return {}
            values = await self.client.mget([self.keys.scheduler_skew(str(i)) for i in ids])
        return {str(i): float(v) for i, v in zip(ids, values, strict=True) if v is not None}
