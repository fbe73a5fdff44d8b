"""Corral and Node's BullMQ on the same queue, end to end, against the real Redis.

Node's side is BullMQ's own ``Queue`` and ``Worker`` (``node/producer.mjs``,
``node/consumer.mjs``, pinned to the release whose Lua scripts are the Python bullmq's); Corral's
is ``JobQueueManager``, its in-process worker and a ``corral worker`` process. Each side's
handlers write what they saw to a ledger (a Redis list) the tests read, so the tests check what
ran, not what either side reports. Priorities: BullMQ's 1 is the most urgent, Corral's 20
(``bullmq = 21 - corral``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bullmq
import pytest
import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Queue

from corral import JobExecutionStatus, JobQueueManager
from corral.core.executions import ExecutionRecord
from corral.core.queries import ExecutionQuery
from corral.core.queue_jobs import JobInfo, JobState
from corral.errors import JobNotFound
from corral.settings import load_settings
from tests.interop.nodejs import NodeBullmq
from tests.support.ledger import read_ledger
from tests.support.processes import corral_env, worker_process
from tests.support.waiting import eventually

HANDLERS = "tests.interop.handlers"
PREFIX = "corraltest"  # the conftest's queue_name fixture deletes these keys afterwards


async def _state(qm: JobQueueManager, job_id: str, *states: str) -> JobInfo:
    return await eventually(
        lambda: qm.get_job(job_id), until=lambda j: j.state in states, timeout_s=15
    )


def _settled(total: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        counts = status["counts"]
        return counts["completed"] + counts["failed"] == total

    return check


def _attempts(rows: list[dict[str, Any]], *tags: str) -> dict[str, list[int]]:
    """Each tag's attempts (``attemptsMade`` as each attempt began), in the order they ran."""
    return {tag: [r["attemptsMade"] for r in rows if r["data"]["tag"] == tag] for tag in tags}


def _gaps_at_least(rows: list[dict[str, Any]], tag: str, ms: int) -> bool:
    """The attempts of ``tag`` began at least ``ms`` apart (a lower bound only: the tests
    assert no upper timing)."""
    times = [r["t"] for r in rows if r["data"]["tag"] == tag]
    return all(b - a >= ms for a, b in itertools.pairwise(times))


async def _rows(qm: JobQueueManager) -> list[ExecutionRecord]:
    rows, _total = await qm._rt.execution_log().search(ExecutionQuery(limit=500))
    return rows


async def test_node_and_python_bullmq_run_the_same_scripts(node: NodeBullmq) -> None:
    """Interop rests on one thing: both libraries run the same Lua scripts on the same keys.
    The Node pin (``node/package.json``) must be the release whose scripts are the Python
    bullmq's of ``uv.lock``."""
    node_scripts = await node.lua_scripts()
    commands = Path(bullmq.__file__).parent / "commands"
    python_scripts = {f.stem: f.read_text() for f in commands.glob("*.lua")}
    assert sorted(node_scripts) == sorted(python_scripts)
    differ = [n for n in sorted(python_scripts) if node_scripts[n] != python_scripts[n]]
    assert differ == [], (
        f"npm bullmq and Python bullmq {bullmq.__version__} differ in {differ}: pin the npm "
        "release with the same scripts (tests/interop/node/README.md)"
    )


# -- Node producer -> Corral worker -------------------------------------------------------------


async def test_node_jobs_run_on_corral_in_bullmq_priority_order(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    ledger = f"ledger:{queue_name}"
    data = {"ledger": ledger, "text": "é✓ 日本", "nested": {"list": [1, 2.5, None, True]}}
    jobs = [
        {"name": "interop", "data": {**data, "tag": "bullmq-20"}, "opts": {"priority": 20}},
        {"name": "sendReport", "data": {**data, "tag": "bullmq-1"}, "opts": {"priority": 1}},
        {"name": "interop", "data": {**data, "tag": "bullmq-11"}, "opts": {"priority": 11}},
        {"name": "interop", "data": {**data, "tag": "no-priority"}, "opts": {}},
        {"name": "interop", "data": {**data, "tag": "bullmq-1b"}, "opts": {"priority": 1}},
    ]
    ids = await node.produce(queue_name, jobs, prefix=PREFIX)
    waiting = await qm.get_job(ids[0])
    assert (waiting.state, waiting.name, waiting.priority) == ("prioritized", "interop", 1)
    assert (await qm.get_job(ids[3])).priority is None  # BullMQ's 0: no Corral priority

    await qm.start_worker([HANDLERS], concurrency=1)
    status = await eventually(qm.get_queue_status, until=_settled(len(jobs)))
    assert status["counts"]["completed"] == len(jobs)

    rows = read_ledger(redis_url, ledger)
    # BullMQ runs unprioritized jobs first, then 1 (most urgent) .. 20, ties in order added
    assert [r["data"]["tag"] for r in rows] == [
        "no-priority",
        "bullmq-1",
        "bullmq-1b",
        "bullmq-11",
        "bullmq-20",
    ]
    by_id = {r["id"]: r for r in rows}
    for job_id, job in zip(ids, jobs, strict=True):
        seen = by_id[job_id]
        assert (seen["worker"], seen["name"], seen["data"]) == ("corral", job["name"], job["data"])
        assert seen["attemptsMade"] == 0
        info = await qm.get_job(job_id)
        assert info.state == "completed"
        assert info.result == {"seen_by": "corral", "name": job["name"], "data": job["data"]}
        bullmq_priority = job["opts"].get("priority", 0)
        assert info.priority == (21 - bullmq_priority if bullmq_priority else None)

    logged = await eventually(
        lambda: _rows(qm),
        until=lambda rs: sum(r.status == JobExecutionStatus.COMPLETED for r in rs) == len(jobs),
    )
    assert sorted(r.execution_id for r in logged) == sorted(ids)
    assert {r.handler_name for r in logged} == {"interop", "sendReport"}


async def test_node_delays_and_retries_are_honoured_by_corral(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    ledger = f"ledger:{queue_name}"
    jobs = [
        {"name": "interop", "data": {"ledger": ledger, "tag": "delayed"}, "opts": {"delay": 1500}},
        {
            "name": "interop",
            "data": {"ledger": ledger, "tag": "flaky", "fail_attempts": 2},
            "opts": {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}},
        },
        {
            "name": "interop",
            "data": {"ledger": ledger, "tag": "doomed", "fail_attempts": 9},
            "opts": {"attempts": 2, "backoff": {"type": "exponential", "delay": 50}},
        },
        {
            "name": "interop",
            "data": {"ledger": ledger, "tag": "hopeless", "unrecoverable": True},
            "opts": {"attempts": 5},
        },
        {
            "name": "interop",
            "data": {"ledger": ledger, "tag": "one-attempt", "fail_attempts": 9},
            "opts": {},  # BullMQ's default: one attempt (Node writes "attempts": 0)
        },
        {  # Corral's own option, set by a Node producer
            "name": "interop",
            "data": {"ledger": ledger, "tag": "slow", "sleep_ms": 5000},
            "opts": {"timeout": 200, "attempts": 1},
        },
    ]
    ids = await node.produce(queue_name, jobs, prefix=PREFIX)
    delayed, flaky, doomed, hopeless, one_attempt, slow = ids
    assert (await qm.get_job(delayed)).state == "delayed"

    await qm.start_worker([HANDLERS], concurrency=4)
    await eventually(qm.get_queue_status, until=_settled(len(jobs)), timeout_s=15)

    rows = read_ledger(redis_url, ledger)
    tags = ("delayed", "flaky", "doomed", "hopeless", "one-attempt", "slow")
    assert _attempts(rows, *tags) == {
        "delayed": [0],
        "flaky": [0, 1, 2],
        "doomed": [0, 1],
        "hopeless": [0],
        "one-attempt": [0],
        "slow": [0],
    }
    info = await qm.get_job(delayed)
    assert info.state == "completed"
    started = next(r["t"] for r in rows if r["data"]["tag"] == "delayed")
    assert started >= info.created_at_ms + 1500  # lower bound only: no upper timing asserted
    assert _gaps_at_least(rows, "flaky", 100)

    done = await qm.get_job(flaky)
    assert (done.state, done.attempts_made, done.max_attempts) == ("completed", 3, 3)
    failed = await qm.get_job(doomed)
    assert (failed.state, failed.attempts_made) == ("failed", 2)
    assert "corral boom on attempt 2" in (failed.failed_reason or "")
    gave_up = await qm.get_job(hopeless)
    assert (gave_up.state, gave_up.attempts_made) == ("failed", 1)
    assert f"corral gives up on {hopeless}" in (gave_up.failed_reason or "")
    once = await qm.get_job(one_attempt)
    assert (once.state, once.attempts_made, once.max_attempts) == ("failed", 1, 1)
    timed_out = await qm.get_job(slow)
    assert (timed_out.state, timed_out.attempts_made) == ("failed", 1)
    assert "timed out after 200 ms" in (timed_out.failed_reason or "")

    def logged(rs: list[ExecutionRecord]) -> bool:
        return len(rs) == len(jobs) and all(
            r.status in (JobExecutionStatus.COMPLETED, JobExecutionStatus.FAILED) for r in rs
        )

    by_id = {r.execution_id: r for r in await eventually(lambda: _rows(qm), until=logged)}
    assert (by_id[flaky].status, by_id[flaky].retry_count) == (JobExecutionStatus.COMPLETED, 2)
    assert (by_id[doomed].status, by_id[doomed].retry_count) == (JobExecutionStatus.FAILED, 1)
    assert "corral boom on attempt 2" in (by_id[doomed].error_message or "")


async def test_jobs_of_a_node_job_scheduler_are_readable_through_corral(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    """BullMQ's job schedulers (Node's ``upsertJobScheduler``) give their jobs ids of the form
    ``repeat:<scheduler id>:<ms>``: Corral runs them, and its API finds them by that id."""
    ledger = f"ledger:{queue_name}"
    scheduler = {"id": "nightly-report", "repeat": {"every": 3_600_000}}
    template = {"name": "sendReport", "data": {"ledger": ledger}, "opts": {"attempts": 2}}
    [job_id] = await node.produce(queue_name, [{"scheduler": scheduler, **template}], prefix=PREFIX)
    assert job_id.startswith("repeat:nightly-report:")

    await qm.start_worker([HANDLERS], concurrency=1)
    info = await _state(qm, job_id, "completed")
    assert (info.name, info.data, info.max_attempts) == ("sendReport", template["data"], 2)
    assert info.result == {"seen_by": "corral", "name": "sendReport", "data": template["data"]}
    assert await qm.get_job_logs(job_id) == ([], 0)
    assert [(r["id"], r["worker"]) for r in read_ledger(redis_url, ledger)] == [(job_id, "corral")]
    # The execution log's reconciliation reads jobs by these facts: the job is there, finished.
    facts = (await (await qm.runtime.queue()).job_facts([job_id]))[job_id]
    assert facts is not None
    assert facts.state == JobState.COMPLETED
    rows = await eventually(
        lambda: _rows(qm), until=lambda rs: [r.status for r in rs] == ["completed"]
    )
    assert rows[0].execution_id == job_id
    await qm.remove_job(job_id)
    with pytest.raises(JobNotFound):
        await qm.get_job(job_id)


async def test_a_scheduler_of_node_is_never_taken_for_a_job(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    """A scheduler whose own id ends in ``:<digits>`` keeps its hash where a scheduler job's
    id would point (``repeat:weekly:5``): Corral's API answers "not found" for that id and
    leaves the hash alone."""
    scheduler = {"id": "weekly:5", "repeat": {"every": 3_600_000}}
    [first] = await node.produce(
        queue_name, [{"scheduler": scheduler, "name": "interop", "data": {}}], prefix=PREFIX
    )
    assert first.startswith("repeat:weekly:5:")
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    key = f"{PREFIX}:{queue_name}:repeat:weekly:5"
    try:
        before = await client.hgetall(key)  # type: ignore[misc]
        assert before
        for call in (qm.get_job, qm.retry_job, qm.remove_job):
            with pytest.raises(JobNotFound):
                await call("repeat:weekly:5")
        assert await client.hgetall(key) == before  # type: ignore[misc]
    finally:
        await client.aclose()
    assert (await qm.get_job(first)).state == "waiting"


# -- Corral producer -> Node worker -------------------------------------------------------------


async def test_corral_jobs_run_on_node_in_corral_priority_order(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    ledger = f"ledger:{queue_name}"
    base = {"ledger": ledger, "text": "é✓ 日本", "nested": {"list": [1, 2.5, None, True]}}
    ids = await qm.add_bulk_jobs(
        [
            {"name": "interop", "data": {**base, "tag": "low"}, "options": {"priority": "LOW"}},
            {"name": "interop", "data": {**base, "tag": "default"}},
            {
                "name": "sendReport",
                "data": {**base, "tag": "critical"},
                "options": {"priority": 20},
            },
            {"name": "interop", "data": {**base, "tag": "p7"}, "options": {"priority": 7}},
            {"name": "interop", "data": {**base, "tag": "critical-2"}, "options": {"priority": 20}},
        ]
    )
    single = await qm.add_job("interop", {**base, "tag": "high"}, priority="HIGH")

    async with node.consumer(queue_name, ledger, prefix=PREFIX, count=6) as consumer:
        await consumer.finished()

    rows = read_ledger(redis_url, ledger)
    assert [r["data"]["tag"] for r in rows] == [
        "critical",
        "critical-2",
        "high",
        "p7",
        "default",
        "low",
    ]
    assert {r["worker"] for r in rows} == {"node"}
    corral_priority = {
        "critical": 20,
        "critical-2": 20,
        "high": 10,
        "p7": 7,
        "default": 5,
        "low": 1,
    }
    for row in rows:
        assert row["priority"] == 21 - corral_priority[row["data"]["tag"]]  # Node sees BullMQ's
        assert row["attemptsMade"] == 0
        assert row["data"]["text"] == base["text"]
        assert row["data"]["nested"] == base["nested"]

    # What Node leaves is what Corral reads back
    status = await qm.get_queue_status()
    assert status["counts"]["completed"] == 6
    for job_id in [*ids, single]:
        info = await qm.get_job(job_id)
        assert info.state == "completed"
        assert info.result == {"seen_by": "node", "name": info.name, "data": info.data}
        assert info.attempts_made == 1
        assert info.finished_at_ms is not None
    listed, total = await qm.list_jobs(JobState.COMPLETED)
    assert sorted(j.id for j in listed) == sorted([*ids, single])
    assert total == 6
    # Throughput and success figures are what Corral's workers count (docs/howto-deployment.md)
    assert (await qm.get_metrics()).total_jobs == 0


async def test_corral_retries_delays_and_failures_behave_on_node(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    ledger = f"ledger:{queue_name}"
    delayed = await qm.add_job("interop", {"ledger": ledger, "tag": "delayed"}, delay=1500)
    flaky = await qm.add_job(
        "interop",
        {"ledger": ledger, "tag": "flaky", "fail_attempts": 2},
        attempts=3,
        backoff={"type": "fixed", "delay": 100},
    )
    doomed = await qm.add_job(
        "interop",
        {"ledger": ledger, "tag": "doomed", "fail_attempts": 9},
        attempts=2,
        backoff={"type": "exponential", "delay": 50},
    )
    hopeless = await qm.add_job(
        "interop", {"ledger": ledger, "tag": "hopeless", "unrecoverable": True}, attempts=5
    )
    assert (await qm.get_job(delayed)).state == "delayed"

    async with node.consumer(queue_name, ledger, prefix=PREFIX, count=4, concurrency=4) as c:
        await c.finished()

    rows = read_ledger(redis_url, ledger)
    assert _attempts(rows, "delayed", "flaky", "doomed", "hopeless") == {
        "delayed": [0],
        "flaky": [0, 1, 2],
        "doomed": [0, 1],
        "hopeless": [0],
    }
    assert _gaps_at_least(rows, "flaky", 100)

    info = await qm.get_job(delayed)
    started = next(r["t"] for r in rows if r["data"]["tag"] == "delayed")
    assert info.state == "completed"
    assert started >= info.created_at_ms + 1500
    done = await qm.get_job(flaky)
    assert (done.state, done.attempts_made, done.max_attempts) == ("completed", 3, 3)
    assert "node boom on attempt 2" in (done.failed_reason or "")  # the last failed attempt's
    failed = await qm.get_job(doomed)
    assert (failed.state, failed.attempts_made, failed.max_attempts) == ("failed", 2, 2)
    assert failed.failed_reason == "node boom on attempt 2"
    assert len(failed.stacktrace) == 2
    gave_up = await qm.get_job(hopeless)
    assert (gave_up.state, gave_up.attempts_made) == ("failed", 1)
    assert gave_up.failed_reason == f"node gives up on {hopeless}"
    status = await qm.get_queue_status()
    assert (status["counts"]["completed"], status["counts"]["failed"]) == (2, 2)
    listed, _ = await qm.list_jobs(JobState.FAILED)
    assert sorted(j.id for j in listed) == sorted([doomed, hopeless])


# -- across languages ---------------------------------------------------------------------------


async def test_a_retry_moves_across_languages(
    qm: JobQueueManager, node: NodeBullmq, queue_name: str, redis_url: str
) -> None:
    """A job failed by one side is retried by the other: the attempt count, failure reason and
    stack trace one side records are the ones the other reads and carries on. The retry waits
    a minute, so the side that failed it is surely stopped; the test then promotes it."""
    ledger = f"ledger:{queue_name}"
    retry: dict[str, Any] = {"attempts": 2, "backoff": {"type": "fixed", "delay": 60_000}}
    corral_first = await qm.add_job(
        "interop", {"ledger": ledger, "tag": "corral-first", "fail_attempts": 1}, **retry
    )
    worker = JobQueueManager(qm.settings)
    try:
        await worker.start_worker([HANDLERS], execution_log=False)
        await _state(qm, corral_first, "delayed")  # failed once, its retry waits
    finally:
        await worker.graceful_shutdown(2000)
    await _promote(redis_url, queue_name, corral_first)
    async with node.consumer(queue_name, ledger, prefix=PREFIX, count=1) as consumer:
        await consumer.finished()

    job = {"name": "interop", "data": {"ledger": ledger, "tag": "node-first", "fail_attempts": 1}}
    [node_first] = await node.produce(queue_name, [{**job, "opts": retry}], prefix=PREFIX)
    async with node.consumer(queue_name, ledger, prefix=PREFIX):
        await _state(qm, node_first, "delayed")
    await _promote(redis_url, queue_name, node_first)
    await qm.start_worker([HANDLERS], execution_log=False)
    await _state(qm, node_first, "completed")

    rows = read_ledger(redis_url, ledger)
    assert [(r["data"]["tag"], r["attemptsMade"], r["worker"]) for r in rows] == [
        ("corral-first", 0, "corral"),
        ("corral-first", 1, "node"),
        ("node-first", 0, "node"),
        ("node-first", 1, "corral"),
    ]
    for job_id, first in ((corral_first, "corral"), (node_first, "node")):
        info = await qm.get_job(job_id)
        assert (info.state, info.attempts_made) == ("completed", 2)
        assert info.failed_reason is not None
        assert f"{first} boom on attempt 1" in info.failed_reason
        assert len(info.stacktrace) == 1


async def _promote(redis_url: str, queue_name: str, job_id: str) -> None:
    """Run a delayed job now (bullmq's own ``Job.promote``)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    queue = Queue(queue_name, {"connection": client, "prefix": PREFIX})
    try:
        job = await BullJob.fromId(queue, job_id)
        await job.promote()
    finally:
        await queue.close()


# -- BullMQ's defaults --------------------------------------------------------------------------


@pytest.fixture
async def default_qm(
    redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[JobQueueManager]:
    """A manager with Corral's default prefix, on a queue of its own (its keys deleted after)."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("CORRAL_PREFIX", raising=False)
    queue = f"t{uuid.uuid4().hex[:12]}"
    manager = JobQueueManager(load_settings(queue=queue, handlers=HANDLERS))
    assert manager.settings.prefix == "bull"
    try:
        yield manager
    finally:
        await manager.graceful_shutdown(2000)
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"bull:{queue}*", count=1000)]
            keys += [k async for k in client.scan_iter(match=f"ledger:{queue}*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def test_default_prefixes_meet(
    default_qm: JobQueueManager, node: NodeBullmq, redis_url: str
) -> None:
    """Neither side names a prefix: Node's BullMQ default and Corral's are the same keys."""
    queue = default_qm.queue_name
    ledger = f"ledger:{queue}"
    from_corral = await default_qm.add_job("interop", {"ledger": ledger, "from": "corral"})
    async with node.consumer(queue, ledger, prefix=None, count=1) as consumer:
        await consumer.finished()
    [from_node] = await node.produce(
        queue, [{"name": "interop", "data": {"ledger": ledger, "from": "node"}}], prefix=None
    )
    await default_qm.start_worker(execution_log=False)
    await _state(default_qm, from_node, "completed")
    rows = read_ledger(redis_url, ledger)
    assert [(r["id"], r["worker"]) for r in rows] == [(from_corral, "node"), (from_node, "corral")]


# -- both at once -------------------------------------------------------------------------------

MIXED_JOBS = 300


async def test_node_and_corral_workers_share_a_queue_each_job_once(
    qm: JobQueueManager,
    node: NodeBullmq,
    queue_name: str,
    redis_url: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A ``corral worker`` process and a Node worker on one queue, fed by both producers: every
    job runs exactly once per attempt, none is lost, and a retry may move across languages."""
    ledger = f"ledger:{queue_name}"
    half = MIXED_JOBS // 2

    def job(n: int, origin: str) -> dict[str, Any]:
        data: dict[str, Any] = {"ledger": ledger, "n": n, "origin": origin, "sleep_ms": 5}
        if n % 10 == 0:
            data["fail_attempts"] = 1  # its retry may run on the other side
        return data

    env = corral_env(
        redis_url, queue_name, database_url, CORRAL_HANDLERS=HANDLERS, CORRAL_CONCURRENCY="8"
    )
    with worker_process(env):
        async with node.consumer(queue_name, ledger, prefix=PREFIX, concurrency=8):
            await eventually(
                qm.get_queue_status, until=lambda s: len(s["workers"]) == 1, timeout_s=30
            )
            retry = {"attempts": 2, "backoff": {"type": "fixed", "delay": 20}}
            node_ids, corral_ids = await asyncio.gather(
                node.produce(
                    queue_name,
                    [
                        {"name": "interop", "data": job(n, "node"), "opts": retry}
                        for n in range(half)
                    ],
                    prefix=PREFIX,
                    bulk=True,
                ),
                qm.add_bulk_jobs(
                    [
                        {"name": "interop", "data": job(n, "corral"), "options": retry}
                        for n in range(half)
                    ]
                ),
            )
            status = await eventually(qm.get_queue_status, until=_settled(MIXED_JOBS), timeout_s=45)
    assert status["counts"]["failed"] == 0
    assert status["counts"]["completed"] == MIXED_JOBS

    rows = read_ledger(redis_url, ledger)
    ids = [*node_ids, *corral_ids]
    assert len(set(ids)) == MIXED_JOBS
    attempts = Counter((r["id"], r["attemptsMade"]) for r in rows)
    assert [k for k, n in attempts.items() if n > 1] == []  # no attempt ran twice
    expected = {(i, 0) for i in ids} | {
        (i, 1) for i, d in zip(ids, [*range(half), *range(half)], strict=True) if d % 10 == 0
    }
    assert set(attempts) == expected  # none lost, no stray attempt
    workers = Counter(r["worker"] for r in rows)
    assert workers["node"] > 0
    assert workers["corral"] > 0
    for row in rows:
        assert row["data"]["origin"] in ("node", "corral")
    results = {json.dumps(r["data"], sort_keys=True) for r in rows}
    assert len(results) == MIXED_JOBS
