"""A queue's cluster figures in Redis: the counters workers and schedulers flush, the
per-minute throughput buckets, and the worker and scheduler heartbeats (see ``keys``)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from corral.adapters.bullmq import keys
from corral.adapters.bullmq.connection import unavailable
from corral.errors import CorralError


class QueueKeys:
    """What every reader of one queue's keys shares: the client, the names, and the guard
    that turns a lost connection into ``BrokerUnavailable``."""

    def __init__(self, client: aioredis.Redis, url: str, *, name: str, prefix: str) -> None:
        self.client = client
        self.url = url
        self.name = name
        self.prefix = prefix

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (
            RedisConnectionError,
            RedisTimeoutError,
            OutOfMemoryError,  # Redis answers but refuses writes: at maxmemory
            ConnectionError,
            TimeoutError,
        ) as exc:
            if isinstance(exc, CorralError):
                raise
            raise unavailable(self.url, exc) from None


class ClusterReads(QueueKeys):
    """Reads of the figures every worker and scheduler of the queue writes."""

    async def cluster_stats(self) -> dict[str, float]:
        """The counters every worker flushes (see ``stats.StatsReporter``)."""
        async with self._guard():
            raw = await self.client.hgetall(keys.stats(self.prefix, self.name))  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}

    async def minute_counts(
        self, first_minute: int, last_minute: int
    ) -> dict[int, tuple[int, int]]:
        """(completed, failed) per epoch minute in [first, last], for minutes that have any."""
        minutes = range(first_minute, last_minute + 1)
        async with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                for m in minutes:
                    pipe.hmget(keys.minute(self.prefix, self.name, m), ["completed", "failed"])
                rows = await pipe.execute()
        return {
            m: (int(done or 0), int(failed or 0))
            for m, (done, failed) in zip(minutes, rows, strict=True)
            if done is not None or failed is not None
        }

    async def live_workers(
        self, *, max_age_ms: int = keys.HEARTBEAT_TTL_MS
    ) -> list[dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        key = keys.workers(self.prefix, self.name)
        async with self._guard():
            ids = await self.client.zrangebyscore(key, now_ms - max_age_ms, "+inf")
            if not ids:
                return []
            infos = await self.client.hmget(keys.worker_info(self.prefix, self.name), ids)  # type: ignore[misc]
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
            raw = await self.client.hgetall(keys.scheduler_stats(self.prefix, self.name))  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}

    async def live_schedulers(self, *, max_age_ms: int = keys.HEARTBEAT_TTL_MS) -> int | None:
        """How many schedulers sent a heartbeat within ``max_age_ms``; None when no scheduler
        has ever written one (the heartbeat set does not exist)."""
        key = keys.schedulers(self.prefix, self.name)
        now_ms = int(time.time() * 1000)
        async with self._guard():
            if not await self.client.exists(key):
                return None
            return int(await self.client.zcount(key, now_ms - max_age_ms, "+inf"))

    async def scheduler_clock_skews(self) -> dict[str, float]:
        """Scheduler id -> its clock minus Redis's TIME in seconds, for every scheduler that
        sent a heartbeat in the last few seconds by Redis's clock (see ``fires.heartbeat``)."""
        async with self._guard():
            ids = await self.client.zrange(keys.schedulers(self.prefix, self.name), 0, -1)
            if not ids:
                return {}
            values = await self.client.mget(
                [keys.scheduler_skew(self.prefix, self.name, str(i)) for i in ids]
            )
        return {str(i): float(v) for i, v in zip(ids, values, strict=True) if v is not None}
