"""The worker's figures: per-process counters and a heartbeat, flushed to Redis every second."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time

import redis.asyncio as aioredis

from corral.adapters.bullmq import keys
from corral.adapters.bullmq.config import WorkerConfig
from corral.core.attempts import Attempt, AttemptOutcome
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)


class StatsReporter:
    """Per-process counters flushed to Redis every second with this worker's heartbeat.

    Metrics are therefore cluster-wide (every worker adds to one hash) at the cost of up to one
    second of lag; a SIGKILLed worker loses at most its last second of counts.
    """

    def __init__(self, client: aioredis.Redis, config: WorkerConfig, worker_id: str) -> None:
        self.client = client
        self.config = config
        self.worker_id = worker_id
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.stalled = 0
        self.processing_ms = 0.0
        self._started_at_ms = int(time.time() * 1000)
        self.handlers: list[str] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def _info(self) -> str:
        return json.dumps(
            {
                "id": self.worker_id,
                "name": self.config.name,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.config.concurrency,
                "handlers": self.handlers,
                "started_at_ms": self._started_at_ms,
            }
        )

    # -- AttemptListener: counts in memory, flushed with the next heartbeat ----------------
    def attempt_started(self, attempt: Attempt) -> None:
        pass

    def attempt_finished(self, outcome: AttemptOutcome) -> None:
        self.processing_ms += outcome.duration_ms
        if outcome.ok:
            self.completed += 1
        elif outcome.retrying:
            self.retried += 1
        else:
            self.failed += 1

    def job_stalled(self) -> None:
        self.stalled += 1

    def start(self) -> None:
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
            await asyncio.sleep(keys.HEARTBEAT_INTERVAL_S)
            await supervisor.attempt(self.flush)

    async def flush(self, *, final: bool = False) -> None:
        completed, failed, retried, stalled, ms = (
            self.completed,
            self.failed,
            self.retried,
            self.stalled,
            self.processing_ms,
        )
        self.completed = self.failed = self.retried = self.stalled = 0
        self.processing_ms = 0.0
        p, q = self.config.prefix, self.config.queue
        now_ms = int(time.time() * 1000)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                stats_key = keys.stats(p, q)
                if completed:
                    pipe.hincrby(stats_key, "completed", completed)
                if failed:
                    pipe.hincrby(stats_key, "failed", failed)
                if retried:
                    pipe.hincrby(stats_key, "retried", retried)
                if stalled:
                    pipe.hincrby(stats_key, "stalled", stalled)
                if ms:
                    pipe.hincrbyfloat(stats_key, "processing_ms", round(ms, 3))
                if completed or failed:
                    # The per-minute series behind the dashboard's chart; a job is counted in
                    # the minute of the flush, at most a second after it finished.
                    minute_key = keys.minute(p, q, now_ms // 60_000)
                    if completed:
                        pipe.hincrby(minute_key, "completed", completed)
                    if failed:
                        pipe.hincrby(minute_key, "failed", failed)
                    pipe.pexpire(minute_key, keys.MINUTE_TTL_MS)
                if final:
                    pipe.zrem(keys.workers(p, q), self.worker_id)
                    pipe.hdel(keys.worker_info(p, q), self.worker_id)
                else:
                    pipe.zadd(keys.workers(p, q), {self.worker_id: now_ms})
                    pipe.hset(keys.worker_info(p, q), self.worker_id, self._info)
                    stale = now_ms - 3_600_000
                    pipe.zremrangebyscore(keys.workers(p, q), "-inf", stale)
                await pipe.execute()
        except BaseException:
            # Not flushed: keep the counts for the next try.
            self.completed += completed
            self.failed += failed
            self.retried += retried
            self.stalled += stalled
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
