"""TaskScheduler on the real Redis and a real SQLite store: exactly-once fires, misfires,
live changes, manual triggers."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from corral import JobQueueManager
from corral.core.jobs import Retention
from corral.core.schedules import ScheduleStatus, fire_id
from corral.errors import ValidationError
from corral.scheduler import TaskScheduler
from corral.settings import CorralSettings
from tests.support.schedules import every_second_schedules, tick_report
from tests.support.waiting import eventually

HANDLERS = "tests.support.it_handlers"


@pytest.fixture
def sched_settings(settings: CorralSettings, tmp_path: Path) -> CorralSettings:
    from corral.settings import Secret

    url = f"sqlite+aiosqlite:///{tmp_path / 'corral.db'}"
    return settings.replace(**{"database_url": Secret(url)})


@pytest.fixture
async def admin(sched_settings: CorralSettings) -> AsyncIterator[TaskScheduler]:
    """A TaskScheduler used only to manage schedules (not firing)."""
    scheduler = TaskScheduler(sched_settings, handlers=[HANDLERS])
    await scheduler._rt.migrate()
    yield scheduler
    await scheduler.close()


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def _job_ids(qm: JobQueueManager) -> list[str]:
    queue = await qm._rt.queue()
    ids: set[str] = set()
    for state in ("waiting", "prioritized", "active", "completed", "failed", "delayed"):
        jobs = await queue._queue.getJobs([state], 0, -1)
        ids.update(str(j.id) for j in jobs)
    return sorted(ids)


async def test_create_validates_and_names_the_field(admin: TaskScheduler) -> None:
    with pytest.raises(ValidationError) as err:
        await admin.create(
            name="x", handler_name="record", cron_expression="60 * * * * *", domain="d"
        )
    assert err.value.path == "cron_expression"
    assert "second field" in err.value.problem
    with pytest.raises(ValidationError) as err:
        await admin.create(name="x", handler_name="nope", cron_expression="* * * * * *", domain="d")
    assert err.value.path == "handler_name"
    assert "no handler named 'nope' is registered" in str(err.value)
    assert (await admin.list())[1] == 0


async def test_preview_follows_the_zone(admin: TaskScheduler) -> None:
    after = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    fires = admin.preview("0 30 2 * * *", "America/New_York", 2, after=after)
    assert fires == [
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),
    ]
    with pytest.raises(ValidationError) as err:
        admin.preview("0 0 0 30 2 *", "UTC")
    assert err.value.path == "cron_expression"
    with pytest.raises(ValidationError) as err:
        admin.preview("* * * * * *", "Mars/Olympus")
    assert err.value.path == "timezone"


async def test_misfires_coalesce_into_one_catch_up_run(
    sched_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """All schedulers down for 30 s: one run for the latest missed tick; 29 counted skipped."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    clock = FakeClock(start)
    admin.clock = clock
    job = await admin.create(
        name="every second",
        handler_name="noop",
        cron_expression="* * * * * *",
        domain="test",
        timezone="UTC",
    )
    first = TaskScheduler(sched_settings, clock=clock)
    clock.now = start + timedelta(seconds=1)
    await first.initialize()
    await eventually(lambda: _job_ids(qm), until=lambda ids: len(ids) == 1)
    await first.close()
    clock.now = start + timedelta(seconds=31)  # 30 ticks missed: 2..31
    second = TaskScheduler(sched_settings, clock=clock)
    await second.initialize()
    ids = await eventually(lambda: _job_ids(qm), until=lambda ids: len(ids) == 2)
    await second.close()
    assert sorted(ids) == sorted(
        [
            fire_id(job.id, start + timedelta(seconds=1)),
            fire_id(job.id, start + timedelta(seconds=31)),
        ]
    )
    stats = await admin.stats()
    assert stats["cluster"]["missed"] == 29
    assert stats["cluster"]["fired"] == 2


async def test_ticks_older_than_the_window_are_skipped(
    sched_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(start)
    admin.clock = clock
    await admin.create(
        name="daily",
        handler_name="noop",
        cron_expression="0 0 2 * * *",
        domain="test",
        timezone="UTC",
        catch_up_ms=3_600_000,
    )
    # jump 3 days ahead: every 02:00 tick is more than an hour old unless it is within the hour
    clock.now = start.replace(hour=5) + timedelta(days=3)
    scheduler = TaskScheduler(sched_settings, clock=clock)
    await scheduler.initialize()
    await eventually(scheduler.stats, until=lambda s: s["cluster"]["missed"] >= 3)
    await scheduler.close()
    assert await _job_ids(qm) == []


async def test_live_changes_reach_a_running_scheduler(
    sched_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    scheduler = TaskScheduler(sched_settings)
    await scheduler.initialize()
    try:
        job = await admin.create(
            name="live",
            handler_name="noop",
            cron_expression="* * * * * *",
            domain="test",
            timezone="UTC",
        )
        created = asyncio.get_running_loop().time()
        await eventually(lambda: _job_ids(qm), until=lambda ids: len(ids) >= 1, timeout_s=5)
        first_fire_after = asyncio.get_running_loop().time() - created
        print(f"create -> first fire: {first_fire_after:.2f} s")
        assert first_fire_after < 3  # 2 s propagation + up to 1 s to the next tick

        await admin.set_status(job.id, ScheduleStatus.PAUSED)
        paused_at = datetime.now(UTC)
        await asyncio.sleep(2.5)  # let the change propagate (the bound under test is 2 s)
        ids = await _job_ids(qm)
        fired_after = [i for i in ids if int(i.rsplit("-", 1)[1]) > paused_at.timestamp() + 2]
        assert fired_after == []

        await admin.update(job.id, status=1, cron_expression="*/2 * * * * *")
        resumed_at = datetime.now(UTC)
        await eventually(lambda: _job_ids(qm), until=lambda new: len(new) > len(ids), timeout_s=5)
        new_ids = [i for i in await _job_ids(qm) if i not in ids]
        assert all(int(i.rsplit("-", 1)[1]) % 2 == 0 for i in new_ids)
        assert all(int(i.rsplit("-", 1)[1]) >= int(resumed_at.timestamp()) for i in new_ids)

        await admin.delete(job.id)
        deleted_at = datetime.now(UTC)
        await asyncio.sleep(2.5)
        late = [
            i for i in await _job_ids(qm) if int(i.rsplit("-", 1)[1]) > deleted_at.timestamp() + 2
        ]
        assert late == []
    finally:
        await scheduler.close()


async def test_trigger_now_enqueues_one_manual_run(
    admin: TaskScheduler, qm: JobQueueManager
) -> None:
    job = await admin.create(
        name="manual", handler_name="noop", cron_expression="0 0 2 * * *", domain="test", status=0
    )
    job_id = await admin.trigger_now(job.id)
    assert job_id.startswith(f"manual-{job.id}-")
    assert await _job_ids(qm) == [job_id]


async def test_trigger_now_uses_the_schedulers_clock(
    admin: TaskScheduler, qm: JobQueueManager
) -> None:
    job = await admin.create(
        name="manual", handler_name="noop", cron_expression="0 0 2 * * *", domain="test", status=0
    )
    at = datetime(2031, 5, 4, 3, 2, 1, 250_000, tzinfo=UTC)
    admin.clock = FakeClock(at)
    job_id = await admin.trigger_now(job.id)
    assert job_id == f"manual-{job.id}-{int(at.timestamp() * 1000)}"
    assert await _job_ids(qm) == [job_id]


@pytest.mark.timeout(120)
async def test_three_schedulers_fire_each_tick_exactly_once(
    sched_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager, ledger: Any
) -> None:
    """S1 (in-process variant): 3 schedulers, 5 schedules of `* * * * * *`, jobs removed as soon
    as they complete, so only the watermark can prevent a second fire."""
    schedules = await every_second_schedules(admin, ledger.name, 5)
    await qm.start_worker(concurrency=20)
    replicas = [TaskScheduler(sched_settings, keep_completed=Retention(count=0)) for _ in range(3)]
    for replica in replicas:
        await replica.initialize()
    window_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    await asyncio.sleep(20)
    window_end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    for replica in replicas:
        await replica.close()
    await asyncio.sleep(1)
    report = tick_report(ledger.entries(), schedules, window_start, window_end)
    assert report.duplicates == {}
    assert report.missing == {}, "ticks that never fired, per schedule"
    stats = [r.loop.stats for r in replicas if r.loop is not None]
    print(
        "fired per replica:",
        [s.fired for s in stats],
        "max lateness ms:",
        [round(s.lateness_ms_max) for s in stats],
    )


async def test_direct_database_edit_reaches_a_running_scheduler(
    sched_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """A change made with plain SQL (no nudge, updated_at untouched) is seen by the poll."""
    from sqlalchemy import text

    job = await admin.create(
        name="sql-edited",
        handler_name="noop",
        cron_expression="* * * * * *",
        domain="test",
        timezone="UTC",
    )
    scheduler = TaskScheduler(sched_settings)
    await scheduler.initialize()
    try:
        await eventually(lambda: _job_ids(qm), until=lambda ids: len(ids) >= 1, timeout_s=5)
        engine = admin._rt._sql_engine()
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE system_scheduled_jobs SET status = 0 WHERE id = :id"),
                {"id": job.id.hex},
            )
        edited_at = datetime.now(UTC)
        await asyncio.sleep(3)
        late = [
            i for i in await _job_ids(qm) if int(i.rsplit("-", 1)[1]) > edited_at.timestamp() + 2
        ]
        assert late == []
    finally:
        await scheduler.close()


async def test_heartbeats_carry_the_clock_skew_against_redis(
    sched_settings: CorralSettings, redis_url: str, queue_name: str
) -> None:
    scheduler = TaskScheduler(sched_settings)
    await scheduler._rt.migrate()
    await scheduler.initialize()
    assert scheduler.loop is not None
    queue = await scheduler._rt.queue()
    skews = await queue.scheduler_clock_skews()
    # Same machine, same clock: the skew is the measuring error, well under the 1 s warning.
    assert list(skews) == [scheduler.loop.id]
    assert abs(skews[scheduler.loop.id]) < 0.5
    assert scheduler.loop.clock_skew_s is not None
    await scheduler.close()
    client = redis.Redis.from_url(redis_url)
    try:  # a scheduler that stops takes its skew with it
        assert client.keys(f"corraltest:{queue_name}:corral:schedulers:skew:*") == []
    finally:
        client.close()


async def test_the_loaded_schedules_leave_the_collectors_sight(
    admin: TaskScheduler, sched_settings: CorralSettings
) -> None:
    """Once loaded, the schedules (and everything else from start-up) are frozen out of the
    garbage collector's full collections, which would otherwise walk them every few seconds."""
    await admin.create(
        name="frozen", handler_name="record", cron_expression="0 0 0 1 1 *", domain="test"
    )
    gc.unfreeze()
    scheduler = TaskScheduler(sched_settings)
    try:
        await scheduler.initialize()
        assert gc.get_freeze_count() > 0
    finally:
        await scheduler.close()
        gc.unfreeze()


async def test_running_schedulers_send_heartbeats(sched_settings: CorralSettings) -> None:
    first, second = TaskScheduler(sched_settings), TaskScheduler(sched_settings)
    await first._rt.migrate()
    await first.initialize()
    await second.initialize()
    queue = await first._rt.queue()
    assert await queue.live_schedulers() == 2
    await second.close()
    assert await queue.live_schedulers() == 1
    await first.close()


def test_a_tick_costs_the_loop_at_most_two_waits_on_uvloop(sched_settings: CorralSettings) -> None:
    """uvloop (what ``corral scheduler`` runs on) keeps timers in whole milliseconds and may
    end a wait a fraction of a millisecond early; the loop then finds its tick not yet due and
    waits again. That second wait must reach the tick, not end at once again and again for the
    rest of the millisecond (a busy loop just before each tick)."""
    from corral.cli.loop import run
    from corral.services.scheduling import SchedulerLoop, utc_now

    async def main() -> list[int]:
        scheduler = TaskScheduler(sched_settings)
        try:
            loop = SchedulerLoop(scheduler._rt.store(), await scheduler._rt.fire_gate())
            stop = asyncio.Event()
            waits: list[int] = []
            for i in range(150):
                until = utc_now() + timedelta(milliseconds=5, microseconds=137 * i % 1000)
                count = 0
                while utc_now() < until:  # as the loop does: wait again until the tick is due
                    count += 1
                    await loop._wait(stop, until)
                waits.append(count)
            return waits
        finally:
            await scheduler.close()

    waits = run(main(), use_uvloop=True)
    assert max(waits) <= 2, f"waits per tick: {sorted(waits)[-5:]}"
