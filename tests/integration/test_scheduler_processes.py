"""`corral scheduler` replicas as real processes: exactly once per tick, also when one is
SIGKILLed mid-run, with jobs removed as soon as they complete."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from corral import JobQueueManager
from tests.support.processes import corral_env, scheduler_process
from tests.support.schedules import create_every_second_schedules, tick_report, window_edge
from tests.support.waiting import eventually


# A minute of real time by design (kill, restart, 60 s window): it runs with the fault tests,
# after the default suite, which the kill storm (tests/faults/test_scheduler_kills.py) extends.
@pytest.mark.fault
@pytest.mark.timeout(180)
async def test_replicas_fire_exactly_once_while_one_is_killed(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, ledger: Any
) -> None:
    schedules = await create_every_second_schedules(qm.settings, ledger.name, 5)
    await qm.start_worker(concurrency=20, execution_log=False)
    env = corral_env(
        redis_url,
        queue_name,
        database_url,
        CORRAL_EXECUTION_LOG="false",
        CORRAL_SCHEDULED_REMOVE_ON_COMPLETE="true",  # ids cannot dedupe: only the watermark can
    )
    with scheduler_process(env), scheduler_process(env) as victim, scheduler_process(env):
        # Start-up (imports, migrations, loading) takes seconds on a busy machine: the window
        # opens once all three replicas send heartbeats.
        await eventually(
            (await qm.runtime.monitor()).live_schedulers, until=lambda n: n == 3, timeout_s=60
        )
        window_start = window_edge(start=True)
        await asyncio.sleep(15)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        await asyncio.sleep(15)
        with scheduler_process(env):  # the killed replica comes back
            await asyncio.sleep(30)
        window_end = window_edge(start=False)
    await asyncio.sleep(1)
    status = await qm.get_queue_status()
    assert status["counts"]["completed"] == 0  # removed at once, as configured
    report = tick_report(
        ledger.entries(), schedules, window_start, window_end, gaps_since=killed_at - 1
    )
    assert report.duplicates == {}
    assert report.seconds >= 55
    assert report.missing == {}, "ticks missing per schedule"
    # the largest gap between consecutive ticks of a schedule after the kill
    assert report.max_gap_s < 2.0, f"gap of {report.max_gap_s:.2f} s after the kill"
