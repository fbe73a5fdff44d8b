"""Q2: a kill storm. Worker processes are SIGKILLed, one every 2 s, and restarted.

Jobs sleep a random 50-500 ms and write a ledger row when they start and when they finish.
Every job ends completed (0 lost), and every job that started more than once is explained by a
kill: each earlier start ran in a worker process that was SIGKILLed afterwards, and the next
start came after that kill (never two runs at once).

Sizes: ``CORRAL_FAULT_Q2_JOBS`` (default 1000) and ``CORRAL_FAULT_Q2_WORKERS`` (default 4).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import statistics
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.ledger import read_ledger, starts_by_job
from tests.support.processes import RedisServer, corral_env, corral_process, producer_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault

JOBS = int(os.environ.get("CORRAL_FAULT_Q2_JOBS", "1000"))
WORKERS = int(os.environ.get("CORRAL_FAULT_Q2_WORKERS", "4"))
CONCURRENCY = 5
KILL_EVERY_S = 2.0
DEADLINE_S = 240.0


def unexplained_duplicates(
    starts: dict[str, list[dict[str, object]]], killed_at: dict[int, float]
) -> list[str]:
    """Jobs started more than once where an earlier start is not explained by a kill."""
    bad = []
    for job_id, rows in starts.items():
        for earlier, later in itertools.pairwise(rows):
            pid = int(str(earlier["pid"]))
            kill = killed_at.get(pid)
            if kill is None or not float(str(earlier["t"])) < kill < float(str(later["t"])):
                bad.append(f"{job_id}: {earlier} then {later} (pid killed at {kill})")
    return bad


@pytest.mark.timeout(360)
async def test_kill_storm_loses_nothing_and_every_rerun_follows_a_kill(
    tmp_path: Path, queue_name: str, database_url: str
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    ledger = f"ledger:{queue_name}"
    env = corral_env(
        server.url,
        queue_name,
        database_url,
        CORRAL_EXECUTION_LOG="false",
        CORRAL_CONCURRENCY=str(CONCURRENCY),
        CORRAL_MAX_STALLED_COUNT="10",
    )
    producer = producer_for(server.url, queue_name)
    checker = aioredis.Redis.from_url(server.url)
    completed_key = f"corraltest:{queue_name}:completed"
    ids = [f"q2-{n}" for n in range(JOBS)]
    killed_at: dict[int, float] = {}
    incarnations = 0
    try:
        with ExitStack() as stack:

            def start_worker() -> subprocess.Popen[bytes]:
                nonlocal incarnations
                incarnations += 1
                log = tmp_path / f"worker{incarnations}.log"
                return stack.enter_context(corral_process("worker", env, log=log))

            workers = [start_worker() for _ in range(WORKERS)]
            await eventually(
                producer.get_queue_status,
                until=lambda s: len(s["workers"]) == WORKERS,
                timeout_s=60,
            )
            for first in range(0, JOBS, 100):
                await producer.add_bulk_jobs(
                    [
                        {
                            "name": "jitter",
                            "data": {"ledger": ledger},
                            "options": {"job_id": job_id, "remove_on_complete": False},
                        }
                        for job_id in ids[first : first + 100]
                    ]
                )
            started = time.monotonic()
            while await checker.zcard(completed_key) < JOBS:
                assert time.monotonic() - started < DEADLINE_S, "jobs still unfinished"
                await asyncio.sleep(KILL_EVERY_S)
                victim = random.randrange(WORKERS)
                killed_at[workers[victim].pid] = time.time()
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(timeout=10)
                workers[victim] = start_worker()
            drained_s = time.monotonic() - started
            assert [w.poll() for w in workers] == [None] * WORKERS, "a worker exited on its own"
    finally:
        await producer.graceful_shutdown(1000)

    try:
        scores = await checker.zmscore(completed_key, ids)
        failed = await checker.zrange(f"corraltest:{queue_name}:failed", 0, -1)
    finally:
        await checker.aclose()
    rows = read_ledger(server.url, ledger)
    server.kill()
    lost = [job_id for job_id, score in zip(ids, scores, strict=True) if score is None]
    starts = starts_by_job(rows)
    duplicates = {job_id: len(r) for job_id, r in starts.items() if len(r) > 1}
    finished = {row["job_id"] for row in rows if row["event"] == "finish"}
    # recovery: from the kill of the worker running a job to the job's next start
    recoveries = sorted(
        float(later["t"]) - killed_at[int(earlier["pid"])]
        for r in starts.values()
        for earlier, later in itertools.pairwise(r)
        if int(earlier["pid"]) in killed_at
    )
    print(
        f"Q2: {JOBS} jobs, {WORKERS} workers x {CONCURRENCY}; {len(killed_at)} SIGKILLs in "
        f"{drained_s:.0f} s; {len(duplicates)} jobs ran more than once "
        f"({sum(duplicates.values()) - len(duplicates)} extra runs); {len(lost)} lost; "
        f"{len(failed)} failed; re-run after the kill: median "
        f"{statistics.median(recoveries) if recoveries else 0:.2f} s, "
        f"max {max(recoveries, default=0):.2f} s"
    )
    assert lost == [], f"{len(lost)} jobs not completed, e.g. {lost[:5]}"
    assert failed == []
    assert set(ids) <= finished, "a completed job has no finish row in the ledger"
    assert unexplained_duplicates(starts, killed_at) == []
