"""Skipped ticks are visible: a misfire's skipped range becomes ONE execution-log row (status
``missed``, how many ticks, the oldest and newest), written by the replica that committed the
skip, on SQLite and PostgreSQL. Real Redis, real TaskSchedulers with an injected clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from corral import JobQueueManager
from corral.core.executions import ExecutionRecord, MissedTicks, missed_ticks
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery
from corral.core.schedules import FirePlan, ScheduledJob, fire_id, missed_id, plan_fire
from corral.scheduler import TaskScheduler
from corral.services.firing import spec_for_schedule
from corral.settings import CorralSettings, Secret
from tests.integration.sql_conftest import PG_URL, require_postgres
from tests.integration.test_scheduler import FakeClock, _job_ids
from tests.support.waiting import eventually

HANDLERS = ["tests.support.it_handlers"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_settings(
    request: pytest.FixtureRequest, settings: CorralSettings, tmp_path: Path
) -> AsyncIterator[CorralSettings]:
    """The test's settings on a fresh SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'missed.db'}"
        yield settings.replace(**{"database_url": Secret(url)})
        return
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    root = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with root.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        yield settings.replace(**{"database_url": Secret(url)})
    finally:
        async with root.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await root.dispose()


@pytest.fixture
async def admin(db_settings: CorralSettings) -> AsyncIterator[TaskScheduler]:
    scheduler = TaskScheduler(db_settings, handlers=HANDLERS)
    await scheduler._rt.migrate()
    yield scheduler
    await scheduler.close()


async def _rows(admin: TaskScheduler, schedule: ScheduledJob) -> list[ExecutionRecord]:
    rows, _ = await admin.executions(ExecutionQuery(job_id=schedule.id, limit=500))
    return rows


def _missed(rows: list[ExecutionRecord]) -> list[ExecutionRecord]:
    return [r for r in rows if r.status == JobExecutionStatus.MISSED]


async def _every_second(admin: TaskScheduler, clock: FakeClock) -> ScheduledJob:
    admin.clock = clock
    return await admin.create(
        name="every second",
        handler_name="noop",
        cron_expression="* * * * * *",
        domain="test",
        timezone="UTC",
    )


async def test_a_coalesced_misfire_writes_one_missed_row(
    db_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """Down for 31 s: one run for the latest tick, and one row for the 30 ticks before it."""
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(start)
    schedule = await _every_second(admin, clock)
    clock.now = start + timedelta(seconds=31, milliseconds=300)
    scheduler = TaskScheduler(db_settings, clock=clock)
    await scheduler.initialize()
    await eventually(lambda: _job_ids(qm), until=lambda ids: len(ids) == 1)
    await scheduler.close()  # flushes the execution log
    rows = await _rows(admin, schedule)
    missed = _missed(rows)
    print("rows:", [(r.execution_id, r.status.value, r.result) for r in rows])
    assert await _job_ids(qm) == [fire_id(schedule.id, start + timedelta(seconds=31))]
    assert len(missed) == 1
    first, last = start + timedelta(seconds=1), start + timedelta(seconds=30)
    assert missed_ticks(missed[0]) == MissedTicks(count=30, first=first, last=last)
    assert missed[0].execution_id == missed_id(schedule.id, first)
    assert (missed[0].trigger, missed[0].handler_name) == ("schedule", "noop")
    assert (await admin.stats())["cluster"]["missed"] == 30


async def test_three_schedulers_settling_the_same_skip_write_one_row(
    db_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """Three replicas come back at once: one catch-up run, one missed row, not three."""
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(start)
    schedules = [await _every_second(admin, clock) for _ in range(3)]
    clock.now = start + timedelta(seconds=20, milliseconds=300)
    replicas = [TaskScheduler(db_settings, clock=clock) for _ in range(3)]
    await asyncio.gather(*(r.initialize() for r in replicas))
    await eventually(lambda: _job_ids(qm), until=lambda ids: len(ids) == 3)
    await asyncio.gather(*(r.close() for r in replicas))
    races = sum(r.loop.stats.lost_races for r in replicas if r.loop is not None)
    recorded = [r.loop.stats.skipped for r in replicas if r.loop is not None]
    print("skips recorded per replica:", recorded, "lost races:", races)
    assert sum(recorded) == 3 * 19
    assert sorted(await _job_ids(qm)) == sorted(
        fire_id(s.id, start + timedelta(seconds=20)) for s in schedules
    )
    for schedule in schedules:
        missed = _missed(await _rows(admin, schedule))
        assert [missed_ticks(r) for r in missed] == [
            MissedTicks(
                count=19, first=start + timedelta(seconds=1), last=start + timedelta(seconds=19)
            )
        ]


async def test_a_daily_tick_past_its_window_is_skipped_counted_and_logged(
    db_settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """S3's second half: a daily tick 3 h into a 1 h catch-up window is not run; it is one
    missed tick, in the stats and in the execution log."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    clock = FakeClock(midnight - timedelta(hours=1))
    admin.clock = clock
    schedule = await admin.create(
        name="daily",
        handler_name="noop",
        cron_expression="0 0 0 * * *",
        domain="test",
        timezone="UTC",
        catch_up_ms=3_600_000,
    )
    clock.now = midnight + timedelta(hours=3)
    replicas = [TaskScheduler(db_settings, clock=clock) for _ in range(2)]
    await asyncio.gather(*(r.initialize() for r in replicas))
    await eventually(admin.stats, until=lambda s: s["cluster"]["missed"] >= 1)
    await asyncio.gather(*(r.close() for r in replicas))
    stats = await admin.stats()
    missed = _missed(await _rows(admin, schedule))
    print("cluster:", stats["cluster"], "missed rows:", [r.result for r in missed])
    assert await _job_ids(qm) == []
    assert stats["cluster"]["missed"] == 1
    assert stats["cluster"]["fired"] == 0
    assert [missed_ticks(r) for r in missed] == [
        MissedTicks(count=1, first=midnight, last=midnight)
    ]


async def test_a_replica_that_loses_the_race_reports_no_skip(
    db_settings: CorralSettings, admin: TaskScheduler, redis_url: str
) -> None:
    """A replica decides a skip; before its EXEC another replica commits the same skip (here:
    writes the watermark it would have written). The EXEC fails, the replica decides again from
    the new watermark and reports nothing: only the committing replica writes the row."""
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(start)
    schedule = await _every_second(admin, clock)
    now = start + timedelta(seconds=40, milliseconds=300)
    gate = await admin._rt.fire_gate()
    other = redis.Redis.from_url(redis_url)
    decisions: list[FirePlan] = []

    def decide(watermark: datetime | None) -> FirePlan:
        plan = plan_fire(schedule, watermark=watermark, now=now)
        if not decisions:
            assert plan.watermark is not None
            other.set(gate._key(schedule.id), int(plan.watermark.timestamp() * 1000))
        decisions.append(plan)
        return plan

    try:
        outcome = await gate.settle(
            schedule.id, decide, lambda tick: spec_for_schedule(schedule, tick)
        )
    finally:
        other.close()
    print("decisions:", decisions, "\noutcome:", outcome)
    assert [d.skipped for d in decisions] == [39, 0]
    assert (outcome.skipped, outcome.fired, outcome.first_skipped) == (0, None, None)
    assert (await admin.stats())["cluster"]["missed"] == 0
