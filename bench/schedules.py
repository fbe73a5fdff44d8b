"""The scheduler at scale: many cron schedules, one or more replicas.

Run from the repository root::

    .venv/bin/python bench/schedules.py [--schedules 10000] [--seconds 60] [--replicas 1]
                                        [--log-level info] [--lag-probe-s 0.25] [--profile]

Schedule ``i`` fires once a minute at second ``i % 60`` (``f"{i % 60} * * * * *"``, handler
``noop``), so 10,000 schedules make about 167 ticks a second. Each scheduler replica is a spawned
child process doing what ``corral scheduler`` does (``TaskScheduler(settings).initialize()``,
then wait, on uvloop when it is installed and ``CORRAL_UVLOOP`` is not false). Nobody consumes
the jobs: at the end the bench reads every job from Redis and checks exactly-once and the fire
lateness (the job hash's ``timestamp`` minus the tick in its id
``sched-<uuid>-<epoch s>``). See bench/README.md, section "Scheduler".

Every run uses a fresh SQLite database in a temporary directory and its own key prefix
(``bench-sched-<timestamp>-<pid>``), and deletes exactly those keys at the end (SCAN + DEL).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import importlib.util
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from uuid import uuid4

import redis.asyncio as aioredis
from run import delete_prefix, git_commit, host_busy_s, own_cpu_s, percentile, redis_cpu_s

HERE = Path(__file__).resolve().parent
QUEUE = "schedules"
HANDLER = "noop"
INSERT_CHUNK = 1000
READ_CHUNK = 5000
#: The event-loop lag probe's sleep. Each wake-up costs the replica CPU that is counted as the
#: scheduler's: every 250 ms is ~4 wakes a second, against ~20 with a 50 ms sleep.
LAG_PROBE_S = 0.25


class BenchError(Exception):
    """A replica failed, timed out or died."""


def schedule_fields(i: int) -> dict[str, Any]:
    return {
        "name": f"bench-{i}",
        "handler_name": HANDLER,
        "cron_expression": f"{i % 60} * * * * *",
        "domain": "bench",
    }


# -- the scheduler replica (spawned child) ------------------------------------------------------
#
# Protocol over a multiprocessing pipe (child -> parent unless noted):
#   ("ready", pid, loop module)        imports done, nothing connected; waits for "go"
#   parent -> child: "go"
#   ("loaded", t0, t1, schedules)      wall time just before and just after initialize()
#   ("start_pass", t | None)           every schedule settled once (the start-up pass)
#   ("caught_up", t | None)            ... and the ticks that fell due meanwhile fired too
#   parent -> child: "stop"
#   ("stopped", loop_stats, lag_ms, gc_pauses, close_s)
#   ("error", traceback_text)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaSpec:
    index: int
    redis_url: str
    database_url: str
    prefix: str
    queue: str
    log_level: str
    log_path: str
    profile_path: str | None
    catch_up_timeout_s: float
    lag_probe_s: float = LAG_PROBE_S


def replica_main(spec: ReplicaSpec, conn: Connection) -> None:
    """Entry point of a spawned scheduler process. Its log (stderr) goes to ``spec.log_path``."""
    fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        from corral.cli.loop import run
        from corral.settings import load_settings

        settings = load_settings(
            redis_url=spec.redis_url,
            database_url=spec.database_url,
            queue=spec.queue,
            prefix=spec.prefix,
            execution_log=False,
            log_level=spec.log_level,
        )
        # The loop `corral scheduler` runs on (uvloop when installed, unless CORRAL_UVLOOP=0).
        run(_replica(spec, conn, settings), use_uvloop=settings.uvloop)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


async def _replica(spec: ReplicaSpec, conn: Connection, settings: Any) -> None:
    from corral.logs import configure_logging
    from corral.scheduler import TaskScheduler

    configure_logging(spec.log_level)  # as `corral scheduler` does (LOG_LEVEL)
    scheduler = TaskScheduler(settings)
    aio = asyncio.get_running_loop()
    conn.send(("ready", os.getpid(), type(aio).__module__))
    message = await aio.run_in_executor(None, conn.recv)
    if message != "go":
        raise RuntimeError(f"unexpected message from the parent: {message!r}")
    real_gate = scheduler._rt.fire_gate
    gate: CountingGate | None = None

    async def counting_gate() -> CountingGate:
        nonlocal gate
        gate = CountingGate(await real_gate())
        return gate

    scheduler._rt.fire_gate = counting_gate  # type: ignore[method-assign]
    t0 = time.time()
    await scheduler.initialize()
    t1 = time.time()
    loop = scheduler.loop
    assert loop is not None
    assert gate is not None
    counted, entries = gate, len(loop._entries)
    conn.send(("loaded", t0, t1, entries))

    # The first pass settles every schedule once (reload() puts them all due "now", and the
    # loop fires nothing else until the whole pass is done). The ticks that fell due during
    # the pass are fired next, as one batch; the scheduler has caught up when no batch is in
    # flight (every schedule is back on the heap) and nothing on the heap is overdue.
    # Private attributes: this is a bench, not an API.
    def start_pass() -> bool:
        if not hasattr(loop, "idle"):  # before replicas shared out the work
            return counted.settles >= entries
        mine = loop.id
        return all(e.owner != mine or sid in counted.seen for sid, e in loop._entries.items())

    def caught_up() -> bool:
        if not hasattr(loop, "idle"):
            heap = loop._heap
            idle = len(heap) >= len(loop._entries) and (not heap or heap[0][0] > loop.clock())
            return start_pass() and idle
        return start_pass() and loop.idle()

    deadline = time.monotonic() + spec.catch_up_timeout_s
    for name, done in (("start_pass", start_pass), ("caught_up", caught_up)):
        while not done() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # (the loop offers no event to wait on)
        conn.send((name, time.time() if done() else None))

    profiler = cProfile.Profile() if spec.profile_path else None
    if profiler is not None:
        profiler.enable()
    lags: list[float] = []
    probe = asyncio.create_task(_lag_probe(lags, spec.lag_probe_s))
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    message = await aio.run_in_executor(None, conn.recv)
    if message != "stop":
        raise RuntimeError(f"unexpected message from the parent: {message!r}")
    probe.cancel()
    gc.callbacks.remove(pauses)
    if profiler is not None:
        profiler.disable()
        assert spec.profile_path is not None
        profiler.dump_stats(spec.profile_path)
    stats = dataclasses.asdict(loop.stats)
    started = time.perf_counter()
    await scheduler.close()
    conn.send(("stopped", stats, lags, pauses.report(), time.perf_counter() - started))


class CountingGate:
    """The replica's FireGate, noting which schedules it has settled or looked at (a replica
    only checks the watermarks of the schedules another replica owns)."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.seen: set[Any] = set()

    @property
    def settles(self) -> int:
        return len(self.seen)

    async def settle(self, schedule_id: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self.gate.settle(schedule_id, *args, **kwargs)
        finally:
            self.seen.add(schedule_id)

    async def settle_many(self, requests: Any, **kwargs: Any) -> Any:
        try:
            return await self.gate.settle_many(requests, **kwargs)
        finally:
            self.seen.update(r[0] for r in requests)

    async def watermarks(self, schedule_ids: Any) -> Any:
        try:
            return await self.gate.watermarks(schedule_ids)
        finally:
            self.seen.update(schedule_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gate, name)


class GcPauses:
    """A ``gc.callbacks`` hook: how many collections of each generation, and how long they
    stopped the process (the event loop cannot fire while the collector runs)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            pause_ms = (time.perf_counter() - self.started) * 1000
            self.by_generation[info["generation"]].append(pause_ms)

    def report(self) -> dict[str, dict[str, float]]:
        return {
            f"gen{g}": {
                "count": len(v),
                "max_ms": max(v, default=0.0),
                "total_ms": sum(v),
            }
            for g, v in self.by_generation.items()
        }


async def _lag_probe(lags: list[float], sleep_s: float) -> None:
    """Event-loop lag: how late a ``sleep_s`` sleep wakes up, in ms."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(sleep_s)
        lags.append((time.perf_counter() - before - sleep_s) * 1000)


# -- the parent's view of a replica -------------------------------------------------------------


def proc_status_mb(pid: int, name: str) -> float:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/status has no {name}")


def proc_cpu_s(pid: int) -> float:
    """user+system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Replica:
    spec: ReplicaSpec
    conn: Connection = field(init=False)
    process: BaseProcess = field(init=False)
    pid: int = 0
    marks: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(
            target=replica_main, args=(self.spec, child_conn), name=f"scheduler-{self.spec.index}"
        )
        self.process.start()
        child_conn.close()

    def mark(self, name: str) -> None:
        """Record wall time, CPU seconds and RSS of the replica now."""
        self.marks[name] = {
            "t": time.time(),
            "cpu_s": proc_cpu_s(self.pid),
            "rss_mb": proc_status_mb(self.pid, "VmRSS"),
        }

    async def receive(self, expected: str, timeout_s: float) -> tuple[Any, ...]:
        conn = self.conn
        ready = await asyncio.get_running_loop().run_in_executor(None, conn.poll, timeout_s)
        if not ready:
            raise BenchError(f"replica {self.spec.index} sent no {expected!r} in {timeout_s:.0f} s")
        try:
            message: tuple[Any, ...] = conn.recv()
        except EOFError:
            raise BenchError(
                f"replica {self.spec.index} exited (code {self.process.exitcode}) "
                f"before {expected!r}"
            ) from None
        if message[0] == "error":
            raise BenchError(f"replica {self.spec.index} raised:\n{message[1]}")
        if message[0] != expected:
            raise BenchError(f"replica {self.spec.index} sent {message[0]!r}, not {expected!r}")
        return message

    async def loaded(self, timeout_s: float) -> None:
        _, t0, t1, count = await self.receive("loaded", timeout_s)
        self.mark("loaded")
        self.info.update(load_s=t1 - t0, t_loaded=t1, schedules_loaded=count)

    async def caught_up(self, timeout_s: float) -> None:
        """The start-up pass, then the catch-up of what fell due meanwhile. A replica that
        never catches up is reported (``t_caught_up`` None), not fatal."""
        for name in ("start_pass", "caught_up"):
            _, t = await self.receive(name, timeout_s)
            self.mark(name)
            self.info[f"t_{name}"] = t

    async def stopped(self, timeout_s: float) -> None:
        _, stats, lags, gc_pauses, close_s = await self.receive("stopped", timeout_s)
        self.info.update(loop_stats=stats, gc_pauses=gc_pauses, close_s=close_s)
        ordered = sorted(lags)
        if ordered:
            self.info["loop_lag_ms"] = {
                "p50": percentile(ordered, 50),
                "p99": percentile(ordered, 99),
                "max": ordered[-1],
                "samples": len(ordered),
            }
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, timeout_s)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


# -- creating the schedules ---------------------------------------------------------------------


async def create_schedules(
    args: argparse.Namespace, prefix: str, database_url: str
) -> tuple[dict[str, int], dict[str, Any]]:
    """Migrate a fresh database and create the schedules: the first ``--sample-create`` through
    ``TaskScheduler.create`` (the public path), the rest with a bulk INSERT through the SQL
    adapter's table and row mapping. Returns schedule id -> second of the minute, and timings."""
    from sqlalchemy import insert

    from corral.adapters.sql.engine import make_engine
    from corral.adapters.sql.migrate import upgrade
    from corral.adapters.sql.schedule_store import _to_row
    from corral.adapters.sql.tables import schedules
    from corral.core.schedules import new_schedule, validate_changes
    from corral.scheduler import TaskScheduler
    from corral.settings import load_settings

    started = time.perf_counter()
    await upgrade(database_url)
    migrate_s = time.perf_counter() - started
    second_of: dict[str, int] = {}
    sample = min(args.sample_create, args.schedules)
    settings = load_settings(
        redis_url=args.redis_url,
        database_url=database_url,
        queue=QUEUE,
        prefix=prefix,
        execution_log=False,
    )
    public = TaskScheduler(settings)
    per_call: list[float] = []
    try:
        for i in range(sample):
            before = time.perf_counter()
            job = await public.create(**schedule_fields(i))
            per_call.append((time.perf_counter() - before) * 1000)
            second_of[str(job.id)] = i % 60
    finally:
        await public.close()

    engine = make_engine(database_url)
    started = time.perf_counter()
    try:
        for first in range(sample, args.schedules, INSERT_CHUNK):
            now = datetime.now(UTC)
            rows = []
            for i in range(first, min(first + INSERT_CHUNK, args.schedules)):
                job = new_schedule(
                    uuid4(), validate_changes(schedule_fields(i), creating=True), now
                )
                rows.append(_to_row(job))
                second_of[str(job.id)] = i % 60
            async with engine.begin() as conn:
                await conn.execute(insert(schedules), rows)
    finally:
        await engine.dispose()
    bulk_s = time.perf_counter() - started
    bulk_n = args.schedules - sample
    timings = {
        "migrate_s": migrate_s,
        "public_create_n": sample,
        "public_create_ms_mean": statistics.fmean(per_call) if per_call else None,
        "public_create_ms_p50": statistics.median(per_call) if per_call else None,
        "public_create_ms_first": per_call[0] if per_call else None,
        "bulk_insert_n": bulk_n,
        "bulk_insert_s": bulk_s,
        "bulk_insert_us_per_schedule": bulk_s / bulk_n * 1e6 if bulk_n else None,
    }
    return second_of, timings


# -- reading the jobs back ----------------------------------------------------------------------


async def read_jobs(r: aioredis.Redis, prefix: str) -> tuple[list[str], list[int | None]]:
    """Every job id of the queue (it has no worker, so they are all still pending) and the
    ``timestamp`` field (ms) of each."""
    base = f"{prefix}:{QUEUE}"
    async with r.pipeline(transaction=False) as pipe:
        pipe.zrange(f"{base}:prioritized", 0, -1)
        pipe.lrange(f"{base}:wait", 0, -1)
        pipe.zrange(f"{base}:delayed", 0, -1)
        pipe.lrange(f"{base}:paused", 0, -1)
        pipe.lrange(f"{base}:active", 0, -1)
        groups = await pipe.execute()
    ids = [job_id for group in groups for job_id in group]
    stamps: list[int | None] = []
    for first in range(0, len(ids), READ_CHUNK):
        async with r.pipeline(transaction=False) as pipe:
            for job_id in ids[first : first + READ_CHUNK]:
                pipe.hget(f"{base}:{job_id}", "timestamp")
            stamps.extend(None if v is None else int(v) for v in await pipe.execute())
    return ids, stamps


def parse_fire_id(job_id: str) -> tuple[str, int] | None:
    """``sched-<uuid>-<epoch s>`` -> (schedule id, tick); None for anything else."""
    head, _, tail = job_id.rpartition("-")
    if not head.startswith("sched-") or not tail.isdigit():
        return None
    return head.removeprefix("sched-"), int(tail)


def lateness_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }


@dataclass(frozen=True, slots=True)
class Window:
    """Ticks checked for exactly-once: every tick in [first, last] of every schedule."""

    first: int  # first whole second after every replica had loaded
    last: int  # the stop time minus the grace period
    steady_from: int  # first whole second after every replica finished its start-up pass


def classify(
    ids: Sequence[str],
    stamps: Sequence[int | None],
    second_of: dict[str, int],
    window: Window,
) -> dict[str, Any]:
    """Count fires per (schedule, tick) and sort each job's lateness into its period."""
    seen: Counter[tuple[str, int]] = Counter()
    late: dict[str, list[float]] = {"before": [], "window": [], "steady": [], "after": []}
    odd: list[str] = []
    per_tick: dict[int, list[float]] = {}  # steady tick -> [first, last] lateness of its batch
    no_stamp = wrong_second = 0
    for job_id, stamp in zip(ids, stamps, strict=True):
        parsed = parse_fire_id(job_id)
        if parsed is None or parsed[0] not in second_of:
            odd.append(job_id)
            continue
        sid, tick = parsed
        seen[parsed] += 1
        wrong_second += tick % 60 != second_of[sid]
        if stamp is None:
            no_stamp += 1
            continue
        lateness = stamp - tick * 1000
        period = "before" if tick < window.first else "after" if tick > window.last else "window"
        late[period].append(lateness)
        if period == "window" and tick >= window.steady_from:
            late["steady"].append(lateness)
            spread = per_tick.setdefault(tick, [lateness, lateness])
            spread[0] = min(spread[0], lateness)
            spread[1] = max(spread[1], lateness)
    return {
        "seen": seen,
        "late": late,
        "per_tick": per_tick,
        "odd": odd,
        "no_stamp": no_stamp,
        "wrong_second": wrong_second,
    }


def check_jobs(
    ids: Sequence[str],
    stamps: Sequence[int | None],
    second_of: dict[str, int],
    window: Window,
) -> dict[str, Any]:
    c = classify(ids, stamps, second_of, window)
    seen: Counter[tuple[str, int]] = c["seen"]
    by_second: dict[int, list[str]] = {}
    for sid, second in second_of.items():
        by_second.setdefault(second, []).append(sid)
    expected = missing = 0
    missing_examples: list[str] = []
    for tick in range(window.first, window.last + 1):
        for sid in by_second.get(tick % 60, ()):
            expected += 1
            if (sid, tick) not in seen:
                missing += 1
                if len(missing_examples) < 10:
                    missing_examples.append(f"sched-{sid}-{tick}")
    return {
        "jobs": len(ids),
        "distinct_fires": len(seen),
        "duplicate_job_ids": sum(n - 1 for n in seen.values() if n > 1),
        "expected_in_window": expected,
        "enqueued_in_window": len(c["late"]["window"]),
        "missing_in_window": missing,
        "missing_examples": missing_examples,
        "wrong_second": c["wrong_second"],
        "without_timestamp": c["no_stamp"],
        "unrecognised_ids": c["odd"][:10],
        "lateness_ms": {k: lateness_summary(v) for k, v in c["late"].items()},
        # Each second's ticks (N/60 of them) are settled as one batch: the first job of a batch
        # shows the wake-up delay, the last one how long the whole batch took.
        "steady_batch_first_ms": lateness_summary([v[0] for v in c["per_tick"].values()]),
        "steady_batch_last_ms": lateness_summary([v[1] for v in c["per_tick"].values()]),
        "worst_steady_ticks": [
            {"tick": tick, "first_ms": v[0], "last_ms": v[1]}
            for tick, v in sorted(c["per_tick"].items(), key=lambda kv: -kv[1][1])[:5]
        ],
    }


# -- the run ------------------------------------------------------------------------------------

HEARTBEAT_SAMPLE_S = 0.25


async def watch_heartbeats(
    r: aioredis.Redis, prefix: str, replicas: int, done: asyncio.Event
) -> dict[str, Any]:
    """Sample the schedulers' heartbeat set (what /health/ready counts) every 250 ms from the
    start until ``done``: the oldest heartbeat seen per scheduler, and for how long fewer than
    ``replicas`` schedulers counted as alive (heartbeat younger than HEARTBEAT_TTL_MS) once all
    of them had appeared."""
    from corral.adapters.bullmq import keys

    key = keys.Keys(prefix, QUEUE).schedulers
    oldest: dict[str, float] = {}
    below_s = 0.0
    below_since: list[float] = []
    while not done.is_set():
        beats = await r.zrange(key, 0, -1, withscores=True)
        now_ms = time.time() * 1000
        ages = {member: now_ms - score for member, score in beats}
        for member, age in ages.items():
            oldest[member] = max(oldest.get(member, 0.0), age)
        live = sum(age <= keys.HEARTBEAT_TTL_MS for age in ages.values())
        if len(oldest) >= replicas and live < replicas:
            below_s += HEARTBEAT_SAMPLE_S
            below_since.append(now_ms / 1000)
        try:
            await asyncio.wait_for(done.wait(), HEARTBEAT_SAMPLE_S)
        except TimeoutError:
            pass
    return {
        "ttl_ms": keys.HEARTBEAT_TTL_MS,
        "oldest_heartbeat_ms": sorted(oldest.values(), reverse=True),
        "seconds_with_fewer_alive": below_s,
        "first_fewer_alive_at": below_since[0] if below_since else None,
        "last_fewer_alive_at": below_since[-1] if below_since else None,
    }


async def start_replicas(args: argparse.Namespace, replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.start()
    for replica in replicas:
        _, pid, loop_module = await replica.receive("ready", 120)
        replica.pid = int(pid)
        replica.info["event_loop"] = loop_module
        replica.mark("ready")
    for replica in replicas:  # all at once: the replicas race for the same ticks
        replica.conn.send("go")
    await asyncio.gather(*(x.loaded(args.timeout) for x in replicas))
    await asyncio.gather(*(x.caught_up(args.seconds + args.timeout) for x in replicas))


async def run_window(r: aioredis.Redis, replicas: list[Replica], until: float) -> dict[str, Any]:
    """Let the replicas fire until ``until`` (wall time). Once a second, sample their RSS and
    the CPU (in cores) of the host, the replicas and Redis, for the timeline in the JSON."""
    peak_rss = [0.0] * len(replicas)

    def replicas_cpu() -> float:
        return sum(proc_cpu_s(x.pid) for x in replicas)

    redis0, host0, own0, rep0 = await redis_cpu_s(r), host_busy_s(), own_cpu_s(), replicas_cpu()
    t0 = time.time()
    last = (t0, host0, rep0, redis0)
    timeline: list[dict[str, float]] = []
    while time.time() < until:
        await asyncio.sleep(min(1.0, max(0.0, until - time.time())))
        for k, replica in enumerate(replicas):
            if not replica.process.is_alive():
                raise BenchError(f"replica {k} died (exit code {replica.process.exitcode})")
            peak_rss[k] = max(peak_rss[k], proc_status_mb(replica.pid, "VmRSS"))
        now = (time.time(), host_busy_s(), replicas_cpu(), await redis_cpu_s(r))
        span = now[0] - last[0]
        timeline.append(
            {
                "t": round(now[0], 3),
                "host_busy_cores": round((now[1] - last[1]) / span, 2),
                "replicas_cores": round((now[2] - last[2]) / span, 2),
                "redis_cores": round((now[3] - last[3]) / span, 2),
            }
        )
        last = now
    for k, replica in enumerate(replicas):
        replica.mark("end")
        replica.info["rss_peak_sampled_mb"] = max(peak_rss[k], replica.marks["end"]["rss_mb"])
        replica.info["vm_hwm_mb"] = proc_status_mb(replica.pid, "VmHWM")
    redis1, host1, own1 = await redis_cpu_s(r), host_busy_s(), own_cpu_s()
    elapsed = time.time() - t0
    rep1 = sum(x.marks["end"]["cpu_s"] for x in replicas)
    others = (host1 - host0) - (rep1 - rep0) - (redis1 - redis0) - (own1 - own0)
    return {
        "seconds": elapsed,
        "redis_cpu_pct": (redis1 - redis0) / elapsed * 100,
        "other_cpu_pct_of_one_core": max(0.0, others) / elapsed * 100,
        "timeline": timeline,
    }


def replica_report(replica: Replica) -> dict[str, Any]:
    m = replica.marks
    steady = max(1e-9, m["end"]["t"] - m["caught_up"]["t"])

    def since_loaded(key: str) -> float | None:
        t = replica.info.get(key)
        return None if t is None else t - replica.info["t_loaded"]

    whole = m["end"]["t"] - m["loaded"]["t"]
    return {
        "index": replica.spec.index,
        "pid": replica.pid,
        "event_loop": replica.info.get("event_loop"),
        "load_s": replica.info["load_s"],
        "start_pass_s": since_loaded("t_start_pass"),
        "caught_up_s": since_loaded("t_caught_up"),
        "rss_ready_mb": m["ready"]["rss_mb"],
        "rss_loaded_mb": m["loaded"]["rss_mb"],
        "rss_start_pass_mb": m["start_pass"]["rss_mb"],
        "rss_end_mb": m["end"]["rss_mb"],
        "rss_peak_sampled_mb": replica.info["rss_peak_sampled_mb"],
        "vm_hwm_mb": replica.info["vm_hwm_mb"],
        "cpu_s_load": m["loaded"]["cpu_s"] - m["ready"]["cpu_s"],
        "cpu_s_start_pass": m["start_pass"]["cpu_s"] - m["loaded"]["cpu_s"],
        "cpu_s_catch_up": m["caught_up"]["cpu_s"] - m["start_pass"]["cpu_s"],
        "cpu_pct_steady": (m["end"]["cpu_s"] - m["caught_up"]["cpu_s"]) / steady * 100,
        "cpu_pct_since_loaded": (m["end"]["cpu_s"] - m["loaded"]["cpu_s"]) / whole * 100,
        "loop_stats": replica.info.get("loop_stats"),
        "loop_lag_ms": replica.info.get("loop_lag_ms"),
        "gc_pauses": replica.info.get("gc_pauses"),
        "close_s": replica.info.get("close_s"),
    }


def scan_logs(replicas: Sequence[Replica]) -> dict[str, Any]:
    """Count log lines per level in each replica's stderr; keep the first warnings/errors."""
    levels: Counter[str] = Counter()
    problems: list[str] = []
    for replica in replicas:
        path = Path(replica.spec.log_path)
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(maxsplit=3)
            level = parts[2] if len(parts) > 2 else "?"
            if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                level = "other"
            levels[level] += 1
            if level not in ("DEBUG", "INFO") and len(problems) < 20:
                problems.append(f"[{replica.spec.index}] {line[:300]}")
    return {"lines_by_level": dict(levels), "first_problems": problems}


def profile_text(path: str, top: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def corral_source() -> str:
    spec = importlib.util.find_spec("corral")
    return "?" if spec is None or spec.origin is None else str(Path(spec.origin).parent)


async def environment(r: aioredis.Redis) -> dict[str, Any]:
    server = await r.info("server")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host_cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "bullmq": metadata.version("bullmq"),
        "redis_py": metadata.version("redis"),
        "sqlalchemy": metadata.version("sqlalchemy"),
        "redis_server": server.get("redis_version"),
        "git_commit": git_commit(),
        # Which tree's Corral the replicas import (the bench may be run on another tree's venv).
        "corral_source": corral_source(),
    }


@dataclass
class Run:
    args: argparse.Namespace
    prefix: str
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def measure(r: aioredis.Redis, run: Run) -> None:
    args = run.args
    database_url = f"sqlite+aiosqlite:///{run.tmp / 'corral.db'}"
    print(f"creating {args.schedules:,} schedules ...", flush=True)
    second_of, run.report["create"] = await create_schedules(args, run.prefix, database_url)
    print(f"   {json.dumps({k: _round(v) for k, v in run.report['create'].items()})}", flush=True)

    run.replicas = [
        Replica(
            ReplicaSpec(
                index=k,
                redis_url=args.redis_url,
                database_url=database_url,
                prefix=run.prefix,
                queue=QUEUE,
                log_level=args.log_level,
                log_path=str(run.tmp / f"replica-{k}.log"),
                profile_path=str(run.tmp / "replica-0.pstats") if args.profile and k == 0 else None,
                catch_up_timeout_s=args.seconds,
                lag_probe_s=args.lag_probe_s,
            )
        )
        for k in range(args.replicas)
    ]
    print(f"starting {args.replicas} scheduler replica(s) ...", flush=True)
    beats_done = asyncio.Event()
    beats = asyncio.create_task(watch_heartbeats(r, run.prefix, args.replicas, beats_done))
    try:
        await start_replicas(args, run.replicas)
    except BaseException:
        beats.cancel()
        raise
    t_loaded = max(x.info["t_loaded"] for x in run.replicas)
    t_pass = max(x.info["t_start_pass"] or math.inf for x in run.replicas)
    t_caught_up = max(x.info["t_caught_up"] or math.inf for x in run.replicas)
    if t_caught_up == math.inf:
        run.errors.append("a replica did not catch up within --seconds (no steady window)")
    until = t_loaded + args.seconds
    print(
        f"   loaded in {max(x.info['load_s'] for x in run.replicas):.2f} s, start-up pass "
        f"done {t_pass - t_loaded:.2f} s later, caught up after {t_caught_up - t_loaded:.2f} s; "
        f"firing until +{args.seconds:.0f} s",
        flush=True,
    )
    try:
        run.report["window_cpu"] = await run_window(r, run.replicas, until)
    finally:
        beats_done.set()
        run.report["heartbeats"] = await beats
    t_stop = time.time()
    for replica in run.replicas:
        replica.conn.send("stop")
    await asyncio.gather(*(x.stopped(args.timeout) for x in run.replicas))

    window = Window(
        first=math.floor(t_loaded) + 1,
        last=math.floor(t_stop - args.grace),
        steady_from=math.floor(min(t_caught_up, t_stop)) + 1,
    )
    run.report["window"] = dataclasses.asdict(window) | {
        "seconds_checked": window.last - window.first + 1,
        "steady_seconds": window.last - window.steady_from + 1,
    }
    ids, stamps = await read_jobs(r, run.prefix)
    checks = check_jobs(ids, stamps, second_of, window)
    cluster = await r.hgetall(f"{run.prefix}:{QUEUE}:corral:scheduler")  # type: ignore[misc]
    checks["cluster_fired_counter"] = int(float(cluster.get("fired", 0)))
    checks["cluster_missed_counter"] = int(float(cluster.get("missed", 0)))
    process_fired = [x.info["loop_stats"]["fired"] for x in run.replicas]
    checks["replica_fired"] = process_fired
    # Job ids are deterministic per (schedule, tick), so BullMQ would silently ignore a second
    # add of the same tick: a double fire shows up as fire commits beyond the distinct jobs.
    checks["duplicate_fires"] = (
        max(
            checks["cluster_fired_counter"] - checks["distinct_fires"],
            sum(process_fired) - checks["distinct_fires"],
        )
        + checks["duplicate_job_ids"]
    )
    run.report["checks"] = checks
    run.report["replicas"] = [replica_report(x) for x in run.replicas]
    run.report["logs"] = scan_logs(run.replicas)
    if args.profile and run.replicas:
        text = profile_text(str(run.tmp / "replica-0.pstats"))
        out = args.output.with_name(args.output.stem + "-profile.txt")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        run.report["profile"] = str(out)
    for problem, count in (
        ("missing ticks in the window", checks["missing_in_window"]),
        ("duplicate fires", checks["duplicate_fires"]),
        ("jobs on the wrong second", checks["wrong_second"]),
        ("jobs without a timestamp", checks["without_timestamp"]),
        ("unrecognised job ids", len(checks["unrecognised_ids"])),
    ):
        if count:
            run.errors.append(f"{count} {problem}")


# -- report -------------------------------------------------------------------------------------


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + unit


def table(report: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str]]:
    create, checks, window = report["create"], report["checks"], report["window"]
    reps = report["replicas"]
    late = checks["lateness_ms"]

    def each(key: str, unit: str = "") -> str:
        return " / ".join(fmt(x[key], unit) for x in reps)

    def sum_of(key: str) -> float | None:
        values = [x[key] for x in reps]
        return None if None in values else sum(values)

    def gen2() -> str:
        return " / ".join(
            f"{x['gc_pauses']['gen2']['count']}, {fmt(x['gc_pauses']['gen2']['max_ms'])}"
            for x in reps
            if x["gc_pauses"]
        )

    def cpu_start() -> str:
        return " / ".join(
            f"{fmt(x['cpu_s_start_pass'])} + {fmt(x['cpu_s_catch_up'])}" for x in reps
        )

    def lag(key: str) -> str:
        return " / ".join(fmt((x["loop_lag_ms"] or {}).get(key)) for x in reps)

    rows = [
        ("schedules / replicas", f"{args.schedules:,} / {args.replicas}"),
        (
            f"create via TaskScheduler.create, per schedule (n={create['public_create_n']})",
            f"{fmt(create['public_create_ms_mean'], ' ms')} mean, "
            f"{fmt(create['public_create_ms_p50'], ' ms')} p50",
        ),
        (
            f"bulk INSERT via the SQL adapter, per schedule (n={create['bulk_insert_n']:,})",
            fmt(create["bulk_insert_us_per_schedule"], " us"),
        ),
        ("load: TaskScheduler.initialize(), s", each("load_s")),
        ("start-up pass (settle every schedule once), s", each("start_pass_s")),
        ("caught up (ticks due during the pass fired), s", each("caught_up_s")),
        ("RSS before load (imports only), MB", each("rss_ready_mb")),
        ("RSS after load, MB", each("rss_loaded_mb")),
        ("RSS at the end, MB", each("rss_end_mb")),
        ("RSS peak (VmHWM), MB", each("vm_hwm_mb")),
        ("CPU, steady window, % of one core", each("cpu_pct_steady")),
        ("CPU, steady window, all replicas, % of one core", fmt(sum_of("cpu_pct_steady"))),
        ("CPU, start-up pass + catch-up, s", cpu_start()),
        (
            "fires per replica (whole run)",
            " / ".join(str(x) for x in checks["replica_fired"]),
        ),
        ("lost races per replica", " / ".join(str(x["loop_stats"]["lost_races"]) for x in reps)),
        (
            "fired as a backup (owner late) / batch conflicts, per replica",
            " / ".join(
                f"{x['loop_stats'].get('backup_fires', '-')}, "
                f"{x['loop_stats'].get('batch_conflicts', '-')}"
                for x in reps
            ),
        ),
        (
            "oldest heartbeat seen per replica, ms (TTL 5000)",
            " / ".join(fmt(v) for v in report["heartbeats"]["oldest_heartbeat_ms"]),
        ),
        (
            "time with fewer schedulers alive than running, s",
            fmt(report["heartbeats"]["seconds_with_fewer_alive"]),
        ),
        (f"event-loop lag p99, ms ({args.lag_probe_s * 1000:g} ms probe, steady)", lag("p99")),
        ("event-loop lag max, ms", lag("max")),
        ("gen-2 GC pauses: count, max ms (steady)", gen2()),
        (
            f"ticks expected in window ({window['seconds_checked']} s)",
            f"{checks['expected_in_window']:,}",
        ),
        ("ticks enqueued in window", f"{checks['enqueued_in_window']:,}"),
        ("missing in window", str(checks["missing_in_window"])),
        ("duplicate fires", str(checks["duplicate_fires"])),
        ("coalesced catch-up fires of pre-start ticks", str(late["before"]["count"])),
        ("missed (skipped) counter", str(checks["cluster_missed_counter"])),
    ]
    for key, label in (("steady", "steady"), ("window", "whole window")):
        s = late[key]
        rows.append(
            (
                f"lateness {label} p50 / p99 / max, ms (n={s['count']:,})",
                f"{fmt(s['p50'])} / {fmt(s['p99'])} / {fmt(s['max'])}",
            )
        )
    for key in ("first", "last"):
        s = checks[f"steady_batch_{key}_ms"]
        rows.append(
            (
                f"lateness of each second's {key} fire, p50 / p99 / max, ms",
                f"{fmt(s['p50'])} / {fmt(s['p99'])} / {fmt(s['max'])}",
            )
        )
    rows.append(
        ("Redis CPU, steady window, % (shared server)", fmt(report["window_cpu"]["redis_cpu_pct"]))
    )
    rows.append(
        (
            "other load on the host, % of one core",
            fmt(report["window_cpu"]["other_cpu_pct_of_one_core"]),
        )
    )
    return rows


def print_table(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--schedules", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=60.0, help="firing time after load")
    p.add_argument("--replicas", type=int, default=1, help="scheduler processes at once")
    p.add_argument(
        "--sample-create", type=int, default=200, help="schedules made via TaskScheduler.create"
    )
    p.add_argument(
        "--grace", type=float, default=5.0, help="ticks this close to the stop are not checked"
    )
    p.add_argument("--log-level", default="info", help="replicas' LOG_LEVEL (default info)")
    p.add_argument(
        "--lag-probe-s",
        type=float,
        default=LAG_PROBE_S,
        help="the event-loop lag probe's sleep (default 0.25; its wake-ups count as CPU)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile replica 0 (steady window)")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    p.add_argument("--timeout", type=float, default=300.0, help="per step, seconds")
    p.add_argument("--output", type=Path, default=HERE / "results" / "schedules-latest.json")
    args = p.parse_args(argv)
    if args.schedules < 1 or args.replicas < 1 or args.seconds < args.grace + 1:
        p.error("--schedules and --replicas must be >= 1; --seconds > --grace + 1")
    return args


async def main_async(args: argparse.Namespace) -> int:
    run = Run(
        args=args,
        prefix=f"bench-sched-{int(time.time())}-{os.getpid()}",
        tmp=Path(tempfile.mkdtemp(prefix="corral-bench-")),
    )
    r = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    started = time.monotonic()
    env: dict[str, Any] = {}
    try:
        env = await environment(r)
        print(f"prefix {run.prefix}; {env['date']}; load average {env['loadavg_at_start']}")
        await measure(r, run)
    except Exception as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for replica in run.replicas:
            if hasattr(replica, "process"):
                replica.kill()
        deleted = await delete_prefix(r, run.prefix)
        await r.aclose()
        print(f"deleted {deleted} keys under {run.prefix}:")
        shutil.rmtree(run.tmp, ignore_errors=True)
    duration = time.monotonic() - started
    env["loadavg_at_end"] = os.getloadavg()
    if "checks" in run.report:
        print()
        rows = table(run.report, args)
        print_table(rows)
        run.report["table"] = [{"metric": label, "value": value} for label, value in rows]
    print(f"\nwall time of the run: {duration:.1f} s")
    report = {
        "environment": env,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **run.report,
        "errors": run.errors,
        "wall_seconds": round(duration, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    for error in run.errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if run.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
