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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Queue
from redis.asyncio.client import Pipeline
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

#: One schedule to settle: its id, the decision on its watermark, the job of a fired tick.
Settling = tuple[UUID, Callable[[datetime | None], FirePlan], Callable[[datetime], JobSpec]]
#: A scheduler's id and, from a batch's plans (None where nothing moves), the promise to
#: publish with the batch (None: unchanged, nothing to write).
PromiseAfter = tuple[str, Callable[[Sequence[FirePlan | None]], str | None]]


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


def _moment(ms: str | None) -> datetime | None:
    """A watermark as stored (epoch ms), as a time."""
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)


def _outcome(plan: FirePlan | None, settled_ms: int) -> FireOutcome:
    """What a committed plan reports (an empty outcome for a schedule with nothing to do)."""
    if plan is None:
        return FireOutcome()
    return FireOutcome(
        fired=plan.fire,
        skipped=plan.skipped,
        first_skipped=plan.first_skipped if plan.skipped else None,
        last_skipped=plan.last_skipped if plan.skipped else None,
        settled_ms=settled_ms,
    )


@dataclass(frozen=True, slots=True)
class Beat:
    """What one :meth:`FireGate.beat` read: this clock's skew, the live schedulers, the
    promises of the schedulers it asked about (None where there is none), and the change
    marker the polling scheduler last published (None if none is)."""

    skew: float
    live: list[str]
    promises: list[str | None]
    marker: str | None = None


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
        for _ in range(_MAX_RACES):
            outcomes = await self.settle_many([(schedule_id, decide, spec_for)])
            if outcomes is not None:
                return outcomes[0]
            # someone settled this schedule meanwhile: decide again
        return FireOutcome(lost_race=True)

    async def settle_many(
        self, requests: Sequence[Settling], *, promise: PromiseAfter | None = None
    ) -> list[FireOutcome] | None:
        """Settle several schedules in ONE transaction: WATCH all their watermarks, read them
        with one MGET, ``decide`` each, and commit every add and watermark in one MULTI/EXEC.

        ``promise``: the scheduler's promise as of after this batch, written in the same
        MULTI/EXEC when there is something to commit (it saves the scheduler a round trip
        after each batch). It only rides along: a failed EXEC writes it no more than the rest,
        and the watermarks alone decide what fires.

        Three round trips for a whole batch of due ticks instead of three per tick. None when
        the EXEC failed because another scheduler moved one of the watermarks meanwhile: then
        nothing of the batch was written, and the caller settles its schedules one by one
        (``settle`` decides again from the new watermarks), so the watermark stays the only
        arbiter whatever the batching.
        """
        keys = [self._key(schedule_id) for schedule_id, _, _ in requests]
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                await pipe.watch(*keys)
                values = await pipe.mget(keys)
                plans: list[FirePlan | None] = []
                for (_, decide, _), ms in zip(requests, values, strict=True):
                    before = _moment(ms)
                    plan = decide(before)
                    plans.append(plan if plan.moves(before) else None)
                if not any(plans):
                    await pipe.unwatch()  # type: ignore[no-untyped-call]
                    return [FireOutcome() for _ in requests]
                text = None if promise is None else promise[1](plans)
                pipe.multi()  # type: ignore[no-untyped-call]
                settled_ms = round(time.time() * 1000)
                await self._queue_commits(pipe, requests, keys, plans, settled_ms)
                if promise is not None and text is not None:
                    key = self.keys.scheduler_promise(promise[0])
                    pipe.set(key, text, px=HEARTBEAT_TTL_MS)
                try:
                    await pipe.execute()
                except WatchError:
                    return None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None
        return [_outcome(plan, settled_ms) for plan in plans]

    async def _queue_commits(
        self,
        pipe: Pipeline,
        requests: Sequence[Settling],
        keys: Sequence[str],
        plans: Sequence[FirePlan | None],
        settled_ms: int,
    ) -> None:
        """Queue each plan's job add, the new watermarks (one MSET) and the batch's counters
        (one HINCRBY per counter) on ``pipe``'s MULTI."""
        fired = skipped = 0
        lateness_ms = 0.0
        watermarks: dict[str, int] = {}
        for (_, _, spec_for), key, plan in zip(requests, keys, plans, strict=True):
            if plan is None or plan.watermark is None:
                continue
            if plan.fire is not None:
                spec = spec_for(plan.fire)
                job = BullJob(self.queue, spec.name, spec.data, to_bullmq_options(spec.options))
                job.timestamp = settled_ms
                await internals.add_in(pipe, self.queue, job)
                fired += 1
                lateness_ms += settled_ms - plan.fire.timestamp() * 1000
            watermarks[key] = int(plan.watermark.timestamp() * 1000)
            skipped += plan.skipped
        pipe.mset(watermarks)  # one command (and one reply to read) for the whole batch
        stats = self.keys.scheduler_stats
        if fired:
            pipe.hincrby(stats, "fired", fired)
            pipe.hincrbyfloat(stats, "lateness_ms_sum", round(lateness_ms, 3))
        if skipped:
            pipe.hincrby(stats, "missed", skipped)

    async def watermarks(self, schedule_ids: Sequence[UUID]) -> list[datetime | None]:
        """The schedules' watermarks, read with one MGET and no WATCH: a look, not a claim."""
        try:
            values = await self.client.mget([self._key(s) for s in schedule_ids])
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None
        return [_moment(ms) for ms in values]

    async def schedulers(self, *, within_ms: int) -> list[str]:
        """The ids of the schedulers whose heartbeat is at most ``within_ms`` old (by this
        process's clock, as the heartbeats' scores are)."""
        since = int(time.time() * 1000) - within_ms
        try:
            ids = await self.client.zrangebyscore(self.keys.schedulers, since, "+inf")
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None
        return [str(i) for i in ids]

    async def forget(self, schedule_id: UUID) -> None:
        """Drop a deleted schedule's watermark."""
        await self.client.delete(self._key(schedule_id))

    async def promise(self, scheduler_id: str, promise: str) -> None:
        """Publish this scheduler's promise (see ``core.ownership``)."""
        key = self.keys.scheduler_promise(scheduler_id)
        try:
            await self.client.set(key, promise, px=HEARTBEAT_TTL_MS)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None

    async def promises(self, scheduler_ids: Sequence[str]) -> list[str | None]:
        """The other schedulers' promises (None where there is none), with one MGET."""
        try:
            values = await self.client.mget([self.keys.scheduler_promise(s) for s in scheduler_ids])
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None
        return [None if v is None else str(v) for v in values]

    async def heartbeat(
        self, scheduler_id: str, *, stopping: bool = False, promise: str | None = None
    ) -> float | None:
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
                pipe.delete(skew_key, self.keys.scheduler_promise(scheduler_id))
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
            if promise is not None:  # refreshed while it does not change
                pipe.set(self.keys.scheduler_promise(scheduler_id), promise, px=HEARTBEAT_TTL_MS)
            await pipe.execute()
        return skew

    async def beat(
        self,
        scheduler_id: str,
        *,
        skew: float,
        promise: str | None,
        others: Sequence[str],
        within_ms: int,
        marker: str | None = None,
    ) -> Beat:
        """A heartbeat (as :meth:`heartbeat`, writing ``skew``, the last one measured) that
        also refreshes ``promise``, publishes the store's change ``marker`` (from the replica
        that polls the store) and reads the live schedulers, the ``others``' promises and the
        published marker: all in one round trip, whose ``TIME`` gives the next skew."""
        key, promise_key = self.keys.schedulers, self.keys.scheduler_promise(scheduler_id)
        marker_key = self.keys.schedulers_marker
        sent = time.time()
        now_ms = int(sent * 1000)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.zadd(key, {scheduler_id: now_ms})
                pipe.zremrangebyscore(key, "-inf", now_ms - 3_600_000)
                pipe.set(self.keys.scheduler_skew(scheduler_id), f"{skew:.4f}", px=HEARTBEAT_TTL_MS)
                if promise is not None:
                    pipe.set(promise_key, promise, px=HEARTBEAT_TTL_MS)
                if marker is not None:
                    pipe.set(marker_key, marker, px=HEARTBEAT_TTL_MS)
                pipe.get(marker_key)
                pipe.zrangebyscore(key, now_ms - within_ms, "+inf")
                if others:
                    pipe.mget([self.keys.scheduler_promise(s) for s in others])
                replies = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self.url, exc) from None
        received = time.time()
        seconds, micros = replies[0]
        measured = (sent + received) / 2 - (int(seconds) + int(micros) / 1_000_000)
        published, live, promises = replies[-3:] if others else (*replies[-2:], [])
        return Beat(
            skew=measured,
            live=[str(i) for i in live],
            promises=[None if v is None else str(v) for v in promises],
            marker=None if published is None else str(published),
        )

    async def stats(self) -> dict[str, float]:
        raw = await self.client.hgetall(self.keys.scheduler_stats)  # type: ignore[misc]
        return {k: float(v) for k, v in raw.items()}
