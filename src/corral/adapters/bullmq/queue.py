"""The producer / admin side of one queue, on bullmq's ``Queue``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from bullmq import Queue

from corral.adapters.bullmq.adding import Adder
from corral.adapters.bullmq.cluster import ClusterReads
from corral.adapters.bullmq.mapping import from_bullmq_priority
from corral.adapters.bullmq.memory import MemoryReserve
from corral.core.job_ids import is_scheduler_job_id
from corral.core.jobs import JobSpec, is_job_id
from corral.core.queue_jobs import JobFacts, JobInfo, JobState
from corral.errors import JobNotFound

if TYPE_CHECKING:  # the scheduler's alone: a worker or a producer does not load the cron code
    from corral.adapters.bullmq.fires import FireGate

#: BullMQ's state names, in the order counts list them.
STATES = tuple(state.value for state in JobState)

#: BullMQ's key (and ``clean`` type) for a state, where it is not the state's name.
_STATE_KEYS = {JobState.WAITING: "wait"}
_LIST_STATES = (JobState.WAITING, JobState.ACTIVE, JobState.PAUSED)
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


class BullQueue(ClusterReads):
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
        super().__init__(client, url, name=name, prefix=prefix)
        self._queue = Queue(name, {"connection": client, "prefix": prefix})
        self._adder = Adder(self._queue)
        self.memory = MemoryReserve(client, url, reserve=memory_reserve)

    async def add(self, spec: JobSpec) -> str:
        async with self._guard():
            await self.memory.check((spec,))
            return await self._adder.add(spec)

    async def add_bulk(self, specs: Sequence[JobSpec]) -> list[str]:
        """One MULTI/EXEC transaction: the whole batch is added, or (on a broken connection)
        none of it is."""
        if not specs:
            return []
        async with self._guard():
            await self.memory.check(specs)
            return await self._adder.add_bulk(specs)

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

    async def clean(self, grace_ms: int, limit: int, state: JobState) -> int:
        async with self._guard():
            removed = await self._queue.clean(grace_ms, limit, _STATE_KEYS.get(state, state.value))
        return len(removed)

    async def get_job(self, job_id: str) -> JobInfo:
        _known(job_id)
        async with self._guard():
            # State first: the finishing script updates the hash and the state atomically, so a
            # hash read after a "failed" state is guaranteed to carry the failure.
            state = await self._queue.getJobState(job_id)
            job = await self._queue.getJob(job_id)
            # "unknown" with a job: it was added between the two reads, after the state read.
            if job is None or state not in STATES:
                raise JobNotFound(job_id)
        return _job_info(job, JobState(state))

    async def retry_job(self, job_id: str) -> None:
        _known(job_id)
        async with self._guard():
            await self._not_a_scheduler(job_id)
            job = await self._queue.getJob(job_id)
            if job is None:
                raise JobNotFound(job_id)
            await job.retry("failed")

    async def remove_job(self, job_id: str) -> None:
        _known(job_id)
        async with self._guard():
            await self._not_a_scheduler(job_id)
            removed = await self._queue.remove(job_id)
        if not removed:
            raise JobNotFound(job_id)

    async def _not_a_scheduler(self, job_id: str) -> None:
        """Refuse a scheduler job's id (``repeat:<scheduler>:<ms>``) that is no job's: it may
        name the hash of a scheduler whose own id ends in ``:<ms>``, which BullMQ would remove
        (or read as a job). A job hash has a state; a scheduler's hash never does."""
        if is_scheduler_job_id(job_id) and await self._queue.getJobState(job_id) == "unknown":
            raise JobNotFound(job_id)

    async def job_logs(self, job_id: str, *, limit: int) -> tuple[list[str], int]:
        """The newest ``limit`` lines a job's handler logged (oldest first) and how many it
        logged in all (BullMQ keeps them in a list beside the job hash)."""
        _known(job_id)
        key = f"{self.keys.base}:{job_id}:logs"
        async with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.lrange(key, -limit, -1)
                pipe.llen(key)
                lines, total = await pipe.execute()
        return [str(line) for line in lines], int(total)

    def fire_gate(self) -> FireGate:
        from corral.adapters.bullmq.fires import FireGate

        return FireGate(self.client, self._queue, self.url, self.keys)

    async def list_jobs(
        self, state: JobState, *, offset: int, limit: int, ascending: bool
    ) -> list[JobInfo]:
        """One page of the jobs in ``state``, ids and hashes read in one script, so a job
        removed meanwhile is skipped rather than half-read."""
        state = _checked(state)
        async with self._guard():
            jobs = await self._queue.getJobs([state.value], offset, offset + limit - 1, ascending)
        return [_job_info(job, state) for job in jobs]

    async def job_ids(self, state: str, *, offset: int, limit: int) -> list[str]:
        """A page of the ids in ``state`` (a :class:`JobState`), newest first, without reading
        the jobs."""
        state = _checked(state)
        key = f"{self.keys.base}:{_STATE_KEYS.get(state, state.value)}"
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
        base = self.keys.base
        async with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                for job_id in asked:
                    pipe.hmget(f"{base}:{job_id}", list(_FACT_FIELDS))
                    pipe.zscore(f"{base}:completed", job_id)
                    pipe.zscore(f"{base}:failed", job_id)
                replies = await pipe.execute()
        for n, job_id in enumerate(asked):
            values, completed, failed = replies[3 * n : 3 * n + 3]
            state = JobState.FAILED if failed else None
            if completed is not None:
                state = JobState.COMPLETED
            facts[job_id] = _facts(job_id, dict(zip(_FACT_FIELDS, values, strict=True)), state)
        return facts

    async def claim(self, what: str, owner: str, ttl_ms: int) -> bool:
        """``SET NX PX`` on a key of this queue: True for the one caller that takes ``what``
        for ``ttl_ms`` (the key is never released early: it stands for a period's work)."""
        async with self._guard():
            return bool(await self.client.set(self.keys.claim(what), owner, nx=True, px=ttl_ms))

    async def close(self) -> None:
        await self._queue.close()


def _known(job_id: str) -> None:
    """Refuse, before any Redis call, an id no job can have: BullMQ builds key names from ids,
    so ``meta`` or ``x:events`` would read (or remove) one of the queue's own keys."""
    if not is_job_id(job_id):
        raise JobNotFound(job_id if len(job_id) <= 130 else job_id[:128] + "...")


def _checked(state: str) -> JobState:
    if state not in STATES:
        raise ValueError(f"state: must be one of {', '.join(STATES)}")
    return JobState(state)


def _int(value: str | None) -> int | None:
    try:
        return None if value is None or value == "" else int(float(value))
    except ValueError:
        return None


def _facts(job_id: str, raw: dict[str, str | None], state: JobState | None) -> JobFacts | None:
    created = _int(raw["timestamp"])
    if created is None:  # no job hash (or not one BullMQ wrote): no job
        return None
    result: Any = None
    if state is JobState.COMPLETED and raw["returnvalue"] is not None:
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


def _job_info(job: Any, state: JobState) -> JobInfo:
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
