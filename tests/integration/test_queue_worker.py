"""JobQueueManager + worker against the real Redis: priorities, retries, timeouts, dispatch."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Queue

from corral import (
    Job,
    JobExecutionStatus,
    JobPriority,
    JobQueueManager,
    job_handler,
)
from corral.core.handlers import HandlerRegistry
from corral.core.queue_jobs import JobState
from corral.errors import InvalidJobOptions
from tests.support.waiting import eventually


def _registry(*funcs: Any) -> HandlerRegistry:
    registry = HandlerRegistry()
    for func in funcs:
        registry.register(func)
    return registry


async def _state(qm: JobQueueManager, job_id: str, *states: str, timeout_s: float = 15) -> Any:
    return await eventually(
        lambda: qm.get_job(job_id), until=lambda j: j.state in states, timeout_s=timeout_s
    )


async def test_critical_runs_before_low_and_default_is_normal(qm: JobQueueManager) -> None:
    order: list[str] = []

    @job_handler("ordered")
    async def ordered(job: Job) -> None:
        order.append(job.data["tag"])

    await qm.add_job("ordered", {"tag": "low"}, priority=JobPriority.LOW)
    await qm.add_job("ordered", {"tag": "normal-default"})
    await qm.add_job("ordered", {"tag": "high"}, priority=JobPriority.HIGH)
    await qm.add_job("ordered", {"tag": "normal"}, priority=JobPriority.NORMAL)
    await qm.add_job("ordered", {"tag": "critical"}, priority=JobPriority.CRITICAL)
    await qm.add_job("ordered", {"tag": "p7"}, priority=7)
    await qm.start_worker(_registry(ordered), concurrency=1)
    await eventually(lambda: _len(order), until=lambda n: n == 6)
    assert order == ["critical", "high", "p7", "normal-default", "normal", "low"]


async def _len(items: list[Any]) -> int:
    return len(items)


async def test_failing_handler_is_retried_with_backoff_then_failed(
    qm: JobQueueManager, ledger: Any
) -> None:
    job_id = await qm.add_job(
        "fail", {"ledger": ledger.name}, attempts=3, backoff={"type": "fixed", "delay": 100}
    )
    await qm.start_worker()
    info = await _state(qm, job_id, "failed")
    assert info.attempts_made == 3
    assert "boom on attempt 3" in (info.failed_reason or "")
    assert [e["attempt"] for e in ledger.entries()] == [1, 2, 3]
    metrics = await eventually(qm.get_metrics, until=lambda m: m.failed_jobs == 1)
    assert metrics.retried_attempts == 2
    assert metrics.completed_jobs == 0


async def test_exponential_backoff_spaces_attempts(qm: JobQueueManager, ledger: Any) -> None:
    job_id = await qm.add_job(
        "fail", {"ledger": ledger.name}, attempts=3, backoff={"type": "exponential", "delay": 200}
    )
    await qm.start_worker()
    await _state(qm, job_id, "failed")
    times = [e["t"] for e in ledger.entries()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # exponential: ~200 ms then ~400 ms (lower bounds only; no upper timing asserted)
    assert gaps[0] >= 0.19
    assert gaps[1] >= 0.39


async def test_timeout_fails_each_attempt_and_cancels_the_handler(qm: JobQueueManager) -> None:
    finished: list[int] = []
    started: list[int] = []

    @job_handler("slow")
    async def slow(job: Job) -> None:
        started.append(job.attempts_made)
        import asyncio

        await asyncio.sleep(5)
        finished.append(job.attempts_made)

    job_id = await qm.add_job("slow", {}, timeout=300, attempts=2, backoff=50)
    await qm.start_worker(_registry(slow))
    info = await _state(qm, job_id, "failed")
    assert info.attempts_made == 2
    assert "timed out after 300 ms" in (info.failed_reason or "")
    assert started == [0, 1]
    assert finished == []  # really cancelled


async def test_sync_handler_timeout(qm: JobQueueManager) -> None:
    job_id = await qm.add_job("record_sync", {"sleep": 2}, timeout=200, attempts=1)
    await qm.start_worker()
    info = await _state(qm, job_id, "failed")
    assert "timed out after 200 ms" in (info.failed_reason or "")


async def test_unrecoverable_error_fails_after_one_attempt(
    qm: JobQueueManager, ledger: Any
) -> None:
    job_id = await qm.add_job("fail_unrecoverable", {"ledger": ledger.name}, attempts=5, backoff=10)
    await qm.start_worker()
    info = await _state(qm, job_id, "failed")
    assert info.attempts_made == 1
    assert len(ledger.entries()) == 1
    assert "this cannot succeed" in (info.failed_reason or "")


async def test_unknown_handler_fails_at_once_naming_it(qm: JobQueueManager) -> None:
    job_id = await qm.add_job("not_a_handler", {}, attempts=5, backoff=10)
    await qm.start_worker()
    info = await _state(qm, job_id, "failed")
    assert info.attempts_made == 1
    assert "handler 'not_a_handler' not registered" in (info.failed_reason or "")


async def test_raw_job_injected_into_redis_cannot_import_code(
    qm: JobQueueManager, settings: Any, tmp_path: Path
) -> None:
    """A job written straight into Redis, named like a dotted callable, with list data."""
    sentinel = tmp_path / "pwned"
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    raw = Queue(qm.queue_name, {"connection": client, "prefix": "corraltest"})
    try:
        job = await raw.add("os.system", [f"touch {sentinel}"], {"attempts": 3})
        pickle_like = await raw.add(
            "record", {"__reduce__": "gASVIAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOU"}
        )
    finally:
        await raw.close()
    await qm.start_worker()
    info = await _state(qm, str(job.id), "failed")
    assert "not registered" in (info.failed_reason or "")
    assert info.attempts_made == 1
    inert = await _state(qm, str(pickle_like.id), "completed")
    assert inert.state == "completed"  # the blob is just a string to the handler
    assert not sentinel.exists()


async def test_non_object_data_fails_unrecoverably(qm: JobQueueManager, settings: Any) -> None:
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    raw = Queue(qm.queue_name, {"connection": client, "prefix": "corraltest"})
    try:
        job = await raw.add("noop", [1, 2, 3], {"attempts": 3})
    finally:
        await raw.close()
    await qm.start_worker()
    info = await _state(qm, str(job.id), "failed")
    assert "must be a JSON object" in (info.failed_reason or "")
    assert info.attempts_made == 1


async def test_clean_jobs_removes_up_to_limit(qm: JobQueueManager) -> None:
    ids = await qm.add_bulk_jobs([{"name": "noop", "data": {"i": i}} for i in range(5)])
    await qm.start_worker()
    for job_id in ids:
        await _state(qm, job_id, "completed")
    assert await qm.clean_jobs(0, 3, JobExecutionStatus.COMPLETED) == 3
    assert await qm.clean_jobs(0, 10, JobExecutionStatus.COMPLETED) == 2
    assert await qm.clean_jobs(0, 10, JobExecutionStatus.FAILED) == 0
    status = await qm.get_queue_status()
    assert status["counts"]["completed"] == 0


async def test_clean_jobs_respects_grace(qm: JobQueueManager) -> None:
    job_id = await qm.add_job("noop")
    await qm.start_worker()
    await _state(qm, job_id, "completed")
    assert await qm.clean_jobs(3_600_000, 10, JobExecutionStatus.COMPLETED) == 0


async def test_bulk_add_is_all_or_nothing(qm: JobQueueManager) -> None:
    jobs: list[dict[str, Any]] = [
        {"name": "noop", "data": {"i": i}, "options": {"priority": JobPriority.LOW}}
        for i in range(10)
    ]
    jobs[3]["options"]["priority"] = 0
    with pytest.raises(InvalidJobOptions) as err:
        await qm.add_bulk_jobs(jobs)
    assert err.value.path == "jobs[3].options.priority"
    too_many = [{"name": "noop"} for _ in range(1001)]
    with pytest.raises(InvalidJobOptions, match="at most 1000"):
        await qm.add_bulk_jobs(too_many)
    status = await qm.get_queue_status()
    assert sum(status["counts"].values()) == 0


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"priority": 21}, "options.priority"),
        ({"timeout": 0}, "options.timeout"),
        ({"delay": -1}, "options.delay"),
        ({"attempts": 0}, "options.attempts"),
        ({"prio": 1}, "options.prio"),
        ({"job_id": "123"}, "options.job_id"),
        ({"job_id": "a:b"}, "options.job_id"),
    ],
)
async def test_bad_options_raise_and_enqueue_nothing(
    qm: JobQueueManager, options: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidJobOptions) as err:
        await qm.add_job("noop", {}, **options)
    assert err.value.path == path
    assert path in str(err.value)
    status = await qm.get_queue_status()
    assert sum(status["counts"].values()) == 0


async def test_bad_data_names_the_path(qm: JobQueueManager) -> None:
    import datetime as dt

    with pytest.raises(InvalidJobOptions) as err:
        await qm.add_job("noop", {"when": dt.datetime.now(dt.UTC)})
    assert err.value.path == "data.when"


async def test_job_id_dedupes(qm: JobQueueManager) -> None:
    first = await qm.add_job("noop", {}, job_id="order-42")
    second = await qm.add_job("noop", {}, job_id="order-42")
    assert first == second == "order-42"
    status = await qm.get_queue_status()
    assert sum(status["counts"].values()) == 1


async def test_metrics_agree_with_what_ran(qm: JobQueueManager) -> None:
    await qm.add_bulk_jobs([{"name": "noop"} for _ in range(20)])
    await qm.add_bulk_jobs([{"name": "fail", "options": {"attempts": 1}} for _ in range(5)])
    await qm.start_worker()
    metrics = await eventually(qm.get_metrics, until=lambda m: m.total_jobs == 25)
    assert metrics.completed_jobs == 20
    assert metrics.failed_jobs == 5
    assert metrics.success_rate == pytest.approx(0.8)
    assert metrics.average_processing_time >= 0


async def test_events_reach_sync_and_async_listeners(qm: JobQueueManager) -> None:
    seen: list[tuple[str, str | None, Any]] = []
    async_seen: list[str] = []

    def on_any(event: Any) -> None:
        seen.append((event.name, event.job_id, event.data))

    async def on_completed(event: Any) -> None:
        async_seen.append(str(event.job_id))

    for name in ("active", "progress", "completed", "failed"):
        qm.on(name, on_any)
    qm.on("completed", on_completed)
    await qm.start_events()
    ok = await qm.add_job("progress")
    bad = await qm.add_job("fail", {}, attempts=1)
    await qm.start_worker()
    await eventually(lambda: _len(async_seen), until=lambda n: n == 1)
    await eventually(lambda: _len(seen), until=lambda _: any(s[0] == "failed" for s in seen))
    progress = [s[2]["progress"] for s in seen if s[0] == "progress" and s[1] == ok]
    assert progress == [25, 50, 100]
    completed = [s for s in seen if s[0] == "completed"]
    assert completed[0][1] == ok
    assert completed[0][2]["result"] == "done"
    failed = [s for s in seen if s[0] == "failed"]
    assert failed[0][1] == bad
    assert "boom" in failed[0][2]["error"]
    assert async_seen == [ok]


async def test_pause_and_resume(qm: JobQueueManager) -> None:
    await qm.pause()
    job_id = await qm.add_job("noop")
    await qm.start_worker()
    status = await qm.get_queue_status()
    assert status["paused"] is True
    health = await qm.health_check()
    assert health.status == "degraded"
    assert "queue is paused" in health.details["problems"]
    await qm.resume()
    await _state(qm, job_id, "completed")


async def test_health_reports_backlog_without_workers(qm: JobQueueManager) -> None:
    await qm.add_job("noop")
    health = await qm.health_check()
    assert health.status == "degraded"
    assert health.details["workers_alive"] == 0
    assert any("no live worker" in p for p in health.details["problems"])
    await qm.start_worker()
    healthy = await eventually(qm.health_check, until=lambda h: h.status == "healthy")
    assert healthy.details["workers_alive"] == 1


async def test_health_unhealthy_when_redis_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    from corral.settings import load_settings

    monkeypatch.setenv("REDIS_URL", "redis://:CANARY-7f3a@127.0.0.1:1/0")
    manager = JobQueueManager(load_settings(redis_connect_timeout_s=1))
    try:
        health = await manager.health_check()
    finally:
        await manager.graceful_shutdown(0)
    assert health.status == "unhealthy"
    assert health.details["redis"].startswith("unreachable: Redis not reachable at 127.0.0.1:1")
    assert "CANARY" not in json.dumps(health.details)


async def test_retry_and_remove_job(qm: JobQueueManager) -> None:
    job_id = await qm.add_job("fail", {}, attempts=1)
    await qm.start_worker()
    await _state(qm, job_id, "failed")
    await qm.retry_job(job_id)
    info = await _state(qm, job_id, "failed", timeout_s=10)
    assert info.attempts_made >= 1
    await qm.remove_job(job_id)
    from corral.errors import JobNotFound

    with pytest.raises(JobNotFound):
        await qm.get_job(job_id)


async def test_graceful_shutdown_waits_for_active_jobs(qm: JobQueueManager, ledger: Any) -> None:
    job_id = await qm.add_job("record", {"sleep": 0.5, "ledger": ledger.name})
    await qm.start_worker()
    await eventually(lambda: _entries(ledger), until=lambda e: len(e) == 1)
    assert await qm.graceful_shutdown(10_000) is True
    assert [e["event"] for e in ledger.entries()] == ["start", "finish"]
    assert await _state_seen_afresh(qm, job_id) == "completed"


async def _entries(ledger: Any) -> list[dict[str, Any]]:
    return list(ledger.entries())


async def _state_seen_afresh(qm: JobQueueManager, job_id: str) -> JobState:
    """The job's state as a new manager reads it, once ``qm`` is shut down."""
    other = JobQueueManager(qm.settings)
    try:
        return (await other.get_job(job_id)).state
    finally:
        await other.graceful_shutdown(0)


@pytest.mark.parametrize("prefetch", [0, 2])
async def test_graceful_shutdown_keeps_renewing_the_locks_of_running_jobs(
    qm: JobQueueManager, ledger: Any, prefetch: int
) -> None:
    """A job that runs on for longer than its lock (2 s here) after the shutdown began still
    completes: bullmq's run loop stopped the lock renewals the moment a free slot's fetch came
    back empty, the lock expired, the result was refused and the job left active to run again."""
    job_id = await qm.add_job("record", {"sleep": 3, "ledger": ledger.name})
    await qm.start_worker(concurrency=3, prefetch=prefetch)
    await eventually(lambda: _entries(ledger), until=lambda e: len(e) == 1)
    assert await qm.graceful_shutdown(10_000) is True
    assert [e["event"] for e in ledger.entries()] == ["start", "finish"]
    assert await _state_seen_afresh(qm, job_id) == "completed"


async def test_graceful_shutdown_deadline_returns_cut_off_job_to_queue(
    qm: JobQueueManager, ledger: Any
) -> None:
    job_id = await qm.add_job("record", {"sleep": 30, "ledger": ledger.name})
    await qm.start_worker()
    await eventually(lambda: _entries(ledger), until=lambda e: len(e) == 1)
    began = time.monotonic()
    assert await qm.graceful_shutdown(500) is False
    elapsed = time.monotonic() - began
    assert elapsed < 5, f"shutdown took {elapsed:.1f} s with a 0.5 s deadline"
    # back in the queue at once, not lost
    assert await _state_seen_afresh(qm, job_id) in ("waiting", "prioritized")


async def test_sync_handlers_report_progress_and_log(qm: JobQueueManager) -> None:
    seen: list[Any] = []
    qm.on("progress", lambda e: seen.append((e.job_id, e.data["progress"])))
    await qm.start_events()
    job_id = await qm.add_job("progress_sync")
    misused = await qm.add_job("progress_sync_misused", attempts=1)
    await qm.start_worker()
    await _state(qm, job_id, "completed")
    await eventually(lambda: _len(seen), until=lambda n: n >= 3)
    assert [p for j, p in seen if j == job_id] == [25, 50, 100]
    assert await qm.get_job_logs(job_id) == (["sync steps done"], 1)
    await _state(qm, misused, "failed")
    reason = (await qm.get_job(misused)).failed_reason
    assert "update_progress_sync is for plain (sync) handlers" in reason
