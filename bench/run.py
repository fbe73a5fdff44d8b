"""Corral vs raw bullmq, side by side: bulk enqueue, one-worker drain, and pickup latency.

Run from the repository root::

    .venv/bin/python bench/run.py [--jobs 20000] [--latency-jobs 500] [--repeat 3]
                                  [--only corral|bullmq] [--uvloop] [--no-execution-log]

See bench/README.md for what each figure means. Every run uses its own key prefix
(``bench-<timestamp>-<pid>``) and deletes exactly those keys at the end (SCAN + DEL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from workers import JOB_NAME, Side, WorkerSpec, child_main

HERE = Path(__file__).resolve().parent
SIDES: tuple[Side, ...] = ("corral", "bullmq")
# Fairness: Corral's default retention keeps the last 1000 completed jobs (and none older than
# 24 h); raw bullmq gets the same count.
BULLMQ_JOB_OPTS: dict[str, Any] = {"removeOnComplete": {"count": 1000}}
POLL_S = 0.005
IDLE_BEFORE_LATENCY_S = 1.0


class BenchError(Exception):
    """A scenario went wrong (timeout, lost or failed jobs, a crashed worker)."""


# -- producers ----------------------------------------------------------------------------------


class Producer:
    """Adds jobs to one queue, the way each side's users would."""

    async def warm_up(self) -> None:
        raise NotImplementedError

    async def add_bulk(self, items: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def add(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class CorralProducer(Producer):
    def __init__(self, redis_url: str, prefix: str, queue: str) -> None:
        from corral import JobQueueManager, load_settings

        settings = load_settings(queue=queue, prefix=prefix, redis_url=redis_url)
        self.manager = JobQueueManager(settings)

    async def warm_up(self) -> None:
        await self.manager.get_queue_status()

    async def add_bulk(self, items: Sequence[dict[str, Any]]) -> None:
        await self.manager.add_bulk_jobs([{"name": JOB_NAME, "data": d} for d in items])

    async def add(self, data: dict[str, Any]) -> None:
        await self.manager.add_job(JOB_NAME, data)

    async def close(self) -> None:
        await self.manager.graceful_shutdown()


class BullmqProducer(Producer):
    def __init__(self, redis_url: str, prefix: str, queue: str) -> None:
        from bullmq import Queue

        self.queue = Queue(queue, {"connection": redis_url, "prefix": prefix})

    async def warm_up(self) -> None:
        await self.queue.getJobCounts("wait")

    async def add_bulk(self, items: Sequence[dict[str, Any]]) -> None:
        await self.queue.addBulk(
            [{"name": JOB_NAME, "data": d, "opts": BULLMQ_JOB_OPTS} for d in items]
        )

    async def add(self, data: dict[str, Any]) -> None:
        await self.queue.add(JOB_NAME, data, BULLMQ_JOB_OPTS)

    async def close(self) -> None:
        await self.queue.close()


def make_producer(side: Side, redis_url: str, prefix: str, queue: str) -> Producer:
    if side == "corral":
        return CorralProducer(redis_url, prefix, queue)
    return BullmqProducer(redis_url, prefix, queue)


# -- Redis-side observation ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    wait: int
    paused: int
    prioritized: int
    delayed: int
    active: int
    failed: int
    completed: int

    @property
    def pending(self) -> int:
        """Jobs not finished yet (completed ones beyond the retention count are deleted, so
        "drained" is "nothing pending", not "completed == N")."""
        return self.wait + self.paused + self.prioritized + self.delayed + self.active


async def queue_counts(r: aioredis.Redis, prefix: str, queue: str) -> Counts:
    base = f"{prefix}:{queue}"
    async with r.pipeline(transaction=False) as pipe:
        pipe.llen(f"{base}:wait")
        pipe.llen(f"{base}:paused")
        pipe.zcard(f"{base}:prioritized")
        pipe.zcard(f"{base}:delayed")
        pipe.llen(f"{base}:active")
        pipe.zcard(f"{base}:failed")
        pipe.zcard(f"{base}:completed")
        values = await pipe.execute()
    return Counts(*(int(v) for v in values))


async def redis_cpu_s(r: aioredis.Redis) -> float:
    info = await r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def delete_prefix(r: aioredis.Redis, prefix: str) -> int:
    deleted = 0
    batch: list[str] = []
    async for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += await r.delete(*batch)
            batch.clear()
    if batch:
        deleted += await r.delete(*batch)
    return deleted


def host_busy_s() -> float:
    """CPU seconds all cores of the host have spent busy since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def proc_cpu_s(pid: int) -> float:
    """user+system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the worker process -------------------------------------------------------------------------


class WorkerProcess:
    """A spawned child running one side's worker (bench/workers.py)."""

    def __init__(self, spec: WorkerSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(
            target=child_main, args=(spec, child_conn), name=f"bench-{spec.side}-{spec.mode}"
        )
        self.process.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def receive(self, expected: str, timeout_s: float) -> tuple[Any, ...]:
        conn = self.conn
        ready = await asyncio.get_running_loop().run_in_executor(None, conn.poll, timeout_s)
        if not ready:
            raise BenchError(f"worker sent no {expected!r} within {timeout_s:.0f} s")
        try:
            message: tuple[Any, ...] = conn.recv()
        except EOFError:
            raise BenchError(
                f"worker exited (code {self.process.exitcode}) before {expected!r}"
            ) from None
        if message[0] == "error":
            raise BenchError(f"worker raised:\n{message[1]}")
        if message[0] != expected:
            raise BenchError(f"worker sent {message[0]!r}, expected {expected!r}")
        return message

    async def stop(self, timeout_s: float = 30) -> tuple[int, list[float]]:
        self.conn.send("stop")
        _, calls, latencies = await self.receive("stopped", timeout_s)
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, timeout_s)
        return int(calls), list(latencies)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


# -- scenarios ----------------------------------------------------------------------------------


@dataclass
class Settings:
    redis_url: str
    prefix: str
    jobs: int
    chunk: int
    concurrency: int
    latency_jobs: int
    latency_interval_ms: float
    uvloop: bool
    timeout_s: float
    execution_log: bool = True


@dataclass
class SideResult:
    side: Side
    repeat: int
    metrics: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def wait_drained(
    r: aioredis.Redis, s: Settings, queue: str, worker: WorkerProcess, timeout_s: float
) -> tuple[float, Counts]:
    """Poll until nothing is pending; return (wall time of that moment, counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await queue_counts(r, s.prefix, queue)
        if counts.pending == 0:
            return time.time(), counts
        if not worker.process.is_alive():
            raise BenchError(f"worker died (exit code {worker.process.exitcode}); {counts}")
        if time.monotonic() > deadline:
            raise BenchError(f"not drained after {timeout_s:.0f} s: {counts}")
        await asyncio.sleep(POLL_S)


async def enqueue_and_drain(r: aioredis.Redis, s: Settings, out: SideResult) -> None:
    """(a) bulk enqueue of N jobs, then (b) one worker process drains them."""
    side = out.side
    queue = f"{side}-{out.repeat}-drain"
    producer = make_producer(side, s.redis_url, s.prefix, queue)
    try:
        await producer.warm_up()
        started = time.perf_counter()
        for first in range(0, s.jobs, s.chunk):
            await producer.add_bulk([{"i": i} for i in range(first, min(first + s.chunk, s.jobs))])
        elapsed = time.perf_counter() - started
    finally:
        await producer.close()
    out.metrics["enqueue_jobs_per_s"] = s.jobs / elapsed
    counts = await queue_counts(r, s.prefix, queue)
    out.checks["enqueued"] = counts.pending
    if counts.pending != s.jobs:
        raise BenchError(f"enqueued {s.jobs} but {counts.pending} are pending: {counts}")

    spec = WorkerSpec(
        side=side,
        mode="drain",
        redis_url=s.redis_url,
        prefix=s.prefix,
        queue=queue,
        concurrency=s.concurrency,
        uvloop=s.uvloop,
        execution_log=s.execution_log,
    )
    worker = WorkerProcess(spec)
    try:
        _, t0, cpu0 = await worker.receive("started", 60)
        redis0, host0, own0 = await redis_cpu_s(r), host_busy_s(), own_cpu_s()
        t_end, counts = await wait_drained(r, s, queue, worker, s.timeout_s)
        cpu_end = proc_cpu_s(worker.pid)
        redis_end, host_end, own_end = await redis_cpu_s(r), host_busy_s(), own_cpu_s()
        calls, _ = await worker.stop()
    finally:
        worker.kill()
    out.metrics["drain_jobs_per_s"] = s.jobs / (t_end - t0)
    out.metrics["drain_worker_cpu_us_per_job"] = (cpu_end - cpu0) / s.jobs * 1e6
    out.metrics["drain_redis_cpu_us_per_job"] = (redis_end - redis0) / s.jobs * 1e6
    # CPU the host spent on anything but this worker, Redis and this process during the drain
    # (other load on the machine), as a share of one core. Approximate: the windows differ a
    # little and clock ticks are 10 ms.
    others = (host_end - host0) - (cpu_end - cpu0) - (redis_end - redis0) - (own_end - own0)
    out.checks.update(
        drain_seconds=round(t_end - t0, 3),
        drain_other_cpu_pct_of_one_core=round(max(0.0, others) / (t_end - t0) * 100, 1),
        handler_calls=calls,
        failed=counts.failed,
        completed_kept=counts.completed,
    )
    if side == "corral":
        stats = await r.hget(f"{s.prefix}:{queue}:corral:stats", "completed")
        out.checks["corral_stats_completed"] = int(stats or 0)
    if calls != s.jobs or counts.failed:
        raise BenchError(
            f"drain: {s.jobs} jobs, handler ran {calls} times, {counts.failed} failed: {counts}"
        )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def latency(r: aioredis.Redis, s: Settings, out: SideResult) -> None:
    """(c) jobs enqueued one at a time, ``latency_interval_ms`` apart, to an idle worker."""
    side = out.side
    queue = f"{side}-{out.repeat}-latency"
    spec = WorkerSpec(
        side=side,
        mode="latency",
        redis_url=s.redis_url,
        prefix=s.prefix,
        queue=queue,
        concurrency=s.concurrency,
        uvloop=s.uvloop,
        execution_log=s.execution_log,
    )
    worker = WorkerProcess(spec)
    producer = make_producer(side, s.redis_url, s.prefix, queue)
    try:
        await worker.receive("started", 60)
        await producer.warm_up()
        await asyncio.sleep(IDLE_BEFORE_LATENCY_S)  # let the worker go idle (blocking wait)
        interval = s.latency_interval_ms / 1000
        start = time.monotonic()
        add_ms: list[float] = []
        for i in range(s.latency_jobs):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            before = time.perf_counter()
            await producer.add({"t": time.time() * 1000})
            add_ms.append((time.perf_counter() - before) * 1000)
        _, counts = await wait_drained(r, s, queue, worker, s.timeout_s)
        calls, latencies = await worker.stop()
    finally:
        await producer.close()
        worker.kill()
    out.checks.update(latency_handler_calls=calls, latency_failed=counts.failed)
    if calls != s.latency_jobs or counts.failed:
        raise BenchError(
            f"latency: {s.latency_jobs} jobs, handler ran {calls} times, "
            f"{counts.failed} failed: {counts}"
        )
    ordered = sorted(latencies)
    out.metrics["latency_p50_ms"] = percentile(ordered, 50)
    out.metrics["latency_p99_ms"] = percentile(ordered, 99)
    out.metrics["latency_max_ms"] = ordered[-1]
    out.metrics["add_job_p50_ms"] = statistics.median(add_ms)


async def run_side(r: aioredis.Redis, s: Settings, side: Side, repeat: int) -> SideResult:
    out = SideResult(side=side, repeat=repeat)
    scenarios: tuple[Callable[[aioredis.Redis, Settings, SideResult], Awaitable[None]], ...] = (
        enqueue_and_drain,
        latency,
    )
    for scenario in scenarios:
        try:
            await scenario(r, s, out)
        except Exception as exc:
            message = f"{side} repeat {repeat} {scenario.__name__}: {type(exc).__name__}: {exc}"
            out.errors.append(message)
            print(f"!! {message}", file=sys.stderr)
    return out


# -- report -------------------------------------------------------------------------------------

METRICS: tuple[tuple[str, str, str], ...] = (
    # key, label, which direction is better
    ("enqueue_jobs_per_s", "bulk enqueue, jobs/s", "higher"),
    ("drain_jobs_per_s", "1 worker drain (c=10), jobs/s", "higher"),
    ("drain_worker_cpu_us_per_job", "worker CPU, us/job", "lower"),
    ("drain_redis_cpu_us_per_job", "Redis CPU, us/job (shared server)", "lower"),
    ("latency_p50_ms", "pickup latency p50, ms", "lower"),
    ("latency_p99_ms", "pickup latency p99, ms", "lower"),
    ("latency_max_ms", "pickup latency max, ms", "lower"),
    ("add_job_p50_ms", "single add_job call p50, ms", "lower"),
)


def medians(results: Sequence[SideResult], side: Side) -> dict[str, float | None]:
    summary: dict[str, float | None] = {}
    for key, _, _ in METRICS:
        values = [r.metrics[key] for r in results if r.side == side and key in r.metrics]
        summary[key] = statistics.median(values) if values else None
    return summary


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(summary: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    rows = []
    for key, label, better in METRICS:
        c = summary.get("corral", {}).get(key)
        b = summary.get("bullmq", {}).get(key)
        ratio = c / b if c is not None and b else None
        rows.append(
            {
                "metric": key,
                "label": label,
                "better": better,
                "corral": c,
                "bullmq": b,
                "ratio": ratio,
            }
        )
    return rows


def print_table(rows: Sequence[dict[str, Any]], repeats: int) -> None:
    title = "median of" if repeats > 1 else "single run,"
    head = f"{'metric (' + title + f' {repeats} repeat(s))':<50} {'corral':>10} {'bullmq':>10}"
    print(f"{head} {'ratio c/b':>10}")
    print("-" * len(head + "-----------"))
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        label = f"{row['label']} ({row['better']} better)"
        print(f"{label:<50} {fmt(row['corral']):>10} {fmt(row['bullmq']):>10} {ratio:>10}")


def git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head or None


async def environment(r: aioredis.Redis, s: Settings) -> dict[str, Any]:
    server = await r.info("server")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host_cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "bullmq": metadata.version("bullmq"),
        "redis_py": metadata.version("redis"),
        "hiredis": metadata.version("hiredis"),
        "uvloop": metadata.version("uvloop") if s.uvloop else None,
        "redis_server": server.get("redis_version"),
        "git_commit": git_commit(),
    }


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs for enqueue + drain")
    p.add_argument("--chunk", type=int, default=1000, help="jobs per bulk call (Corral max 1000)")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--latency-jobs", type=int, default=500)
    p.add_argument("--latency-interval-ms", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=1, help="repeats per side; medians reported")
    p.add_argument("--only", choices=SIDES, help="run one side only")
    p.add_argument("--uvloop", action="store_true", help="uvloop in producer and workers")
    p.add_argument(
        "--no-execution-log",
        action="store_true",
        help="Corral's worker without the SQL execution log (default: on, as shipped)",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    p.add_argument("--timeout", type=float, default=300.0, help="per-drain timeout, seconds")
    p.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.latency_jobs < 1 or args.repeat < 1 or not 1 <= args.chunk <= 1000:
        p.error("--jobs, --latency-jobs and --repeat must be >= 1; --chunk 1..1000")
    return args


async def main_async(args: argparse.Namespace) -> int:
    s = Settings(
        redis_url=args.redis_url,
        prefix=f"bench-{int(time.time())}-{os.getpid()}",
        jobs=args.jobs,
        chunk=args.chunk,
        concurrency=args.concurrency,
        latency_jobs=args.latency_jobs,
        latency_interval_ms=args.latency_interval_ms,
        uvloop=args.uvloop,
        timeout_s=args.timeout,
        execution_log=not args.no_execution_log,
    )
    sides: tuple[Side, ...] = (args.only,) if args.only else SIDES
    r = aioredis.Redis.from_url(s.redis_url, decode_responses=True)
    results: list[SideResult] = []
    started = time.monotonic()
    try:
        env = await environment(r, s)
        print(f"prefix {s.prefix}; {env['date']}; load average {env['loadavg_at_start']}")
        for repeat in range(args.repeat):
            # Alternate which side goes first, so drift (other load) does not favour one.
            order = sides if repeat % 2 == 0 else tuple(reversed(sides))
            for side in order:
                print(f"-- repeat {repeat + 1}/{args.repeat}: {side}", flush=True)
                result = await run_side(r, s, side, repeat)
                print(f"   {json.dumps({k: round(v, 2) for k, v in result.metrics.items()})}")
                print(f"   checks {json.dumps(result.checks)}", flush=True)
                results.append(result)
    finally:
        deleted = await delete_prefix(r, s.prefix)
        await r.aclose()
        print(f"deleted {deleted} keys under {s.prefix}:")
    duration = time.monotonic() - started
    env["loadavg_at_end"] = os.getloadavg()
    summary = {side: medians(results, side) for side in sides}
    rows = table(summary)
    print()
    print_table(rows, args.repeat)
    print(f"\nwall time of the run: {duration:.1f} s")
    report = {
        "environment": env,
        "settings": {
            "jobs": s.jobs,
            "chunk": s.chunk,
            "concurrency": s.concurrency,
            "latency_jobs": s.latency_jobs,
            "latency_interval_ms": s.latency_interval_ms,
            "repeat": args.repeat,
            "uvloop": s.uvloop,
            "corral_execution_log": s.execution_log,
            "bullmq_job_opts": BULLMQ_JOB_OPTS,
            "corral_job_opts": "defaults (priority 5, attempts 3, timeout 30 s, "
            "remove_on_complete count 1000 / age 24 h)",
        },
        "table": rows,
        "runs": [
            {
                "side": x.side,
                "repeat": x.repeat,
                "metrics": x.metrics,
                "checks": x.checks,
                "errors": x.errors,
            }
            for x in results
        ],
        "wall_seconds": round(duration, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    errors = [e for x in results for e in x.errors]
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main_async(args))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
