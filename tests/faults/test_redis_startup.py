"""R3 (docs/reliability.md): Redis is down when the worker, the scheduler and the API start.

All three stay up. ``/health/ready`` answers 503 with ``details.redis = "unreachable: ..."`` and
no password; the processes retry with a capped backoff, log under one line a second, and run
jobs (a queued one and a scheduled one) within 5 s of Redis accepting connections.
"""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import JobQueueManager
from corral.scheduler import TaskScheduler
from corral.settings import load_settings
from tests.support.processes import RedisServer, api_env, corral_process, free_port
from tests.support.waiting import eventually

PASSWORD = "r3-canary-password-91f2"  # noqa: S105 - a test value that must never be printed
TOKEN = "r3-admin-token"  # noqa: S105
OUTAGE_S = 8.0
RESUME_BOUND_S = 5.0


async def _first(check: Any, timeout: float) -> float:
    """Seconds until ``check()`` (async) is truthy; fails after ``timeout``."""
    started = time.monotonic()
    await eventually(check, until=bool, timeout_s=timeout, every_s=0.1)
    return time.monotonic() - started


@pytest.mark.timeout(120)
async def test_worker_scheduler_and_api_wait_for_redis(
    tmp_path: Path, qm: JobQueueManager, queue_name: str, database_url: str
) -> None:
    # A schedule that fires every second, stored before anything starts (SQL only).
    admin = TaskScheduler(qm.settings, handlers=["tests.support.it_handlers"])
    schedule = await admin.create(
        name="every-second",
        handler_name="noop",
        cron_expression="* * * * * *",
        domain="test",
        timezone="UTC",
    )
    await admin.close()

    server = RedisServer(tmp_path, password=PASSWORD)  # not started yet
    port = free_port()
    env = api_env(
        server.url,
        queue_name,
        database_url,
        token=TOKEN,
        port=port,
        CORRAL_REDIS_CONNECT_TIMEOUT="1",
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "scheduler", "api")}
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    producer = JobQueueManager(
        load_settings(queue=queue_name, prefix="corraltest", redis_url=server.url)
    )
    try:
        with ExitStack() as stack:
            procs = {
                name: stack.enter_context(corral_process(name, env, log=log))
                for name, log in logs.items()
            }
            started = time.monotonic()

            async def live() -> bool:
                try:
                    return (await api.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await _first(live, timeout=20)
            ready = await api.get("/health/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["details"]["redis"].startswith("unreachable: ")
            assert PASSWORD not in ready.text

            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
            outage = time.monotonic() - started
            assert {n: p.poll() for n, p in procs.items()} == dict.fromkeys(procs)

            server.start()
            job_id = await producer.add_job("noop", {"after": "outage"})

            async def job_done() -> bool:
                return str((await producer.get_job(job_id)).state) == "completed"

            async def schedule_fired() -> bool:
                done, _ = await producer.list_jobs("completed", limit=50)
                return any(j.id.startswith(f"sched-{schedule.id}-") for j in done)

            async def api_ready() -> bool:
                return (await api.get("/health/ready")).status_code == 200

            waits = await asyncio.gather(
                _first(job_done, timeout=15),
                _first(schedule_fired, timeout=15),
                _first(api_ready, timeout=15),
            )
            print(f"R3: job {waits[0]:.2f} s, schedule {waits[1]:.2f} s, ready {waits[2]:.2f} s")
            assert max(waits) <= RESUME_BOUND_S, f"job, schedule, API ready after {waits} s"

            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            codes = {n: p.wait(timeout=20) for n, p in procs.items()}
            assert codes == dict.fromkeys(procs, 0)
    finally:
        await producer.graceful_shutdown(1000)
        await api.aclose()
        server.kill()

    for name, log in logs.items():
        text = log.read_text(errors="replace")
        assert PASSWORD not in text, f"{name} logged the Redis password"
        errors = [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
        assert len(errors) <= outage + 2, f"{name}: {len(errors)} lines in {outage:.0f} s"
