"""Q4: a worker loses a job's lock, and a CPU-bound sync handler does not.

1. A worker process is SIGSTOPped for 3 x lockDuration while it runs a job, then SIGCONTed.
   The job re-runs on the other worker; the stopped worker's late completion is rejected (the
   lock is gone) and does not overwrite the second run's result.
2. A plain (sync) handler spinning the CPU for 3 x lockDuration keeps its lock: the event loop
   still renews it while the thread spins, so there is no second start and no stalled event.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from corral import JobQueueManager
from tests.support.ledger import read_ledger
from tests.support.processes import RedisServer, corral_env, corral_process, producer_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault

LOCK_MS = 2000
REJECTED = re.compile(r"Missing lock for job|Lock mismatch for job")


@dataclass
class Cluster:
    url: str
    logs: dict[int, Path]  # each worker's log, by pid
    producer: JobQueueManager
    ledger: str


@pytest.fixture
async def cluster(tmp_path: Path, queue_name: str, database_url: str) -> AsyncIterator[Cluster]:
    """A private redis-server, two ``corral worker`` processes, and a producer."""
    server = RedisServer(tmp_path)
    server.start()
    env = corral_env(
        server.url,
        queue_name,
        database_url,
        CORRAL_EXECUTION_LOG="false",
        CORRAL_CONCURRENCY="2",
        CORRAL_LOCK_DURATION_MS=str(LOCK_MS),
        CORRAL_STALLED_INTERVAL_MS="500",
    )
    producer = producer_for(server.url, queue_name)
    try:
        with ExitStack() as stack:
            logs = {}
            for i in range(2):
                log = tmp_path / f"worker{i}.log"
                logs[stack.enter_context(corral_process("worker", env, log=log)).pid] = log
            await eventually(
                producer.get_queue_status, until=lambda s: len(s["workers"]) == 2, timeout_s=60
            )
            yield Cluster(server.url, logs, producer, f"ledger:{queue_name}")
    finally:
        await producer.graceful_shutdown(1000)
        server.kill()


async def _stalled_events(url: str, queue: str) -> list[object]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        entries = await client.xrange(f"corraltest:{queue}:events")
    finally:
        await client.aclose()
    return [fields for _, fields in entries if fields.get("event") == "stalled"]


@pytest.mark.timeout(180)
async def test_stopped_workers_late_completion_is_rejected(cluster: Cluster) -> None:
    producer = cluster.producer
    job_id = await producer.add_job(
        "jitter", {"ledger": cluster.ledger, "sleep": 2}, job_id="q4-stopped"
    )
    first = await eventually(
        lambda: asyncio.to_thread(read_ledger, cluster.url, cluster.ledger),
        until=bool,
        timeout_s=30,
    )
    stopped_pid = first[0]["pid"]
    os.kill(stopped_pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # The other worker takes the job over once the lock expires, and finishes it.
        await asyncio.sleep(3 * LOCK_MS / 1000)
        done = await eventually(
            lambda: producer.get_job(job_id),
            until=lambda j: str(j.state) == "completed",
            timeout_s=60,
        )
    finally:
        os.kill(stopped_pid, signal.SIGCONT)
    stopped_s = time.monotonic() - stopped_at

    async def late_attempt_logged() -> str:
        found = REJECTED.search(cluster.logs[stopped_pid].read_text(errors="replace"))
        return found.group(0) if found else ""

    rejection = await eventually(late_attempt_logged, until=bool, timeout_s=30)
    rows = await asyncio.to_thread(read_ledger, cluster.url, cluster.ledger)
    after = await producer.get_job(job_id)
    stalled = await _stalled_events(cluster.url, producer.queue_name)

    starts = [r for r in rows if r["event"] == "start"]
    finishes = [r for r in rows if r["event"] == "finish"]
    print(
        f"Q4a: worker {stopped_pid} stopped {stopped_s:.1f} s (lock {LOCK_MS} ms); "
        f"{len(starts)} starts (the re-run {starts[-1]['t'] - starts[0]['t']:.1f} s after the "
        f"first), {len(finishes)} finishes, {len(stalled)} stalled events; "
        f"late completion rejected with {rejection!r}; result kept from pid {after.result}"
    )
    assert next(r["pid"] for r in starts) == stopped_pid
    assert len(starts) == 2
    assert starts[1]["pid"] != stopped_pid
    rerun_pid = starts[1]["pid"]
    assert done.result == {"pid": rerun_pid}
    assert str(after.state) == "completed"
    assert after.result == {"pid": rerun_pid}
    assert after.failed_reason is None
    assert {r["pid"] for r in finishes} == {stopped_pid, rerun_pid}  # the late run did finish


@pytest.mark.timeout(180)
async def test_cpu_bound_sync_handler_keeps_its_lock(cluster: Cluster) -> None:
    producer = cluster.producer
    job_id = await producer.add_job(
        "spin_sync", {"ledger": cluster.ledger, "seconds": 3 * LOCK_MS / 1000}, job_id="q4-spin"
    )
    job = await eventually(
        lambda: producer.get_job(job_id),
        until=lambda j: str(j.state) in ("completed", "failed"),
        timeout_s=60,
    )
    rows = await asyncio.to_thread(read_ledger, cluster.url, cluster.ledger)
    stalled = await _stalled_events(cluster.url, producer.queue_name)

    starts = [r for r in rows if r["event"] == "start"]
    print(
        f"Q4b: sync busy loop {3 * LOCK_MS} ms (lock {LOCK_MS} ms): {len(starts)} start(s), "
        f"{len(stalled)} stalled events, state {job.state}"
    )
    assert str(job.state) == "completed"
    assert len(starts) == 1
    assert stalled == []
