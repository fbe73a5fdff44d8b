"""S2: three ``corral scheduler`` processes, one SIGKILLed and restarted every 30 s.

Schedules fire every second (UTC) and their jobs are removed on completion, so job ids cannot
hide a duplicate: only the schedulers' shared watermark keeps each tick to one run. Over the
window every tick of every schedule ran exactly once and no two consecutive runs of a schedule
are more than 2 s apart.

``CORRAL_FAULT_S2_SECONDS`` sets the window (90 s by default; the soak variant runs 300 s).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.ledger import read_ledger
from tests.support.processes import RedisServer, corral_env, corral_process, producer_for
from tests.support.schedules import create_every_second_schedules, tick_report, window_edge
from tests.support.waiting import eventually

SCHEDULERS = 3
SCHEDULES = 3
KILL_EVERY_S = 30.0


async def _kill_storm(tmp_path: Path, queue_name: str, database_url: str, window_s: float) -> None:
    server = RedisServer(tmp_path)
    server.start()
    ledger = f"ledger:{queue_name}"
    qm = producer_for(server.url, queue_name, database_url=database_url)
    await qm._rt.migrate()  # before the processes start (they would migrate concurrently)
    schedules = await create_every_second_schedules(qm.settings, ledger, SCHEDULES)
    env = corral_env(
        server.url,
        queue_name,
        database_url,
        CORRAL_EXECUTION_LOG="false",
        CORRAL_CONCURRENCY="20",
        CORRAL_SCHEDULED_REMOVE_ON_COMPLETE="true",
    )
    kills = 0
    try:
        with ExitStack() as stack:

            def start_scheduler() -> subprocess.Popen[bytes]:
                log = tmp_path / f"scheduler{kills}-{time.monotonic_ns()}.log"
                return stack.enter_context(corral_process("scheduler", env, log=log))

            stack.enter_context(corral_process("worker", env, log=tmp_path / "worker.log"))
            replicas = [start_scheduler() for _ in range(SCHEDULERS)]
            await eventually(
                (await qm.runtime.monitor()).live_schedulers,
                until=lambda n: n == SCHEDULERS,
                timeout_s=90,
            )
            window_start = window_edge(start=True)
            opened = time.monotonic()
            next_kill = opened + KILL_EVERY_S / 3
            while time.monotonic() - opened < window_s:
                await asyncio.sleep(max(0.0, min(next_kill, opened + window_s) - time.monotonic()))
                if time.monotonic() >= next_kill and time.monotonic() - opened < window_s:
                    victim = random.randrange(SCHEDULERS)
                    replicas[victim].send_signal(signal.SIGKILL)
                    replicas[victim].wait(timeout=10)
                    kills += 1
                    replicas[victim] = start_scheduler()
                    next_kill += KILL_EVERY_S
            window_end = window_edge(start=False)
            await asyncio.sleep(3)  # the window's last ticks reach the ledger
            assert [r.poll() for r in replicas] == [None] * SCHEDULERS
        status = await qm.get_queue_status()
    finally:
        await qm.graceful_shutdown(1000)
    report = tick_report(
        read_ledger(server.url, ledger),
        schedules,
        window_start,
        window_end,
        gaps_since=window_start.timestamp() - 1,
    )
    server.kill()
    print(
        f"S2: {SCHEDULERS} schedulers, {SCHEDULES} every-second schedules, {report.seconds} s "
        f"window, {kills} SIGKILLs; {len(report.duplicates)} duplicate ticks, "
        f"{sum(report.missing.values())} missing; largest gap {report.max_gap_s:.2f} s"
    )
    assert status["counts"]["completed"] == 0  # removed on completion, as configured
    assert kills >= window_s // KILL_EVERY_S
    assert report.duplicates == {}
    assert report.missing == {}, "ticks missing per schedule"
    assert report.max_gap_s <= 2.0


@pytest.mark.fault
@pytest.mark.timeout(300)
async def test_scheduler_kill_storm_keeps_every_tick_once(
    tmp_path: Path, queue_name: str, database_url: str
) -> None:
    await _kill_storm(
        tmp_path, queue_name, database_url, float(os.environ.get("CORRAL_FAULT_S2_SECONDS", "90"))
    )


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_scheduler_kill_storm_soak(
    tmp_path: Path, queue_name: str, database_url: str
) -> None:
    await _kill_storm(tmp_path, queue_name, database_url, 300.0)
