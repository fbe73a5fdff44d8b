"""The producer / admin side of one queue, on bullmq's ``Queue``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from bullmq import Queue
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from corral.adapters.bullmq import keys
from corral.adapters.bullmq.connection import unavailable
from corral.adapters.bullmq.fires import FireGate
from corral.adapters.bullmq.mapping import from_bullmq_priority, to_bullmq_options
from corral.adapters.bullmq.memory import MemoryReserve
from corral.core.jobs import JobSpec, is_job_id
from corral.errors import CorralError, JobNotFound

STATES = (
    "waiting",
    "active",
    "completed",
    "failed",
    "delayed",
    "paused",
    "prioritized",
    "waiting-children",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobInfo:
    id: str
    name: str
    data: Any
    state: str
    priority: int | None
    progress: Any
    attempts_made: int
    max_attempts: int
    failed_reason: str | None
    stacktrace: list[str]
    result: Any
    created_at_ms: int
    processed_at_ms: int | None
    finished_at_ms: int | None
    options: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFacts:
    """The few fields of a job the execution-log reconciliation reads (``services.reconcile``).
    ``state`` is ``completed`` or ``failed`` for a finished job, else None."""

    id: str
    name: str
    created_ms: int
    state: str | None
    attempts_made: int
    processed_ms: int | None
    finished_ms: int | None
    failed_reason: str | None
    result: Any


_STATE_KEYS = {"waiting": "wait"}
_LIST_STATES = ("waiting", "active", "paused")
_FACT_FIELDS = (
    "timestamp",
    "name",
    "attemptsMade",
    "atm",
    "processedOn",
    "finishedOn",
    "failedReason",
    "returnvalue",
)


class BullQueue:
    """Adds jobs and answers questions about one queue. Owns its Redis client."""

    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        *,
        name: str,
        prefix: str,
        memory_reserve: float = 0.05,
    ) -> None:
        self.client = client
        self.url = url
        self.name = name
        self.prefix = prefix
        self._queue = Queue(name, {"connection": client, "prefix": prefix})
        self.memory = MemoryReserve(client, url, reserve=memory_reserve)

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

    async def add(self, spec: JobSpec) -> str:
        async with self._guard():
            await self.memory.check((spec,))
            job = await self._queue.add(spec.name, spec.data, to_bullmq_options(spec.options))
        return str(job.id)

    async def add_bulk(self, specs: Sequence[JobSpec]) -> list[str]:
        """One MULTI/EXEC transaction: the whole batch is added, or (on a broken connection)
        none of it is."""
        if not specs:
            return []
        async with self._guard():
            await self.memory.check(specs)
            jobs = await self._queue.addBulk(
                [
                    {"name": s.name, "data": s.data, "opts": to_bullmq_options(s.options)}
                    for s in specs
                ]
            )
        return [str(job.id) for job in jobs]

    async def counts(self) -> dict[str, int]:
        async with self._guard():
            raw = await self._queue.getJobCounts(*STATES)
        return {state: int(raw.get(state, 0)) for state in STATES}

    async def is_paused(self) -> bool:
        async with self._guard():
            return bool(await self._queue.isPaused())

    async def pause(self) -> None:
        async with self._guard():
            await self._queue.pause()

    async def resume(self) -> None:
        async with self._guard():
            await self._queue.resume()

    async def clean(self, grace_ms: int, limit: int, state: str) -> int:
        async with self._guard():
            removed = await self._queue.clean(grace_ms, limit, state)
        return len(removed)

    async def get_job(self, job_id: str) -> JobInfo:
        _known(job_id)
        async with self._guard():
            # State first: the finishing script updates the hash and the state atomically, so a
            # hash read after a "failed" state is guaranteed to carry the failure.
            state = await self._queue.getJobState(job_id)
            job = await self._queue.getJob(job_id)
            if job is None:
                raise JobNotFound(job_id)
        return _job_info(job, str(state))

    async def retry_job(self, job_id: str) -> None:
        _known(job_id)
        async with self._guard():
            job = await self._queue.getJob(job_id)
            if job is None:
                raise JobNotFound(job_id)
            await job.retry("failed")

    async def remove_job(self, job_id: str) -> None:
        _known(job_id)
        async with self._guard():
            removed = await self._queue.remove(job_id)
        if not removed:
            raise JobNotFound(job_id)

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

    async def job_logs(self, job_id: str, *, limit: int) -> tuple[list[str], int]:
        """The newest ``limit`` lines a job's handler logged (oldest first) and how many it
        logged in all (BullMQ keeps them in a list beside the job hash)."""
        _known(job_id)
        key = f"{self.prefix}:{self.name}:{job_id}:logs"
        async with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.lrange(key, -limit, -1)
                pipe.llen(key)
                lines, total = await pipe.execute()
        return [str(line) for line in lines], int(total)

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

    def fire_gate(self) -> FireGate:
        return FireGate(self.client, self._queue, self.url, prefix=self.prefix, name=self.name)

    async def known_handlers(self) -> set[str]:
        """Handler names the live workers of this queue have registered."""
        names: set[str] = set()
        for info in await self.live_workers():
            names.update(info.get("handlers") or ())
        return names

    async def list_jobs(
        self, state: str, *, offset: int, limit: int, ascending: bool
    ) -> list[JobInfo]:
        """One page of the jobs in ``state`` (one of :data:`STATES`), ids and hashes read in one
        script, so a job removed meanwhile is skipped rather than half-read."""
        if state not in STATES:
            raise ValueError(f"state: must be one of {', '.join(STATES)}")
        async with self._guard():
            jobs = await self._queue.getJobs([state], offset, offset + limit - 1, ascending)
        return [_job_info(job, state) for job in jobs]

    async def job_ids(self, state: str, *, offset: int, limit: int) -> list[str]:
        """A page of the ids in ``state`` (one of :data:`STATES`), newest first, without
        reading the jobs."""
        if state not in STATES:
            raise ValueError(f"state: must be one of {', '.join(STATES)}")
        key = f"{keys.base(self.prefix, self.name)}:{_STATE_KEYS.get(state, state)}"
        last = offset + limit - 1
        async with self._guard():
            # BullMQ pushes new ids at the head of its lists and scores its sets by time.
            if state in _LIST_STATES:
                ids = await self.client.lrange(key, offset, last)  # type: ignore[misc]
            else:
                ids = await self.client.zrevrange(key, offset, last)
        return [str(job_id) for job_id in ids]

    async def job_facts(self, ids: Sequence[str]) -> dict[str, JobFacts | None]:
        """Each id's job (a few fields, not its data), or None when Redis has none by that id
        (an id no job can have is None without asking Redis). One round trip."""
        asked = [job_id for job_id in dict.fromkeys(ids) if is_job_id(job_id)]
        facts: dict[str, JobFacts | None] = dict.fromkeys(ids)
        if not asked:
            return facts
        base = keys.base(self.prefix, self.name)
        async with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                for job_id in asked:
                    pipe.hmget(f"{base}:{job_id}", list(_FACT_FIELDS))
                    pipe.zscore(f"{base}:completed", job_id)
                    pipe.zscore(f"{base}:failed", job_id)
                replies = await pipe.execute()
        for n, job_id in enumerate(asked):
            values, completed, failed = replies[3 * n : 3 * n + 3]
            state = "completed" if completed is not None else "failed" if failed else None
            facts[job_id] = _facts(job_id, dict(zip(_FACT_FIELDS, values, strict=True)), state)
        return facts

    async def claim(self, what: str, owner: str, ttl_ms: int) -> bool:
        """``SET NX PX`` on a key of this queue: True for the one caller that takes ``what``
        for ``ttl_ms`` (the key is never released early: it stands for a period's work)."""
        key = keys.claim(self.prefix, self.name, what)
        async with self._guard():
            return bool(await self.client.set(key, owner, nx=True, px=ttl_ms))

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

    async def close(self) -> None:
        await self._queue.close()


def _known(job_id: str) -> None:
    """Refuse, before any Redis call, an id no job can have: BullMQ builds key names from ids,
    so ``meta`` or ``x:events`` would read (or remove) one of the queue's own keys."""
    if not is_job_id(job_id):
        raise JobNotFound(job_id if len(job_id) <= 130 else job_id[:128] + "...")


def _int(value: str | None) -> int | None:
    try:
        return None if value is None or value == "" else int(float(value))
    except ValueError:
        return None


def _facts(job_id: str, raw: dict[str, str | None], state: str | None) -> JobFacts | None:
    created = _int(raw["timestamp"])
    if created is None:  # no job hash (or not one BullMQ wrote): no job
        return None
    result: Any = None
    if state == "completed" and raw["returnvalue"] is not None:
        try:
            result = json.loads(raw["returnvalue"])
        except ValueError:
            result = raw["returnvalue"]
    return JobFacts(
        id=job_id,
        name=raw["name"] or "",
        created_ms=created,
        state=state,
        attempts_made=_int(raw["attemptsMade"]) or _int(raw["atm"]) or 0,
        processed_ms=_int(raw["processedOn"]),
        finished_ms=_int(raw["finishedOn"]) if state is not None else None,
        failed_reason=raw["failedReason"] or None,
        result=result,
    )


def _job_info(job: Any, state: str) -> JobInfo:
    return JobInfo(
        id=str(job.id),
        name=job.name,
        data=job.data,
        state=state,
        priority=from_bullmq_priority(int(job.priority or 0)),
        progress=job.progress,
        attempts_made=int(job.attemptsMade),
        max_attempts=int(job.opts.get("attempts") or 1),
        failed_reason=getattr(job, "failedReason", None) or None,
        stacktrace=[str(t) for t in getattr(job, "stacktrace", None) or ()],
        result=getattr(job, "returnvalue", None),
        created_at_ms=int(job.timestamp),
        processed_at_ms=getattr(job, "processedOn", None),
        finished_at_ms=getattr(job, "finishedOn", None),
        options=dict(job.opts),
    )
