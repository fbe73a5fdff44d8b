"""Clock faults (reliability rows S5 and T3): `corral scheduler` processes whose wall clock is
wrong, stepped or running fast, under libfaketime (Debian package ``faketime``).

* S5: three replicas at -2 s, 0 and +2 s fire every 1-second tick exactly once, and none more
  than the skew before its time; one replica whose clock steps +1 h and back fires one
  coalesced catch-up run forward (the rest counted as missed) and nothing again backward, and
  keeps heartbeating; a replica 3 s ahead is reported by ``/health/ready``, ``/metrics`` and
  its own log.
* T3: one replica run at 120x speed across the 2026 New York fall-back hour enqueues exactly
  the ticks of the DST contract table (tests/unit/test_cron_dst_contract.py).

When each job was enqueued is read from Redis's own clock: BullMQ's add script appends an
``added`` event to the queue's event stream, and a stream entry id is Redis's time in ms. Redis's
clock is the machine's real one (libfaketime only fakes the scheduler processes).

A real clock step moves the wall clock only, so the skew and step tests leave the monotonic
clock alone (``FAKETIME_DONT_FAKE_MONOTONIC``); the fast-clock test fakes it too, so asyncio's
timers run at the same speed as the wall clock the scheduler reads.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from corral import JobQueueManager
from corral.core.schedules import ScheduledJob
from corral.http.app import create_app
from corral.scheduler import TaskScheduler
from corral.settings import Secret
from tests.support.processes import corral_env, corral_process
from tests.support.waiting import eventually
from tests.unit.test_cron_dst_contract import EXACT_ROWS

pytestmark = pytest.mark.fault

ADMIN_TOKEN = "clock-tests-admin-token-0123456789abcdef"  # noqa: S105 - a test value
SKEWS_S = (-2, 0, 2)
WINDOW_S = 60  # CI-lite; the soak size is the same test with a longer window
SECOND = timedelta(seconds=1)


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        message = "libfaketime is not installed (apt-get install faketime)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: fault tests must not be skipped)")
        pytest.skip(message)
    return found[0]


def _faked(env: dict[str, str], *, monotonic: bool = False, **faketime: str) -> dict[str, str]:
    """``env`` with libfaketime preloaded and configured by ``faketime`` (FAKETIME_* names)."""
    out = dict(env, LD_PRELOAD=_libfaketime(), TZ="UTC", **faketime)
    if not monotonic:
        out["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return out


@contextmanager
def _scheduler(env: dict[str, str], log: Path) -> Iterator[Any]:
    with corral_process("scheduler", env, log=log) as proc:
        yield proc


async def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _every_second(
    qm: JobQueueManager, count: int, *, zone: str = "UTC", clock: Any = None
) -> list[ScheduledJob]:
    admin = TaskScheduler(qm.settings, handlers=["tests.support.it_handlers"])
    if clock is not None:
        admin.clock = clock
    try:
        return [
            await admin.create(
                name=f"clock-{i}",
                handler_name="noop",
                cron_expression="* * * * * *",
                domain="test",
                timezone=zone,
            )
            for i in range(count)
        ]
    finally:
        await admin.close()


class Redis:
    """What the schedulers wrote, read straight from Redis."""

    def __init__(self, url: str, queue: str) -> None:
        self.client = aioredis.Redis.from_url(url, decode_responses=True)
        self.base = f"corraltest:{queue}"

    async def added(self) -> list[tuple[str, int]]:
        """(job id, Redis ms when it was added) for every scheduled job added so far."""
        entries = await self.client.xrange(f"{self.base}:events")
        return [
            (fields["jobId"], int(entry_id.split("-")[0]))
            for entry_id, fields in entries
            if fields.get("event") == "added" and fields.get("jobId", "").startswith("sched-")
        ]

    async def duplicated(self) -> int:
        entries = await self.client.xrange(f"{self.base}:events")
        return sum(1 for _, fields in entries if fields.get("event") == "duplicated")

    async def timestamp(self, job_id: str) -> int:
        """The job's creation time as the firing scheduler's clock read it."""
        return int(await self.client.hget(f"{self.base}:{job_id}", "timestamp") or 0)

    async def stats(self) -> dict[str, float]:
        raw = await self.client.hgetall(f"{self.base}:corral:scheduler")
        return {k: float(v) for k, v in raw.items()}

    async def heartbeats(self) -> list[tuple[str, float]]:
        key = f"{self.base}:corral:schedulers"
        return list(await self.client.zrange(key, 0, -1, withscores=True))

    async def redis_now(self) -> float:
        seconds, micros = await self.client.time()
        return float(seconds) + micros / 1e6

    async def aclose(self) -> None:
        await self.client.aclose()


def _nominal(job_id: str) -> int:
    return int(job_id.rsplit("-", 1)[1])


def _ticks_of(added: list[tuple[str, int]], schedule: ScheduledJob) -> list[int]:
    return sorted(_nominal(j) for j, _ in added if j.startswith(f"sched-{schedule.id}-"))


# -- S5: skewed replicas -----------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_skewed_replicas_fire_every_tick_once_and_never_early_beyond_the_skew(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, tmp_path: Path
) -> None:
    schedules = await _every_second(qm, 3)
    env = corral_env(redis_url, queue_name, database_url, CORRAL_EXECUTION_LOG="false")
    seen = Redis(redis_url, queue_name)
    try:
        with (
            _scheduler(_faked(env, FAKETIME="-2s"), tmp_path / "slow.log"),
            _scheduler(env, tmp_path / "exact.log"),
            _scheduler(_faked(env, FAKETIME="+2s"), tmp_path / "fast.log"),
        ):
            await eventually(
                (await qm.runtime.monitor()).live_schedulers, until=lambda n: n == 3, timeout_s=60
            )
            start = int(await seen.redis_now()) + 1
            await asyncio.sleep(WINDOW_S)
            # The last tick every replica has certainly settled: the slowest clock is 2 s behind.
            end = int(await seen.redis_now()) - 3
        added = await seen.added()
        duplicated = await seen.duplicated()
        stats = await seen.stats()
        offsets = Counter()  # which replica fired each tick, by its clock's offset from Redis's
        for job_id, redis_ms in added:
            offsets[round((await seen.timestamp(job_id) - redis_ms) / 1000)] += 1
    finally:
        await seen.aclose()

    per_id = Counter(job_id for job_id, _ in added)
    early_ms = [_nominal(job_id) * 1000 - redis_ms for job_id, redis_ms in added]
    print(
        f"\nS5 skew: {len(added)} ticks added over {end - start + 1} s x {len(schedules)} "
        f"schedules; fired by clock offset (s): {dict(sorted(offsets.items()))}; "
        f"earliest {max(early_ms)} ms before its time, median "
        f"{sorted(early_ms)[len(early_ms) // 2]} ms; duplicated events {duplicated}; "
        f"scheduler stats {stats}"
    )
    assert {k: v for k, v in per_id.items() if v > 1} == {}
    assert duplicated == 0
    assert stats["fired"] == len(added)
    for schedule in schedules:
        ticks = set(_ticks_of(added, schedule))
        missing = sorted(set(range(start, end + 1)) - ticks)
        assert missing == [], f"schedule {schedule.id}: {len(missing)} ticks missing"
    # A replica fires a tick when its own clock reaches it, so the fast one fires up to its
    # skew early (and the watermark stops the others firing it again): never more than that.
    assert max(early_ms) <= 1000 * max(SKEWS_S)


# -- S5: a clock that steps forward an hour and back ------------------------------------------


@pytest.mark.timeout(180)
async def test_clock_stepping_forward_and_back_neither_bursts_nor_refires(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, tmp_path: Path
) -> None:
    (schedule,) = await _every_second(qm, 1)
    clock_file = tmp_path / "faketime"
    clock_file.write_text("+0\n")
    env = _faked(
        corral_env(redis_url, queue_name, database_url, CORRAL_EXECUTION_LOG="false"),
        FAKETIME_TIMESTAMP_FILE=str(clock_file),
        FAKETIME_NO_CACHE="1",
    )
    log = tmp_path / "scheduler.log"
    seen = Redis(redis_url, queue_name)
    try:
        with _scheduler(env, log):
            await eventually(
                (await qm.runtime.monitor()).live_schedulers, until=lambda n: n == 1, timeout_s=60
            )
            await asyncio.sleep(4)
            missed_before = (await seen.stats()).get("missed", 0.0)

            clock_file.write_text("+3600\n")  # the wall clock steps forward an hour
            stepped_at = await seen.redis_now()
            await eventually(
                seen.added,
                until=lambda a: any(t > stepped_at + 3000 for t in _ticks_of(a, schedule)),
                timeout_s=20,
            )
            await asyncio.sleep(3)
            forward = _ticks_of(await seen.added(), schedule)
            missed_forward = (await seen.stats()).get("missed", 0.0)

            clock_file.write_text("+0\n")  # and back
            await asyncio.sleep(6)
            after = _ticks_of(await seen.added(), schedule)
            beats = await seen.heartbeats()
            beat_read_at = await seen.redis_now()
        text = log.read_text()
    finally:
        await seen.aclose()

    before = [t for t in forward if t < stepped_at + 3000]
    ahead = [t for t in forward if t > stepped_at + 3000]
    skipped = missed_forward - missed_before
    print(
        f"\nS5 step: ticks {before[0]}..{before[-1]} ({len(before)}) before the step; +1 h: "
        f"next tick {ahead[0]} ({ahead[0] - before[-1]} s later) then {len(ahead) - 1} more, "
        f"{skipped:.0f} ticks counted missed; -1 h: {len(after) - len(forward)} new ticks in "
        f"6 s, heartbeat {beats[0][1] / 1000 - beat_read_at:+.1f} s old after the step back"
    )

    def contiguous(ticks: list[int]) -> bool:
        return all(b - a == 1 for a, b in itertools.pairwise(ticks))

    # Forward: the hour of ticks is a misfire, coalesced into one catch-up run (the latest tick,
    # within the catch-up window) with the others counted as missed, not a burst.
    assert contiguous(before)
    assert contiguous(ahead)
    assert ahead[0] - before[-1] > 3500
    assert skipped == ahead[0] - before[-1] - 1
    # Back: every tick below the watermark was fired or counted already; none fires again.
    assert after == forward
    # ...and the scheduler is still alive: it heartbeats on its (stepped back) clock.
    assert len(beats) == 1
    assert abs(beats[0][1] / 1000 - beat_read_at) < 3
    assert "ahead of Redis" in text  # the forward step was noticed


# -- S5: a skewed scheduler is reported --------------------------------------------------------


@pytest.mark.timeout(120)
async def test_health_metrics_and_log_report_a_scheduler_clock_ahead(
    qm: JobQueueManager,
    settings: Any,
    redis_url: str,
    queue_name: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    env = corral_env(redis_url, queue_name, database_url, CORRAL_EXECUTION_LOG="false")
    log = tmp_path / "scheduler.log"
    app = create_app(settings.replace(**{"admin_token": Secret(ADMIN_TOKEN)}))
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as api:
            with _scheduler(_faked(env, FAKETIME="+3s"), log):
                answer = await eventually(
                    lambda: api.get("/health/ready"),
                    until=lambda r: bool(r.json()["details"].get("schedulerClockSkewS")),
                    timeout_s=60,
                )
                metrics = (await api.get("/metrics")).text
                await eventually(
                    lambda: _text(log),
                    until=lambda text: "ahead of Redis" in text,
                )
            text = log.read_text()
    finally:
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()

    details = answer.json()["details"]
    (skew,) = details["schedulerClockSkewS"].values()
    gauges = [
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "corral_scheduler_clock_skew_seconds"
    ]
    warning = next(line for line in text.splitlines() if "ahead of Redis" in line)
    print(f"\nS5 report: health skew {skew} s, gauge {gauges}, problems {details['problems']}")
    print(f"log: {warning}")
    assert 2.5 < skew < 3.5
    assert len(gauges) == 1
    assert 2.5 < gauges[0] < 3.5
    assert any("clock" in p and "ahead of Redis" in p for p in details["problems"])
    assert details["health"] == "degraded"
    assert "WARNING" in warning


# -- T3: across the New York fall-back hour at 120x -------------------------------------------

FAST = 120
FAKE_START = datetime(2026, 11, 1, 4, 59, 55, tzinfo=UTC)
FAKE_END = datetime(2026, 11, 1, 7, 0, 30, tzinfo=UTC)


def _contract(row_id: str) -> list[datetime]:
    (row,) = [p for p in EXACT_ROWS if p.id == row_id]
    expected: list[datetime] = row.values[3]  # type: ignore[assignment]
    return [t for t in expected if FAKE_START < t <= FAKE_END]


@pytest.mark.timeout(240)
async def test_fast_clock_across_fall_back_fires_the_contract_ticks(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, tmp_path: Path
) -> None:
    admin = TaskScheduler(qm.settings, handlers=["tests.support.it_handlers"])
    admin.clock = lambda: FAKE_START - timedelta(minutes=30)  # before the window: no back-fill
    try:
        daily, hourly = [
            await admin.create(
                name=name,
                handler_name="noop",
                cron_expression=expression,
                domain="test",
                timezone="America/New_York",
            )
            for name, expression in (("daily", "0 30 1 * * *"), ("hourly", "0 0 * * * *"))
        ]
    finally:
        await admin.close()
    # Start-up takes real seconds (minutes at 120x): the clock stands near the window's start
    # at real speed until the scheduler has loaded its schedules, then jumps to it and speeds up.
    clock_file = tmp_path / "faketime"
    clock_file.write_text(f"@{(FAKE_START - timedelta(minutes=5)):%Y-%m-%d %H:%M:%S}\n")
    env = _faked(
        corral_env(redis_url, queue_name, database_url, CORRAL_EXECUTION_LOG="false"),
        monotonic=True,
        FAKETIME_TIMESTAMP_FILE=str(clock_file),
        FAKETIME_CACHE_DURATION="1",
    )
    log = tmp_path / "scheduler.log"
    seen = Redis(redis_url, queue_name)
    end_ms = FAKE_END.timestamp() * 1000
    try:
        with _scheduler(env, log):
            await eventually(
                lambda: _text(log),
                until=lambda text: "scheduler loaded 2 enabled schedules" in text,
                timeout_s=60,
            )
            clock_file.write_text(f"@{FAKE_START:%Y-%m-%d %H:%M:%S} x{FAST}\n")
            real_start = time.monotonic()
            await eventually(
                seen.heartbeats,
                until=lambda beats: bool(beats) and beats[0][1] >= end_ms,
                timeout_s=(FAKE_END - FAKE_START).total_seconds() / FAST + 60,
                every_s=0.5,
            )
            real_s = time.monotonic() - real_start
        added = await seen.added()
        duplicated = await seen.duplicated()
        stats = await seen.stats()
        late_s = {j: (await seen.timestamp(j)) / 1000 - _nominal(j) for j, _ in added}
    finally:
        await seen.aclose()

    def fired(schedule: ScheduledJob) -> list[datetime]:
        return [datetime.fromtimestamp(t, UTC) for t in _ticks_of(added, schedule)]

    expected_daily, expected_hourly = _contract("ny-fold-first"), _contract("ny-fall-h")
    print(
        f"\nT3: {FAKE_START:%H:%M:%S}Z..{FAKE_END:%H:%M:%S}Z at x{FAST} in {real_s:.0f} s real; "
        f"daily fired {[f'{t:%H:%M}Z' for t in fired(daily)]}, hourly fired "
        f"{[f'{t:%H:%M}Z' for t in fired(hourly)]}; lateness (fake s) "
        f"{ {j.rsplit('-', 1)[1]: round(v, 1) for j, v in late_s.items()} }; "
        f"duplicated {duplicated}; stats {stats}"
    )
    assert fired(daily) == expected_daily == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]
    assert fired(hourly) == expected_hourly  # 01:00 EDT, 01:00 EST, 02:00 EST
    assert len(expected_hourly) == 3
    assert len(added) == len({j for j, _ in added}) == 4
    assert duplicated == 0
    assert stats.get("missed", 0.0) == 0
