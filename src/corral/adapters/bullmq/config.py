"""One queue's worker settings, and the bullmq ``Worker`` options they make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    queue: str
    prefix: str
    concurrency: int = 10
    limiter_max: int | None = None
    limiter_duration_ms: int | None = None
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 1
    name: str | None = None

    def worker_options(self, client: aioredis.Redis) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "connection": client,
            "prefix": self.prefix,
            "concurrency": self.concurrency,
            "autorun": False,
            "lockDuration": self.lock_duration_ms,
            "stalledInterval": self.stalled_interval_ms,
            "maxStalledCount": self.max_stalled_count,
            # bullmq retries a failed fetch after this long; its 15 s default makes a worker
            # resume long after Redis is back.
            "runRetryDelay": 1000,
            "drainDelay": 5,
        }
        if self.name:
            opts["name"] = self.name
        if self.limiter_max is not None and self.limiter_duration_ms is not None:
            opts["limiter"] = {"max": self.limiter_max, "duration": self.limiter_duration_ms}
            opts["drainDelay"] = 1  # the limiter stalls after one window with a long drain delay
        return opts
