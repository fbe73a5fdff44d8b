"""The prefetch against a real Redis: a worker holds up to ``concurrency + prefetch`` jobs and
runs ``concurrency`` handlers at once; at shutdown the jobs it held but had not started go back
to the queue at once, never run by it; a rate-limited worker holds none beyond its handlers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from corral import JobQueueManager
from corral.adapters.bullmq.consumer import WorkerConfig
from tests.support.waiting import eventually


async def _rows(ledger: Any) -> list[dict[str, Any]]:
    return list(ledger.entries())


def _most_at_once(rows: list[dict[str, Any]]) -> int:
    """The most handlers running at the same time, by the handlers' own start/finish rows."""
    running = most = 0
    for row in sorted(rows, key=lambda r: (r["t"], r["event"] == "start")):
        running += 1 if row["event"] == "start" else -1
        most = max(most, running)
    return most


async def _active(qm: JobQueueManager) -> int:
    return int((await qm.get_queue_status())["counts"]["active"])


async def _start(
    qm: JobQueueManager, ledger: Any, *, jobs: int, concurrency: int, prefetch: int
) -> list[str]:
    """``jobs`` jobs of 0.4 s, then a worker, until its first ``concurrency`` jobs started."""
    ids = await qm.add_bulk_jobs(
        [{"name": "record", "data": {"sleep": 0.4, "ledger": ledger.name}} for _ in range(jobs)]
    )
    await qm.start_worker(concurrency=concurrency, prefetch=prefetch)
    await eventually(lambda: _rows(ledger), until=lambda rows: len(rows) >= concurrency)
    return ids


async def test_holds_prefetched_jobs_and_runs_only_concurrency_handlers(
    qm: JobQueueManager, ledger: Any
) -> None:
    ids = await _start(qm, ledger, jobs=8, concurrency=2, prefetch=3)
    assert await _active(qm) == 5  # two running, three held ready
    rows = await eventually(lambda: _rows(ledger), until=lambda rows: len(rows) == 16)
    assert _most_at_once(rows) == 2
    assert sorted(row["job_id"] for row in rows if row["event"] == "start") == sorted(ids)
    for job_id in ids:
        assert (await qm.get_job(job_id)).state == "completed"


async def test_prefetch_zero_holds_only_the_running_jobs(qm: JobQueueManager, ledger: Any) -> None:
    await _start(qm, ledger, jobs=6, concurrency=2, prefetch=0)
    assert await _active(qm) == 2
    rows = await eventually(lambda: _rows(ledger), until=lambda rows: len(rows) == 12)
    assert _most_at_once(rows) == 2


async def test_shutdown_returns_held_jobs_to_the_queue_unstarted(
    qm: JobQueueManager, ledger: Any
) -> None:
    ids = await qm.add_bulk_jobs(
        [{"name": "record", "data": {"sleep": 1, "ledger": ledger.name}} for _ in range(4)]
    )
    await qm.start_worker(concurrency=1, prefetch=3)
    await eventually(lambda: _rows(ledger), until=lambda rows: len(rows) == 1)
    await eventually(lambda: _active(qm), until=lambda n: n == 4)
    assert await qm.graceful_shutdown(10_000) is True
    rows = list(ledger.entries())
    assert [row["event"] for row in rows] == ["start", "finish"]  # only the running job ran
    other = JobQueueManager(qm.settings)
    try:
        states = {job_id: (await other.get_job(job_id)).state for job_id in ids}
        assert states.pop(rows[0]["job_id"]) == "completed"
        assert set(states.values()) <= {"waiting", "prioritized"}  # back at once, not stalled
        assert len(states) == 3
        assert (await other.get_queue_status())["counts"]["active"] == 0
    finally:
        await other.graceful_shutdown(0)


def test_a_rate_limited_worker_holds_no_more_than_it_runs() -> None:
    common = {"queue": "q", "prefix": "bull", "concurrency": 4, "prefetch": 6}
    assert WorkerConfig(**common).held == 10
    limited = WorkerConfig(**common, limiter_max=5, limiter_duration_ms=1000)
    assert limited.held == 4


async def _worker_info(qm: JobQueueManager) -> list[dict[str, Any]]:
    return list((await qm.get_queue_status())["workers"])


async def test_by_default_a_worker_holds_one_fewer_than_it_runs(qm: JobQueueManager) -> None:
    """So a worker at concurrency 1 holds none and starts its jobs strictly by priority."""
    await qm.start_worker(concurrency=1)
    await qm.start_worker(concurrency=4)
    workers = await eventually(lambda: _worker_info(qm), until=lambda found: len(found) == 2)
    held = sorted((w["concurrency"], w["prefetch"]) for w in workers)
    assert held == [(1, 0), (4, 3)]


async def test_a_job_picked_up_from_an_idle_queue_costs_one_fetch_per_slot(
    qm: JobQueueManager, ledger: Any
) -> None:
    """As BullMQ's Node worker: the free slots fetch once each, then one of them waits. The
    Python port's loop made every free slot but the waiting one fetch a second time."""
    await qm.start_worker(concurrency=5, prefetch=5)
    worker = qm.runtime.consumers[0]._worker
    assert worker is not None
    fetches = 0
    move_to_active = worker.moveToActive

    async def counted(token: str) -> Any:
        nonlocal fetches
        fetches += 1
        return await move_to_active(token)

    worker.moveToActive = counted
    await eventually(lambda: _waiting_for_jobs(worker), until=bool)
    fetches = 0  # idle now: what follows is the cost of one job
    await qm.add_job("record", {"ledger": ledger.name})
    await eventually(lambda: _rows(ledger), until=lambda rows: len(rows) == 2)
    await eventually(lambda: _waiting_for_jobs(worker), until=bool)
    # The waiting slot's fetch, one for each of the 9 other free slots, and one of the next
    # waiting slot (woken by the marker the completion leaves); 28 before, in the same run.
    assert fetches <= 11


async def _waiting_for_jobs(worker: Any) -> bool:
    await asyncio.sleep(0.2)
    return bool(worker.drained and worker.waiting is not None)


async def test_held_jobs_returned_at_shutdown_wake_an_idle_worker(
    qm: JobQueueManager, ledger: Any
) -> None:
    """BullMQ's script that sends a job back adds no wake-up marker for a job with a priority,
    so a worker waiting on an empty queue found the held jobs only when its wait timed out
    (5 s); with the marker it takes them at once."""
    ids = await qm.add_bulk_jobs(
        [{"name": "record", "data": {"sleep": 1, "ledger": ledger.name}} for _ in range(4)]
    )
    await qm.start_worker(concurrency=1, prefetch=3)
    await eventually(lambda: _active(qm), until=lambda n: n == 4)
    idle = JobQueueManager(qm.settings)
    try:
        await idle.start_worker(concurrency=3, prefetch=0)
        waiting = idle.runtime.consumers[0]._worker
        await eventually(lambda: _waiting_for_jobs(waiting), until=bool)
        began = time.time()
        assert await qm.graceful_shutdown(10_000) is True
        rows = await eventually(lambda: _rows(ledger), until=lambda rows: len(rows) == 8)
        first = rows[0]["job_id"]  # the one job started before the shutdown
        starts = [row for row in rows if row["event"] == "start" and row["job_id"] != first]
        held = {row["job_id"]: row["t"] for row in starts}
        assert len(starts) == 3
        assert sorted(held) == sorted(set(ids) - {first})
        late = max(held.values()) - began
        assert late < 2.5, f"the held jobs started {late:.1f} s after the shutdown began"
    finally:
        await idle.graceful_shutdown(5000)
