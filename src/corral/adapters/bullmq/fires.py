"""Exactly-once cron fires: a per-schedule watermark and the job enqueue in ONE transaction.

For each schedule Redis holds the newest tick accounted for (fired or skipped), in epoch ms.
A scheduler that wants to fire tick T WATCHes that key, reads it, decides (the misfire policy
runs on the value it read), and then commits the job's BullMQ add script and the new watermark
in one MULTI/EXEC. If another scheduler committed first, EXEC fails and nothing is written; if
the process dies before EXEC, nothing was written and another scheduler fires the tick.
Because the watermark is independent of the job, a completed job that has already been
removed (``remove_on_complete``) cannot be fired again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Queue
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from corral.adapters.bullmq import internals
from corral.adapters.bullmq.connection import unavailable
from corral.adapters.bullmq.keys import HEARTBEAT_TTL_MS, Keys
from corral.adapters.bullmq.mapping import to_bullmq_options
from corral.core.jobs import JobSpec
from corral.core.schedules import FirePlan

_MAX_RACES = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class FireOutcome:
    """``fired`` is the tick this call enqueued (None if it enqueued nothing); ``skipped`` the
    ticks it recorded as missed, ``first_skipped``/``last_skipped`` the oldest and newest of
    them; ``lost_race`` when another scheduler settled the tick first. Only the call whose
    EXEC succeeded reports a fire or a skip, so only one replica records each."""

    fired: datetime | None = None
    skipped: int = 0
    lost_race: bool = False
    first_skipped: datetime | None = None
    last_skipped: datetime | None = None
    #: When this call committed (fired or skipped), in epoch ms: also the fired job's creation
    #: time as BullMQ stores it (the execution log's key with its id).
    settled_ms: int | None = None


class FireGate:
    """Settles ticks of schedules on one queue. Shares the producer's client and Queue."""

    def __init__(self, client: aioredis.Redis, queue: Queue, url: str, keys: Keys):
        self.client = client
        self.queue = queue
        self.url = url
        self.keys = keys

    def _key(self, schedule_id: UUID) -> str:
        return self.keys.watermark(str(schedule_id))

    async def settle(
        self,
        schedule_id: UUID,
        decide: Callable[[datetime | None], FirePlan],
        spec_for: Callable[[datetime], JobSpec],
    ) -> FireOutcome:
        """Read the watermark, ``decide`` what to do with it, and commit that atomically."""
        key = self._key(schedule_id)
        stats = self.keys.scheduler_stats
        try:
            for _ in range(_MAX_RACES):
                async with self.client.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    ms = await pipe.get(key)
                    before = None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)
                    plan = decide(before)
                    if plan.watermark is None or (before is not None and plan.watermark <= before):
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return FireOutcome()
                    pipe.multi()  # type: ignore[no-untyped-call]
                    settled_ms = round(time.time() * 1000)
                    if plan.fire is not None:
                        spec = spec_for(plan.fire)
                        job = BullJob(
                            self.queue, spec.name, spec.data, to_bullmq_options(spec.options)
                        )
                        job.timestamp = settled_ms
                        await internals.add_in(pipe, self.queue, job)
                        pipe.hincrby(stats, "fired", 1)
                        lateness_ms = settled_ms - plan.fire.timestamp() * 1000
                        pipe.hincrbyfloat(stats, "lateness_ms_sum", round(lateness_ms, 3))
                    pipe.set(key, int(plan.watermark.timestamp() * 1000))
                    if plan.skipped:
                        pipe.hincrby(stats, "missed", plan.skipped)
                    try:
                        await pipe.execute()
                    except WatchError:
                        continue  # someone settled this schedule meanwhile: decide again
                    return FireOutcome(
                        fired=plan.fire,
                        skipped=plan.skipped,
                        first_skipped=plan.first_skipped if plan.skipped else None,
                        last_skipped=plan.last_skipped if plan.skipped else None,
                        settled_ms=settled_ms,
                    )
            return FireOutcome(lost_race=True)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None

    async def forget(self, schedule_id: UUID) -> None:
        """Drop a deleted schedule's watermark."""
        await self.client.delete(self._key(schedule_id))

    async def heartbeat(self, scheduler_id: str, *, stopping: bool = False) -> float | None:
        """Mark this scheduler alive (or gone), for health checks and /metrics, and return its
        clock skew: this process's wall clock minus Redis's ``TIME``, in seconds (None when
        stopping).

        Every replica fires a tick when its own clock reaches it, so a replica whose clock is
        ahead fires early by that much. Redis's clock is the one reference all replicas share;
        the skew is measured against it, taking the local time halfway through the round trip.
        """
        key = self.keys.schedulers
        skew_key = self.keys.scheduler_skew(scheduler_id)
        if stopping:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrem(key, scheduler_id)
                pipe.delete(skew_key)
                await pipe.execute()
            return None
        sent = time.time()
        seconds, micros = await self.client.time()
        received = time.time()
        skew = (sent + received) / 2 - (int(seconds) + int(micros) / 1_000_000)
        now_ms = int(received * 1000)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {scheduler_id: now_ms})
            pipe.zremrangebyscore(key, "-inf", now_ms - 3_600_000)
            pipe.set(skew_key, f"{skew:.4f}", px=HEARTBEAT_TTL_MS)
            await pipe.execute()
        return skew

    async def stats(self) -> dict[str, float]:
        raw = await self.client.hgetall(self.keys.scheduler_stats)  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}
