"""Q3: a poison job that kills its worker on every attempt, beside ordinary jobs.

One ``corral worker`` process at concurrency 5, restarted whenever it dies, runs 20 ordinary
jobs (0.5-1.5 s each) and one job whose handler calls ``os._exit(1)`` after its neighbours
have started. The poison job must end failed after a bounded number of deaths, with its reason
in the SQL execution log, and no job that merely ran beside it may be failed. Before jobs
recovered from a dead worker ran alone, a bystander that happened to run beside the poison job
through both deaths was failed with "job stalled more than allowable limit" (4 of 18 runs), so
the test runs several rounds, each with a new poison job among new bystanders. The ledger the
handlers write (a start and a finish row per run) is the evidence, not Corral's counters.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from corral import JobQueueManager
from corral.core.queries import ExecutionQuery
from corral.settings import load_settings
from tests.support.processes import RedisServer, corral_env, corral_process

pytestmark = pytest.mark.fault

ROUNDS = 3
BYSTANDERS = 20
MAX_DEATHS = 2  # the crash beside others, then the crash alone


async def _add_round(qm: JobQueueManager, ledger: str, number: int) -> tuple[str, list[str]]:
    """20 bystanders with the poison job third in line, so it runs beside four of them."""
    rng = random.Random(number)
    ids: list[str] = []
    poison = ""
    for i in range(BYSTANDERS):
        if i == 2:
            poison = await qm.add_job("poison", {"ledger": ledger}, attempts=3, backoff=100)
        data = {"sleep": rng.uniform(0.5, 1.5), "ledger": ledger, "tag": f"r{number}-{i}"}
        ids.append(await qm.add_job("record", data))
    return poison, ids


async def _settled(qm: JobQueueManager, jobs: list[str]) -> bool:
    states = [(await qm.get_job(j)).state for j in jobs]
    return all(state in ("completed", "failed") for state in states)


async def _run_until_settled(
    qm: JobQueueManager, env: dict[str, str], logs: Path, jobs: list[str]
) -> int:
    """Run a worker, starting a new one whenever it dies, until every job is finished; return
    how many times the worker died."""
    deaths = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        with corral_process("worker", env, log=logs / f"worker-{deaths}.log") as proc:
            while proc.poll() is None:
                if await _settled(qm, jobs):
                    # Stopped as an operator would: a SIGKILL here could land before the
                    # worker's buffered execution-log write of the last failure (that loss is
                    # the reconciler's to repair, tested in test_reconcile.py, not this test's).
                    proc.terminate()
                    proc.wait(timeout=30)
                    return deaths
                await asyncio.sleep(0.2)
        deaths += 1
    raise AssertionError(f"jobs not settled after {deaths} worker deaths")


@pytest.mark.timeout(600)
async def test_a_poison_job_is_failed_alone_and_no_bystander_with_it(
    tmp_path: Path, queue_name: str, database_url: str
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    env = corral_env(server.url, queue_name, database_url, CORRAL_CONCURRENCY="5")
    settings = load_settings(
        queue=queue_name, prefix="corraltest", redis_url=server.url, database_url=database_url
    )
    qm = JobQueueManager(settings)
    ledger_key = f"ledger:{queue_name}"
    reader = aioredis.Redis.from_url(server.url)
    figures: list[tuple[int, float, int]] = []
    try:
        await qm._rt.migrate()
        for number in range(ROUNDS):
            logs = tmp_path / f"round-{number}"
            logs.mkdir()
            poison, bystanders = await _add_round(qm, ledger_key, number)
            started = time.monotonic()
            deaths = await _run_until_settled(qm, env, logs, [poison, *bystanders])
            took = time.monotonic() - started

            poisoned = await qm.get_job(poison)
            assert poisoned.state == "failed"
            assert "stalled more than allowable limit" in (poisoned.failed_reason or "")
            states = {j: (await qm.get_job(j)).state for j in bystanders}
            failed = [j for j, state in states.items() if state != "completed"]
            figures.append((deaths, took, len(failed)))
            assert failed == [], f"round {number}: bystanders failed: {failed}"
            assert 1 <= deaths <= MAX_DEATHS, f"round {number}: {deaths} worker deaths"

        ledger = [json.loads(x) for x in await reader.lrange(ledger_key, 0, -1)]
        finished = {row["job_id"] for row in ledger if row["event"] == "finish"}
        bystander_ids = {
            row["job_id"] for row in ledger if row["tag"] is not None and row["event"] == "start"
        }
        assert len(bystander_ids) == ROUNDS * BYSTANDERS
        assert bystander_ids <= finished  # every bystander's handler ran to its end

        async def poison_rows() -> list[Any]:
            rows, _ = await qm._rt.execution_log().search(
                ExecutionQuery(handler_name="poison", limit=10)
            )
            return rows

        deadline = time.monotonic() + 10
        rows = await poison_rows()
        while any(r.status != "failed" for r in rows) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            rows = await poison_rows()
        assert len(rows) == ROUNDS
        for row in rows:
            assert row.status == "failed"
            assert "stalled more than allowable limit" in (row.error_message or "")
            assert "no other job beside it" in (row.error_message or "")
    finally:
        await qm.graceful_shutdown(1000)
        await reader.aclose()
        server.kill()
    for number, (deaths, took, failed_count) in enumerate(figures):
        print(
            f"Q3 round {number}: poison failed after {deaths} worker deaths in {took:.1f} s; "
            f"bystanders failed: {failed_count}"
        )
