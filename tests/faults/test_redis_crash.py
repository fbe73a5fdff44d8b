"""R2: Redis killed with SIGKILL (AOF ``everysec``) while a producer adds about 1,000 jobs a
second and two worker processes run them; Redis is started again from its files.

What holds: every job the producer was told was added ends completed or is still queued,
except those a crash can take with it: AOF ``everysec`` may lose the writes of the last second
or two before the kill, and each job lost that way was acknowledged within that window. A job
whose handler finished while Redis was down is recorded when Redis is back (one run, its SQL
row ``completed``), not left to stalled recovery. The ledger (in the shared test Redis, which
is not killed) is the evidence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from corral import JobQueueManager
from corral.core.queries import ExecutionQuery
from corral.errors import BrokerUnavailable
from corral.settings import load_settings
from tests.support.ledger import read_ledger, starts_by_job
from tests.support.processes import RedisServer, corral_env, corral_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault

RATE_PER_S = 1000
PRODUCERS = 10  # concurrent adders, each at RATE_PER_S / PRODUCERS
BEFORE_S = 4.0
DOWN_S = 1.0
AFTER_S = 3.0
LOSS_WINDOW_S = 2.0  # AOF everysec: "you may lose up to 2 seconds of writes" in the worst case


async def _settle(
    sql_states: Callable[[], Awaitable[dict[str, str]]], must_be_completed: set[str]
) -> dict[str, str]:
    """The SQL states once every finished job's row says completed (fail with the few that
    do not, rather than every row)."""
    deadline = time.monotonic() + 30
    while True:
        sql = await sql_states()
        wrong = {j: sql.get(j) for j in must_be_completed if sql.get(j) != "completed"}
        if not wrong:
            return sql
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(wrong)} finished jobs without a completed row: {wrong}")
        await asyncio.sleep(1)


@pytest.mark.timeout(300)
async def test_a_redis_crash_loses_at_most_the_last_seconds_and_nothing_finished(
    tmp_path: Path, queue_name: str, database_url: str, redis_url: str
) -> None:
    server = RedisServer(tmp_path, appendfsync="everysec")
    server.start()
    ledger = f"ledger:{queue_name}"
    env = corral_env(
        server.url,
        queue_name,
        database_url,
        CORRAL_CONCURRENCY="10",
        CORRAL_REDIS_CONNECT_TIMEOUT="1",
        CORRAL_TEST_LEDGER_URL=redis_url,
    )
    settings = load_settings(
        queue=queue_name,
        prefix="corraltest",
        redis_url=server.url,
        database_url=database_url,
        redis_connect_timeout_s=1,
    )
    producer = JobQueueManager(settings)
    await producer._rt.migrate()
    acknowledged: dict[str, float] = {}  # job id -> when the add returned
    refused = 0
    stop = asyncio.Event()

    async def produce(k: int) -> None:
        nonlocal refused
        interval = PRODUCERS / RATE_PER_S
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            n += 1
            try:
                job_id = await producer.add_job(
                    "record",
                    {"ledger": ledger, "tag": f"{k}-{n}"},
                    job_id=f"r2-{k}-{n}",
                    remove_on_complete=False,
                )
                acknowledged[job_id] = time.monotonic()
            except BrokerUnavailable:
                refused += 1
                await asyncio.sleep(0.1)
            next_at = max(next_at + interval, time.monotonic())
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    checker = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        with ExitStack() as stack:
            for i in range(2):
                stack.enter_context(corral_process("worker", env, log=tmp_path / f"worker{i}.log"))
            await eventually(
                producer.get_queue_status, until=lambda s: len(s["workers"]) == 2, timeout_s=30
            )
            producers = [asyncio.create_task(produce(k)) for k in range(PRODUCERS)]
            await asyncio.sleep(BEFORE_S)
            killed_at = time.monotonic()
            server.kill()
            await asyncio.sleep(DOWN_S)
            server.start()  # replays its AOF
            await asyncio.sleep(AFTER_S)
            stop.set()
            await asyncio.gather(*producers)

            ids = list(acknowledged)

            async def states() -> dict[str, str | None]:
                async with checker.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.hget(f"corraltest:{queue_name}:{job_id}", "finishedOn")
                        pipe.exists(f"corraltest:{queue_name}:{job_id}")
                    raw = await pipe.execute()
                return {
                    job_id: ("finished" if done else "queued" if there else None)
                    for job_id, done, there in zip(ids, raw[::2], raw[1::2], strict=True)
                }

            final = await eventually(
                states,
                until=lambda s: all(v != "queued" for v in s.values()),
                timeout_s=90,
                every_s=0.5,
            )
            lost = [j for j, state in final.items() if state is None]
            late = [j for j in lost if acknowledged[j] < killed_at - LOSS_WINDOW_S]
            rows = await asyncio.to_thread(read_ledger, redis_url, ledger)
            starts = starts_by_job(rows)
            finished = {r["job_id"] for r in rows if r["event"] == "finish"}
            twice = [j for j, s in starts.items() if len(s) > 1 and j not in lost]

            async def sql_states() -> dict[str, str]:
                log, found, offset = producer._rt.execution_log(), {}, 0
                while True:
                    page, total = await log.search(ExecutionQuery(limit=500, offset=offset))
                    found.update({r.execution_id: str(r.status) for r in page})
                    offset += len(page)
                    if not page or offset >= total:
                        return found

            # Every job that ran to its end and is still in Redis has its row completed.
            must_be_completed = finished - set(lost)
            # Before the workers stop: their log writers flush every half second.
            sql = await _settle(sql_states, must_be_completed)
            not_completed = {j: sql.get(j) for j in lost}
    finally:
        await producer.graceful_shutdown(1000)
        await checker.aclose()
        server.kill()
    print(
        f"R2: {len(acknowledged)} acknowledged at ~{RATE_PER_S}/s, {refused} adds refused while "
        f"Redis was down; {len(lost)} lost in the crash (all acknowledged within "
        f"{LOSS_WINDOW_S:.0f} s of the kill: {not late}); {len(twice)} jobs ran twice; "
        f"rows of the lost jobs: {sorted(set(not_completed.values()), key=str)}"
    )
    assert late == [], f"{len(late)} jobs acknowledged well before the kill were lost"
    assert twice == [], f"jobs run twice: {twice[:10]}"
