"""A queue's cluster figures in Redis: the counters workers and schedulers flush, the
per-minute throughput buckets, and the worker and scheduler heartbeats (see ``keys``); read by
anyone, and written by each worker's :class:`StatsReporter` every second."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from corral.adapters.bullmq.connection import REDIS_DOWN, unavailable
from corral.adapters.bullmq.keys import HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_MS, MINUTE_TTL_MS, Keys
from corral.core.attempts import Attempt, AttemptOutcome
from corral.errors import CorralError
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)


class ClusterReads:
    """Reads of the figures every worker and scheduler of the queue writes, and what every
    reader of one queue's keys shares: the client, the names, and the guard that turns a lost
    connection into ``BrokerUnavailable``."""

    def __init__(self, client: aioredis.Redis, url: str, *, name: str, prefix: str) -> None:
        self.client = client
        self.url = url
        self.name = name
        self.keys = Keys(prefix, name)

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (*REDIS_DOWN, OutOfMemoryError) as exc:  # at maxmemory Redis refuses writes
            if isinstance(exc, CorralError):
                raise
            raise unavailable(self.url, exc) from None

    async def _figures(self, key: str) -> dict[str, float]:
        async with self._guard():
            raw = await self.client.hgetall(key)  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}

    async def cluster_stats(self) -> dict[str, float]:
        """The counters every worker flushes (see :class:`StatsReporter`)."""
        return await self._figures(self.keys.stats)

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
        workers = await self.live_workers()
        return {name for info in workers for name in info.get("handlers") or ()}

    async def scheduler_stats(self) -> dict[str, float]:
        """The counters every scheduler writes when it settles a tick (see ``fires.FireGate``)."""
        return await self._figures(self.keys.scheduler_stats)

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


_COUNTS = ("completed", "failed", "retried", "stalled")


class StatsReporter:
    """Per-process counters flushed to Redis every second with this worker's heartbeat.

    Metrics are therefore cluster-wide (every worker adds to one hash) at the cost of up to one
    second of lag; a SIGKILLed worker loses at most its last second of counts.
    """

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = ""
        self.info = ""  # the worker's JSON entry in the queue's list of workers
        self.counts: Counter[str] = Counter()
        self.processing_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- AttemptListener: counts in memory, flushed with the next heartbeat ----------------
    def attempt_started(self, attempt: Attempt) -> None:
        pass

    def attempt_finished(self, outcome: AttemptOutcome) -> None:
        self.processing_ms += outcome.duration_ms
        self.counts["completed" if outcome.ok else "retried" if outcome.retrying else "failed"] += 1

    def job_stalled(self) -> None:
        self.counts["stalled"] += 1

    async def start(self, worker_id: str, info: str) -> None:
        """Beat as ``worker_id``, listed with ``info``: now, then every second."""
        self.worker_id, self.info = worker_id, info
        await self.flush()
        # No backoff: the next beat is the retry, and a worker is seen alive a beat after
        # Redis is back.
        supervisor = Supervisor(
            logger,
            failure="worker heartbeat failed: {error}",
            event="worker.heartbeat_failed",
            recovery="worker heartbeat works again",
            recovered_event="worker.heartbeat_ok",
        )
        beating = supervisor.forever(self.flush, every_s=HEARTBEAT_INTERVAL_S)
        self._task = asyncio.create_task(beating, name="corral-heartbeat")

    async def flush(self, *, final: bool = False) -> None:
        counts, self.counts = self.counts, Counter()
        ms, self.processing_ms = self.processing_ms, 0.0
        keys, now_ms = self.keys, int(time.time() * 1000)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in _COUNTS:
                    if counts[name]:
                        pipe.hincrby(keys.stats, name, counts[name])
                if ms:
                    pipe.hincrbyfloat(keys.stats, "processing_ms", round(ms, 3))
                if counts["completed"] or counts["failed"]:
                    # The per-minute series behind the dashboard's chart; a job is counted in
                    # the minute of the flush, at most a second after it finished.
                    minute_key = keys.minute(now_ms // 60_000)
                    for name in ("completed", "failed"):
                        if counts[name]:
                            pipe.hincrby(minute_key, name, counts[name])
                    pipe.pexpire(minute_key, MINUTE_TTL_MS)
                if final:
                    pipe.zrem(keys.workers, self.worker_id)
                    pipe.hdel(keys.worker_info, self.worker_id)
                else:
                    pipe.zadd(keys.workers, {self.worker_id: now_ms})
                    pipe.hset(keys.worker_info, self.worker_id, self.info)
                    pipe.zremrangebyscore(keys.workers, "-inf", now_ms - 3_600_000)
                await pipe.execute()
        except BaseException:
            # Not flushed: keep the counts for the next try.
            self.counts.update(counts)
            self.processing_ms += ms
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush(final=True)
        except Exception as exc:
            logger.warning(
                "final stats flush failed: %s", exc, extra={"event": "worker.flush_failed"}
            )
