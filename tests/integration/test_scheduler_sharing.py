"""Replicas share the schedules (rendezvous ownership from the heartbeats) and settle whole
batches in one transaction, and each tick still fires exactly once: the owners fire on time, a
dead owner's ticks fire after the backup delay, and a batch that races another settle commits
nothing and is settled again one schedule at a time. Real Redis, real TaskSchedulers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from corral import JobQueueManager
from corral.core.schedules import FirePlan, ScheduledJob, fire_id, plan_fire
from corral.scheduler import TaskScheduler
from corral.services.firing import spec_for_schedule
from corral.services.scheduling import BACKUP_DELAY_S, LIVE_POLLS, SchedulerLoop
from corral.settings import CorralSettings
from tests.integration.test_scheduler import FakeClock
from tests.support.schedules import every_second_schedules
from tests.support.waiting import eventually


@pytest.fixture
async def admin(settings: CorralSettings) -> AsyncIterator[TaskScheduler]:
    """Creates the schedules (on the test's SQLite store); never fires."""
    async with TaskScheduler(settings, handlers=["tests.support.it_handlers"]) as scheduler:
        await scheduler._rt.migrate()
        yield scheduler


async def _every_second(admin: TaskScheduler, count: int) -> list[ScheduledJob]:
    # Nothing consumes the jobs here: the ledger stays empty, the jobs' timestamps tell.
    return await every_second_schedules(admin, "unused-ledger", count)


async def _fired(qm: JobQueueManager) -> dict[str, int]:
    """Every queued job id -> its creation time (ms): when its tick was committed."""
    queue = await qm._rt.queue()
    jobs = await queue._queue.getJobs(["waiting", "prioritized", "delayed", "active"], 0, -1)
    return {str(j.id): int(j.timestamp) for j in jobs}


def _lateness_ms(fired: dict[str, int], schedule: ScheduledJob, tick: datetime) -> int | None:
    stamp = fired.get(fire_id(schedule.id, tick))
    return None if stamp is None else stamp - int(tick.timestamp() * 1000)


def _ticks(start: datetime, end: datetime) -> Iterator[datetime]:
    tick = start
    while tick <= end:
        yield tick
        tick += timedelta(seconds=1)


def _now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@contextlib.asynccontextmanager
async def _ghost(settings: CorralSettings, redis_url: str) -> AsyncIterator[Callable[[], None]]:
    """A replica that sends heartbeats and never fires anything (a stalled process); calling
    the yielded function kills it (its heartbeats stop)."""
    client = redis.Redis.from_url(redis_url)
    key = f"{settings.prefix}:{settings.queue}:corral:schedulers"
    alive = True

    async def beat() -> None:
        while alive:
            client.zadd(key, {"ghost": int(time.time() * 1000)})
            await asyncio.sleep(0.25)

    def kill() -> None:
        nonlocal alive
        alive = False

    task = asyncio.create_task(beat())
    try:
        yield kill
    finally:
        kill()
        await task
        client.zrem(key, "ghost")
        client.close()


def promise_key(settings: CorralSettings, scheduler_id: str) -> str:
    return f"{settings.prefix}:{settings.queue}:corral:schedulers:promise:{scheduler_id}"


@contextlib.asynccontextmanager
async def replicas(settings: CorralSettings, count: int) -> AsyncIterator[list[TaskScheduler]]:
    """``count`` more scheduler replicas, started, each seeing all the others; closed after."""
    started = [TaskScheduler(settings) for _ in range(count)]
    try:
        for replica in started:
            await replica.initialize()
        for replica in started:
            await _members(replica, count)
        yield started
    finally:
        for replica in started:
            await replica.close()


async def _members(replica: TaskScheduler, count: int) -> None:
    """Wait until the replica sees ``count`` live replicas (itself included)."""
    loop = replica.loop
    assert loop is not None

    async def members() -> int:
        return len(loop.members)

    await eventually(members, until=lambda n: n == count, timeout_s=10)


async def _beside_ghost(
    replica: TaskScheduler, schedules: Sequence[ScheduledJob]
) -> tuple[SchedulerLoop, list[ScheduledJob]]:
    """Start ``replica`` beside a ghost (see :func:`_ghost`): its loop and the ghost's share."""
    await replica.initialize()
    loop = replica.loop
    assert loop is not None
    await _members(replica, 2)
    ghosts = [s for s in schedules if not loop.owns(s.id)]
    assert ghosts, "some schedules belong to the ghost (rendezvous split of 10)"
    return loop, ghosts


@pytest.mark.timeout(120)
async def test_three_replicas_split_the_schedules_and_fire_each_tick_once(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager
) -> None:
    schedules = await _every_second(admin, 12)
    replicas = [TaskScheduler(settings) for _ in range(3)]
    for replica in replicas:
        await replica.initialize()
    try:
        for replica in replicas:
            await _members(replica, 3)
        window_start = _now_s() + timedelta(seconds=2)
        await asyncio.sleep(8)
        window_end = _now_s() - timedelta(seconds=2)
        # Who owns what while all three live: once the first replica closes, the others
        # (rightly) share its schedules between them.
        loops = [r.loop for r in replicas if r.loop is not None]
        owners = [[loop.owns(s.id) for loop in loops].count(True) for s in schedules]
        owned = [sum(loop.owns(s.id) for s in schedules) for loop in loops]
        print("owned per replica:", owned)
    finally:
        for replica in replicas:
            await replica.close()
    assert owners == [1] * len(schedules), "every schedule has exactly one owner"
    fired = await _fired(qm)
    late: list[int] = []
    for schedule in schedules:
        for tick in _ticks(window_start, window_end):
            lateness = _lateness_ms(fired, schedule, tick)
            assert lateness is not None, f"tick {tick} of {schedule.name} never fired"
            late.append(lateness)
    print("lateness ms, max:", max(late), "fired per replica:", [x.stats.fired for x in loops])
    # Every replica did its share. How late the owners fire is the benchmark's to measure
    # (bench/schedules.py): on a loaded CI machine an owner can be late enough for a backup.
    # A share can be empty: rendezvous hashing gives one of three replicas none of 12
    # schedules about once in 40 runs (3 x (2/3)^12), as CI saw once ([6, 6, 0]).
    assert all(loop.stats.fired > 0 for loop, mine in zip(loops, owned, strict=True) if mine)
    assert sum(1 for mine in owned if mine) >= 2
    stats = await admin.stats()
    assert stats["cluster"]["fired"] == len(fired), "one commit per job: no tick fired twice"
    assert sum(loop.stats.fired for loop in loops) == len(fired)


@pytest.mark.timeout(120)
async def test_a_dead_owners_ticks_fire_after_the_backup_delay_then_move(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager, redis_url: str
) -> None:
    schedules = await _every_second(admin, 10)
    replica = TaskScheduler(settings)
    async with _ghost(settings, redis_url) as kill_ghost:
        _, ghosts = await _beside_ghost(replica, schedules)
        try:
            window_start = _now_s() + timedelta(seconds=2)
            await asyncio.sleep(5)
            window_end = _now_s() - timedelta(seconds=1)
            kill_ghost()
            await _members(replica, 1)  # its heartbeat went stale: the ghost is gone
            taken_over = _now_s() + timedelta(seconds=2)
            await asyncio.sleep(4)
            taken_end = _now_s() - timedelta(seconds=1)
        finally:
            await replica.close()
    fired = await _fired(qm)
    delay_ms = BACKUP_DELAY_S * 1000
    for schedule in schedules:
        ticks = list(_ticks(window_start, window_end))
        late = [_lateness_ms(fired, schedule, t) for t in ticks]
        assert None not in late, f"{schedule.name}: every tick fired while the ghost lived"
        print(schedule.name, "ghost's" if schedule in ghosts else "own", late)
        for ms in late:
            assert ms is not None
            if schedule in ghosts:
                assert ms >= delay_ms, "fired by the backup, never before the delay"
        # After the ghost's heartbeat went stale, this replica owns everything.
        after = [_lateness_ms(fired, schedule, t) for t in _ticks(taken_over, taken_end)]
        assert None not in after
    assert replica.loop is not None
    assert replica.loop.stats.backup_fires >= len(ghosts) * len(ticks)
    assert (await admin.stats())["cluster"]["fired"] == len(fired)
    assert LIVE_POLLS * replica.loop.poll_s <= 5  # the ghost left within a few seconds


def _requests(
    schedules: Sequence[ScheduledJob], now: datetime
) -> list[tuple[Any, Callable[[datetime | None], FirePlan], Any]]:
    def decider(schedule: ScheduledJob) -> Callable[[datetime | None], FirePlan]:
        return lambda wm: plan_fire(schedule, watermark=wm, now=now)

    return [(s.id, decider(s), lambda tick, s=s: spec_for_schedule(s, tick)) for s in schedules]


async def test_a_batch_settle_racing_single_settles_fires_each_tick_once(
    admin: TaskScheduler, qm: JobQueueManager
) -> None:
    """Two replicas' views of the same due ticks: one settles them as a batch, the other one
    by one, at the same time, tick after tick. Each tick is committed by exactly one of them."""
    start = _now_s() - timedelta(seconds=30)
    admin.clock = FakeClock(start)
    schedules = await _every_second(admin, 16)
    gate = await admin._rt.fire_gate()
    conflicts = 0
    for second in range(1, 9):
        now = start + timedelta(seconds=second, milliseconds=200)
        requests = _requests(schedules, now)

        async def batch(requests: list[Any] = requests) -> list[Any]:
            nonlocal conflicts
            outcomes = await gate.settle_many(requests)
            if outcomes is None:  # lost the race: settle one by one, as the loop does
                conflicts += 1
                return [await gate.settle(*r) for r in requests]
            return list(outcomes)

        singles = [gate.settle(*r) for r in reversed(requests)]
        results = await asyncio.gather(batch(), *singles)
        outcomes = [*results[0], *results[1:]]
        settled = [r[0] for r in (*requests, *reversed(requests))]
        tick = start + timedelta(seconds=second)
        for schedule in schedules:
            commits = [
                o
                for o, sid in zip(outcomes, settled, strict=True)
                if sid == schedule.id and o.fired
            ]
            assert [o.fired for o in commits] == [tick], f"{schedule.name}: tick {second} once"
    print("batch conflicts:", conflicts)
    fired = await _fired(qm)
    assert len(fired) == 16 * 8
    assert (await admin.stats())["cluster"]["fired"] == 16 * 8


async def test_a_batch_that_loses_a_race_writes_nothing(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager, redis_url: str
) -> None:
    """Another replica settles one schedule of the batch between its read and its EXEC: the
    whole batch commits nothing (None), not even the owner's promise that rides in the same
    transaction, and settling one by one then fires the rest."""
    start = _now_s() - timedelta(seconds=30)
    admin.clock = FakeClock(start)
    schedules = await _every_second(admin, 5)
    gate = await admin._rt.fire_gate()
    now = start + timedelta(seconds=1, milliseconds=100)
    tick = start + timedelta(seconds=1)
    other = redis.Redis.from_url(redis_url)
    requests = _requests(schedules, now)
    raced = schedules[2]
    racing = requests[2]

    def decide_and_race(wm: datetime | None) -> FirePlan:
        other.set(gate._key(raced.id), int(tick.timestamp() * 1000))  # the other replica won
        return racing[1](wm)

    requests[2] = (racing[0], decide_and_race, racing[2])
    try:
        assert await gate.settle_many(requests, promise=("me", lambda _: "lost")) is None
        assert other.get(promise_key(settings, "me")) is None
        assert await _fired(qm) == {}
        marks = await gate.watermarks([s.id for s in schedules])
        assert marks == [None, None, tick, None, None], "only the other replica's write"
        outcomes = [await gate.settle(*r) for r in _requests(schedules, now)]
    finally:
        other.close()
    assert [o.fired for o in outcomes] == [tick, tick, None, tick, tick]
    assert sorted(await _fired(qm)) == sorted(
        fire_id(s.id, tick) for s in schedules if s is not raced
    )
    assert (await admin.stats())["cluster"]["fired"] == 4


@pytest.mark.timeout(60)
async def test_the_loop_settles_a_conflicting_batch_one_by_one(
    settings: CorralSettings, admin: TaskScheduler, qm: JobQueueManager, redis_url: str
) -> None:
    """The loop's batch loses a race (another writer claims one tick mid-batch): the loop
    settles that batch's schedules one by one and every other tick still fires."""
    schedules = await _every_second(admin, 6)
    replica = TaskScheduler(settings)
    real = replica._rt.fire_gate
    other = redis.Redis.from_url(redis_url)
    raced: list[str] = []

    class RacingGate:
        def __init__(self, gate: Any) -> None:
            self.gate = gate

        async def settle_many(self, requests: Sequence[Any], **kwargs: Any) -> Any:
            if raced or len(requests) < 2:
                return await self.gate.settle_many(requests, **kwargs)
            schedule_id, decide, spec_for = requests[0]

            def decide_and_race(wm: datetime | None) -> FirePlan:
                plan: FirePlan = decide(wm)
                if plan.fire is not None:  # another replica commits this tick first
                    key = self.gate._key(schedule_id)
                    other.set(key, int(plan.fire.timestamp() * 1000))
                    raced.append(fire_id(schedule_id, plan.fire))
                return plan

            return await self.gate.settle_many(
                [(schedule_id, decide_and_race, spec_for), *requests[1:]], **kwargs
            )

        def __getattr__(self, name: str) -> Any:
            return getattr(self.gate, name)

    async def racing_gate() -> Any:
        return RacingGate(await real())

    replica._rt.fire_gate = racing_gate  # type: ignore[method-assign]
    try:
        await replica.initialize()
        loop = replica.loop
        assert loop is not None

        async def conflicts() -> int:
            return loop.stats.batch_conflicts

        await eventually(conflicts, until=bool, timeout_s=10)
        window_start = _now_s() + timedelta(seconds=1)
        await asyncio.sleep(3)
        window_end = _now_s() - timedelta(seconds=1)
    finally:
        await replica.close()
        other.close()
    fired = await _fired(qm)
    assert len(raced) == 1
    assert raced[0] not in fired, "the tick the other writer claimed did not fire here"
    for schedule in schedules:
        for tick in _ticks(window_start, window_end):
            assert _lateness_ms(fired, schedule, tick) is not None
    assert loop.stats.batch_conflicts == 1
    assert (await admin.stats())["cluster"]["fired"] == len(fired)
