"""Replicas trust each other's promises: a replica whose promise goes stale (it stopped
getting past its ticks, though its heartbeat goes on) has its ticks fired by another after the
backup delay; and a change made behind Corral's back reaches every replica, not only the one
that polls the store. Real Redis, real TaskSchedulers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis

from corral import JobQueueManager
from corral.core.ownership import promise_text
from corral.scheduler import TaskScheduler
from corral.services.scheduling import BACKUP_DELAY_S
from corral.settings import CorralSettings
from tests.integration.test_scheduler_sharing import (
    _beside_ghost,
    _every_second,
    _fired,
    _ghost,
    _lateness_ms,
    _members,
    _now_s,
    _ticks,
)


@pytest.fixture
async def admin(settings: CorralSettings) -> AsyncIterator[TaskScheduler]:
    async with TaskScheduler(settings, handlers=["tests.support.it_handlers"]) as scheduler:
        await scheduler._rt.migrate()
        yield scheduler


@pytest.mark.timeout(120)
async def test_a_replica_whose_promise_goes_stale_is_covered_after_the_delay(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager, redis_url: str
) -> None:
    schedules = await _every_second(admin, 10)
    replica = TaskScheduler(settings)
    client = redis.Redis.from_url(redis_url)
    key = f"{settings.prefix}:{settings.queue}:corral:schedulers:promise:ghost"
    async with _ghost(settings, redis_url):
        loop, ghosts = await _beside_ghost(replica, schedules)
        try:
            # The ghost promises, from this replica's view, that its next tick is 2 s off,
            # and then never gets past it (its heartbeat goes on).
            promised = _now_s() + timedelta(seconds=2)
            promise = promise_text(int(promised.timestamp() * 1000), loop.promises.view)
            client.set(key, promise, px=60_000)
            await asyncio.sleep(0.5)
            assert "ghost" not in loop.promises.covered, "trusted while its promise holds"
            checks_while_trusted = loop.stats.backup_checks
            await asyncio.sleep(max(0.0, promised.timestamp() - time.time()))
            assert loop.stats.backup_checks == checks_while_trusted, "nothing to check"
            await asyncio.sleep(4)
            assert "ghost" in loop.promises.covered
            window_end = _now_s() - timedelta(seconds=1)
        finally:
            await replica.close()
            client.delete(key)
            client.close()
    fired = await _fired(qm)
    delay_ms = BACKUP_DELAY_S * 1000
    for schedule in ghosts:
        late = [_lateness_ms(fired, schedule, t) for t in _ticks(promised, window_end)]
        print(schedule.name, late)
        assert None not in late, f"{schedule.name}: the stale owner's ticks fired"
        assert all(ms is not None and ms >= delay_ms for ms in late), "by the backup, late"
    assert loop.stats.backup_fires >= len(ghosts)
    assert (await admin.stats())["cluster"]["fired"] == len(fired)


@pytest.mark.timeout(120)
async def test_a_direct_database_edit_reaches_every_replica(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """One replica polls the store every second and nudges the others when it sees a change
    made with plain SQL (no nudge of its own): no replica fires the disabled schedules."""
    from sqlalchemy import text

    schedules = await _every_second(admin, 8)
    replicas = [TaskScheduler(settings) for _ in range(2)]
    for replica in replicas:
        await replica.initialize()
    try:
        for replica in replicas:
            await _members(replica, 2)
        await asyncio.sleep(1)
        loops = [r.loop for r in replicas if r.loop is not None]
        assert all(loop.stats.fired > 0 for loop in loops), "both replicas fire their share"
        engine = admin._rt._sql_engine()
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE system_scheduled_jobs SET status = 0"))
        edited_at = _now_s()
        await asyncio.sleep(3.5)
    finally:
        for replica in replicas:
            await replica.close()
    fired = await _fired(qm)
    late = [
        job_id
        for job_id in fired
        if int(job_id.rsplit("-", 1)[1]) > edited_at.timestamp() + 2
        and any(str(s.id) in job_id for s in schedules)
    ]
    assert late == [], "a replica kept firing a schedule disabled with plain SQL"
