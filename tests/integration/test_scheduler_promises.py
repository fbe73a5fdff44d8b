"""Replicas trust each other's promises: a replica whose promise goes stale (it stopped
getting past its ticks, though its heartbeat goes on) has its ticks fired by another after the
backup delay; and a change made behind Corral's back reaches every replica, not only the one
that polls the store. Real Redis, real TaskSchedulers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any, cast

import pytest
import redis

from corral import JobQueueManager
from corral.core.ownership import promise_text
from corral.core.schedules import FirePlan
from corral.scheduler import TaskScheduler
from corral.services.scheduling import BACKUP_DELAY_S
from corral.settings import CorralSettings
from tests.integration.test_scheduler import FakeClock
from tests.integration.test_scheduler_sharing import (
    _beside_ghost,
    _every_second,
    _fired,
    _ghost,
    _lateness_ms,
    _now_s,
    _requests,
    _ticks,
    promise_key,
    replicas,
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
    async with replicas(settings, 2) as started:
        await asyncio.sleep(1)
        loops = [r.loop for r in started if r.loop is not None]
        assert all(loop.stats.fired > 0 for loop in loops), "both replicas fire their share"
        engine = admin._rt._sql_engine()
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE system_scheduled_jobs SET status = 0"))
        edited_at = _now_s()
        await asyncio.sleep(3.5)
    fired = await _fired(qm)
    late = [
        job_id
        for job_id in fired
        if int(job_id.rsplit("-", 1)[1]) > edited_at.timestamp() + 2
        and any(str(s.id) in job_id for s in schedules)
    ]
    assert late == [], "a replica kept firing a schedule disabled with plain SQL"


async def test_the_promise_is_written_in_the_batch_transaction(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager, redis_url: str
) -> None:
    """A batch that commits also writes the promise it is given, made from the batch's own
    plans, in the same MULTI/EXEC (no round trip of its own)."""
    start = _now_s() - timedelta(seconds=30)
    admin.clock = FakeClock(start)
    schedules = await _every_second(admin, 4)
    gate = await admin._rt.fire_gate()
    now = start + timedelta(seconds=1, milliseconds=100)
    seen: list[Sequence[FirePlan | None]] = []

    def promise_for(plans: Sequence[FirePlan | None]) -> str:
        seen.append(plans)
        return "promised-text"

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        outcomes = await gate.settle_many(_requests(schedules, now), promise=("me", promise_for))
        assert outcomes is not None
        assert [o.fired for o in outcomes] == [start + timedelta(seconds=1)] * 4
        assert [[p.fire if p else None for p in plans] for plans in seen] == [
            [start + timedelta(seconds=1)] * 4
        ]
        key = promise_key(settings, "me")
        assert client.get(key) == "promised-text"
        assert 0 < cast(int, client.pttl(key)) <= 5000, "expires like a heartbeat's promise"
        # Nothing to commit: no transaction, so no promise either (the loop writes its own).
        client.delete(key)
        outcomes = await gate.settle_many(_requests(schedules, now), promise=("me", promise_for))
        assert outcomes is not None
        assert all(o.fired is None for o in outcomes)
        assert client.get(key) is None
        assert len(seen) == 1
    finally:
        client.close()
    assert len(await _fired(qm)) == 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize("crons", [["* * * * * *"], ["*/2 * * * * *", "1-59/2 * * * * *"]])
async def test_a_steady_replica_publishes_its_promise_with_its_fires(
    settings: CorralSettings, admin: TaskScheduler, redis_url: str, crons: list[str]
) -> None:
    """Beside another replica, a replica firing every second moves its promise every second,
    inside the fires' transaction: no separate promise write once it is steady. With every
    schedule due each second, the promise comes from the batch's own next ticks; with the
    schedules on alternate seconds, from the other half, waiting on the heap."""
    schedules = [
        await admin.create(
            name=f"s{i}",
            handler_name="record",
            cron_expression=crons[i % len(crons)],
            domain="test",
            timezone="UTC",
            payload={"ledger": "unused-ledger"},
        )
        for i in range(20)
    ]
    replica = TaskScheduler(settings)
    real = replica._rt.fire_gate
    separate: list[str] = []

    class CountingGate:
        def __init__(self, gate: Any) -> None:
            self.gate = gate

        async def promise(self, scheduler_id: str, text: str) -> None:
            separate.append(text)
            await self.gate.promise(scheduler_id, text)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.gate, name)

    async def counting_gate() -> Any:
        return CountingGate(await real())

    replica._rt.fire_gate = counting_gate  # type: ignore[method-assign]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    async with _ghost(settings, redis_url):
        loop, _ = await _beside_ghost(replica, schedules)
        try:
            await asyncio.sleep(2)  # steady
            key = promise_key(settings, loop.id)
            before = len(separate)
            published: list[str | None] = []
            for _ in range(4):
                published.append(cast("str | None", client.get(key)))
                await asyncio.sleep(1)
            steady_writes = len(separate) - before
        finally:
            await replica.close()
            client.close()
    print("promises:", published, "separate writes:", steady_writes)
    assert len(set(published)) >= 2, "the promise moved as the replica fired"
    assert steady_writes == 0, "written with the fires, not in a round trip of its own"
    assert loop.stats.batch_conflicts == 0


@pytest.mark.timeout(120)
async def test_a_direct_edit_reaches_every_replica_when_the_nudge_is_lost(
    settings: CorralSettings, admin: TaskScheduler
) -> None:
    """The replica that polls the store publishes the change marker with its heartbeat; the
    others read it with theirs. So a change made with plain SQL reaches every replica within
    about two polls even when the poller's nudge over pub/sub is lost (here: never sent)."""
    from sqlalchemy import text

    await _every_second(admin, 4)
    async with replicas(settings, 2) as started:
        loops = [r.loop for r in started if r.loop is not None]
        for loop in loops:
            loop._announce = None  # the nudge is lost
        await asyncio.sleep(1.5)
        engine = admin._rt._sql_engine()
        reacted: list[list[float]] = []
        for status in (0, 1, 0, 1, 0):
            reloads = [loop.stats.reloads for loop in loops]
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE system_scheduled_jobs SET status = :status"), {"status": status}
                )
            edited = time.monotonic()
            took: list[float] = [0.0, 0.0]
            while time.monotonic() - edited < 10 and not all(took):
                await asyncio.sleep(0.02)
                for i, loop in enumerate(loops):
                    if not took[i] and loop.stats.reloads > reloads[i]:
                        took[i] = time.monotonic() - edited
            reacted.append(took)
    print("seconds to reload (each replica, each edit):", reacted)
    for took in reacted:
        # About 2 s measured (two polls); the bound leaves room for a loaded CI machine and is
        # still far below the 60 s a replica waits before it queries the store itself.
        assert all(0 < s <= 5 for s in took), f"a replica reloaded late or never: {reacted}"
