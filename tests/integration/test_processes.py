"""Worker processes (the `corral worker` command) seen from another process: events, metrics,
crash recovery and graceful SIGTERM."""

from __future__ import annotations

import signal
import time
from typing import Any

from corral import JobQueueManager
from tests.support.processes import corral_env, worker_process
from tests.support.waiting import eventually


async def _workers(qm: JobQueueManager) -> int:
    return len((await qm.get_queue_status())["workers"])


async def _count(items: list[Any]) -> int:
    return len(items)


async def test_progress_and_completion_seen_by_another_process(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str
) -> None:
    seen: list[tuple[str, Any]] = []
    qm.on("progress", lambda e: seen.append(("progress", e.data["progress"])))
    qm.on("completed", lambda e: seen.append(("completed", e.data["result"])))
    await qm.start_events()
    with worker_process(corral_env(redis_url, queue_name, database_url)):
        await eventually(lambda: _workers(qm), until=lambda n: n == 1, timeout_s=20)
        await qm.add_job("progress")
        await eventually(lambda: _count(seen), until=lambda n: n == 4, timeout_s=20)
    assert seen == [("progress", 25), ("progress", 50), ("progress", 100), ("completed", "done")]


async def test_metrics_are_cluster_wide_across_two_worker_processes(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str
) -> None:
    env = corral_env(redis_url, queue_name, database_url)
    with (
        worker_process(env, "--concurrency", "4") as w1,
        worker_process(env, "--concurrency", "4") as w2,
    ):
        await eventually(lambda: _workers(qm), until=lambda n: n == 2, timeout_s=20)
        await qm.add_bulk_jobs([{"name": "record", "data": {"sleep": 0.01}} for _ in range(200)])
        await qm.add_bulk_jobs([{"name": "fail", "options": {"attempts": 1}} for _ in range(10)])
        metrics = await eventually(
            qm.get_metrics, until=lambda m: m.total_jobs == 210, timeout_s=30
        )
        for proc in (w1, w2):
            proc.send_signal(signal.SIGTERM)
        for proc in (w1, w2):
            assert proc.wait(timeout=20) == 0
    assert metrics.completed_jobs == 200
    assert metrics.failed_jobs == 10
    status = await qm.get_queue_status()
    assert status["counts"]["completed"] == 200
    assert status["counts"]["failed"] == 10
    assert status["workers"] == []  # both deregistered on shutdown


async def test_sigkilled_worker_job_is_completed_by_another_worker(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, ledger: Any
) -> None:
    env = corral_env(redis_url, queue_name, database_url)
    stalled: list[str] = []
    qm.on("stalled", lambda e: stalled.append(str(e.job_id)))
    await qm.start_events()
    job_id = await qm.add_job("record", {"sleep": 3, "ledger": ledger.name}, attempts=1)
    with worker_process(env) as victim:
        await eventually(lambda: _entries(ledger), until=lambda e: len(e) == 1, timeout_s=20)
        victim_pid = ledger.entries()[0]["pid"]
        assert victim_pid == victim.pid or victim_pid != 0
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.time()
        with worker_process(env):
            info = await eventually(
                lambda: qm.get_job(job_id), until=lambda j: j.state == "completed", timeout_s=30
            )
    entries = ledger.entries()
    starts = [e for e in entries if e["event"] == "start"]
    finishes = [e for e in entries if e["event"] == "finish"]
    assert len(starts) == 2
    assert len(finishes) == 1
    assert finishes[0]["pid"] != victim_pid
    restart_after = starts[1]["t"] - killed_at
    print(f"kill-to-restart: {restart_after:.2f} s")
    assert restart_after < 9  # lockDuration 2 s + stalledInterval 0.5 s + slack
    assert info.state == "completed"
    await eventually(lambda: _count(stalled), until=lambda n: n >= 1, timeout_s=10)
    assert stalled[0] == job_id


async def _entries(ledger: Any) -> list[dict[str, Any]]:
    return list(ledger.entries())


async def test_sigterm_drains_active_jobs_and_starts_no_new_ones(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, ledger: Any
) -> None:
    env = corral_env(redis_url, queue_name, database_url)
    with worker_process(env, "--concurrency", "3") as proc:
        await eventually(lambda: _workers(qm), until=lambda n: n == 1, timeout_s=20)
        ids = await qm.add_bulk_jobs(
            [{"name": "record", "data": {"sleep": 2, "ledger": ledger.name}} for _ in range(3)]
        )
        await eventually(lambda: _entries(ledger), until=lambda e: len(e) == 3, timeout_s=20)
        extra = await qm.add_job("record", {"sleep": 0, "ledger": ledger.name})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    for job_id in ids:
        assert (await qm.get_job(job_id)).state == "completed"
    assert (await qm.get_job(extra)).state in ("waiting", "prioritized")
    assert sum(1 for e in ledger.entries() if e["event"] == "start") == 3
