"""S3: every scheduler down for 30 s, then back.

Three ``corral scheduler`` processes fire three 1-second schedules into an in-process worker
whose handler writes a ledger; all three are stopped for ``OUTAGE_S`` and started again. Must
hold, per schedule: exactly one catch-up run (for the latest missed tick) and one ``missed``
execution-log row for the ticks before it (how many, the oldest, the newest), no tick run
twice, and every tick of the whole run either run once or inside exactly one missed row.

The other half of S3 (a daily tick 3 h into a 1 h catch-up window: skipped, counted, logged,
never run) needs a clock three hours ahead, so it runs in-process with an injected clock:
``tests/integration/test_missed_ticks.py::test_a_daily_tick_past_its_window_is_skipped_counted_and_logged``.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corral import JobQueueManager
from corral.core.executions import ExecutionRecord, MissedTicks, missed_ticks
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery
from corral.core.schedules import ScheduledJob, fire_id
from corral.scheduler import TaskScheduler
from tests.support.processes import corral_env, scheduler_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault

OUTAGE_S = 30
SCHEDULES = 3
REPLICAS = 3
RUN_S = 6  # before the outage and after the return


def _tick(job_id: str) -> int:
    return int(job_id.rsplit("-", 1)[1])


async def _missed_rows(qm: JobQueueManager, schedule: ScheduledJob) -> list[ExecutionRecord]:
    rows, _ = await qm._rt.execution_log().search(
        ExecutionQuery(job_id=schedule.id, status=JobExecutionStatus.MISSED, limit=500)
    )
    return rows


def _stop_all(procs: list[Any]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)


@pytest.mark.timeout(240)
async def test_all_schedulers_down_then_back(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, ledger: Any
) -> None:
    admin = TaskScheduler(qm.settings, handlers=["tests.support.it_handlers"])
    schedules = [
        await admin.create(
            name=f"s3-{i}",
            handler_name="record",
            cron_expression="* * * * * *",
            domain="test",
            timezone="UTC",
            payload={"ledger": ledger.name},
        )
        for i in range(SCHEDULES)
    ]
    await qm.start_worker(concurrency=20)
    env = corral_env(redis_url, queue_name, database_url)

    live_schedulers = (await qm.runtime.monitor()).live_schedulers

    # -- up, down for OUTAGE_S, up again ------------------------------------------------------
    with ExitStack() as stack:
        procs = [stack.enter_context(scheduler_process(env)) for _ in range(REPLICAS)]
        await eventually(live_schedulers, until=lambda n: n == REPLICAS, timeout_s=60)
        await asyncio.sleep(RUN_S)
        _stop_all(procs)
    down_at = datetime.now(UTC)
    await eventually(live_schedulers, until=lambda n: not n, timeout_s=10)
    await asyncio.sleep(OUTAGE_S)
    with ExitStack() as stack:
        procs = [stack.enter_context(scheduler_process(env)) for _ in range(REPLICAS)]
        await eventually(live_schedulers, until=lambda n: n == REPLICAS, timeout_s=60)
        back_at = datetime.now(UTC)
        await asyncio.sleep(RUN_S)
        _stop_all(procs)  # a clean stop flushes their execution-log rows
    await eventually(
        qm.get_queue_status,
        until=lambda s: s["counts"].get("waiting", 0) + s["counts"].get("active", 0) == 0,
        timeout_s=30,
    )
    stats = await admin.stats()
    await admin.close()

    # -- what ran, what was skipped -----------------------------------------------------------
    starts = [e for e in ledger.entries() if e["event"] == "start"]
    per_job = Counter(str(e["job_id"]) for e in starts)
    assert {k: v for k, v in per_job.items() if v > 1} == {}, "a tick ran twice"
    total_missed = 0
    for schedule in schedules:
        prefix = f"sched-{schedule.id}-"
        ran = sorted(_tick(j) for j in per_job if j.startswith(prefix))
        assert all(fire_id(schedule.id, datetime.fromtimestamp(t, UTC)) in per_job for t in ran)
        rows = await _missed_rows(qm, schedule)
        ranges = [m for m in (missed_ticks(r) for r in rows) if m is not None]
        assert len(ranges) == len(rows)
        skipped = [
            int(m.first.timestamp()) + s
            for m in ranges
            for s in range(int((m.last - m.first).total_seconds()) + 1)
        ]
        assert all(m.count == (m.last - m.first).total_seconds() + 1 for m in ranges)
        # every tick from the first to the last settled one ran once or was skipped once
        first = int(schedule.updated_at.timestamp()) + 1
        last = max([*ran, *skipped])
        assert Counter(ran + skipped) == Counter(range(first, last + 1))
        # the outage: one range, ended by one catch-up run for the tick just after it
        before = max(t for t in ran if t <= down_at.timestamp())
        catch_up = min(t for t in ran if t > before)
        outage = [m for m in ranges if before < m.first.timestamp() < catch_up]
        figures = [(m.count, m.first.isoformat(), m.last.isoformat()) for m in ranges]
        print(
            f"schedule {schedule.id}: ran {len(ran)} ticks; last before the outage {before}, "
            f"catch-up run {catch_up}; missed rows (count, first, last): {figures}"
        )
        assert outage == [
            MissedTicks(
                count=catch_up - before - 1,
                first=datetime.fromtimestamp(before + 1, UTC),
                last=datetime.fromtimestamp(catch_up - 1, UTC),
            )
        ]
        assert catch_up - before - 1 >= OUTAGE_S - 1
        total_missed += sum(m.count for m in ranges)
    print("cluster:", stats["cluster"], "missed in rows:", total_missed)
    assert stats["cluster"]["missed"] == total_missed
    assert stats["cluster"]["fired"] == len(per_job)
    assert timedelta(0) < back_at - down_at
