"""`corral scheduler` replicas as real processes: exactly once per tick, also when one is
SIGKILLed mid-run, with jobs removed as soon as they complete."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corral import JobQueueManager
from corral.core.schedules import fire_id
from corral.scheduler import TaskScheduler
from tests.support.processes import corral_env, scheduler_process
from tests.support.waiting import eventually


@pytest.mark.timeout(180)
async def test_replicas_fire_exactly_once_while_one_is_killed(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, ledger: Any
) -> None:
    admin = TaskScheduler(qm.settings, handlers=["tests.support.it_handlers"])
    schedules = [
        await admin.create(
            name=f"s{i}",
            handler_name="record",
            cron_expression="* * * * * *",
            domain="test",
            timezone="UTC",
            payload={"ledger": ledger.name},
        )
        for i in range(5)
    ]
    await admin.close()
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
        await eventually(qm.live_schedulers, until=lambda n: n == 3, timeout_s=60)
        window_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        await asyncio.sleep(15)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        await asyncio.sleep(15)
        with scheduler_process(env):  # the killed replica comes back
            await asyncio.sleep(30)
        window_end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    await asyncio.sleep(1)
    status = await qm.get_queue_status()
    assert status["counts"]["completed"] == 0  # removed at once, as configured
    starts = [e for e in ledger.entries() if e["event"] == "start"]
    per_tick = Counter(e["job_id"] for e in starts)
    assert {k: v for k, v in per_tick.items() if v > 1} == {}
    seconds = int((window_end - window_start).total_seconds())
    assert seconds >= 55
    for schedule in schedules:
        expected = {
            fire_id(schedule.id, window_start + timedelta(seconds=s)) for s in range(seconds + 1)
        }
        missing = sorted(expected - set(per_tick))
        assert missing == [], f"schedule {schedule.id}: {len(missing)} ticks missing"
    # the largest gap between consecutive ticks of a schedule after the kill
    for schedule in schedules:
        ticks = sorted(
            e["t"]
            for e in starts
            if e["job_id"].startswith(f"sched-{schedule.id}-") and e["t"] > killed_at - 1
        )
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert max(gaps) < 2.0, f"gap of {max(gaps):.2f} s after the kill"
