"""The worker's figures: per-process counters and a heartbeat, flushed to Redis every second."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import redis.asyncio as aioredis

from corral.adapters.bullmq.keys import HEARTBEAT_INTERVAL_S, MINUTE_TTL_MS, Keys
from corral.core.attempts import Attempt, AttemptOutcome
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

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
        self._task = asyncio.create_task(self._loop(), name="corral-heartbeat")

    async def _loop(self) -> None:
        # No backoff: the next beat is the retry, and a worker is seen alive a beat after
        # Redis is back.
        supervisor = Supervisor(
            logger,
            failure="worker heartbeat failed: {error}",
            event="worker.heartbeat_failed",
            recovery="worker heartbeat works again",
            recovered_event="worker.heartbeat_ok",
        )
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            await supervisor.attempt(self.flush)

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
