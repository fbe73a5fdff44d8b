"""The worker side of the bench: runs in a spawned child process, one per scenario.

Protocol over a ``multiprocessing`` pipe (child -> parent unless noted):

* ``("started", t0_wall_s, cpu0_s)`` once the worker runs; ``t0`` is taken just before the
  worker is created (so its connection set-up counts), ``cpu0`` is this process's user+system
  CPU time at that moment;
* parent -> child: ``"stop"``;
* ``("stopped", calls, latencies_ms)``: handler invocations, and for the latency mode the
  ``start in handler - enqueue time`` of every job, in ms;
* ``("error", traceback_text)`` if anything raised.

Handlers are no-ops apart from counting (and, for latency, one ``time.time()``), the same work
on both sides.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

Side = Literal["corral", "bullmq"]
Mode = Literal["drain", "latency"]

JOB_NAME = "noop"
SHUTDOWN_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    side: Side
    mode: Mode
    redis_url: str
    prefix: str
    queue: str
    concurrency: int
    uvloop: bool
    execution_log: bool = True  # Corral only: write the SQL execution log (the default)


class Record:
    """What the handler saw: how often it ran and, in latency mode, how late each start was."""

    __slots__ = ("calls", "latencies_ms", "timed")

    def __init__(self, *, timed: bool) -> None:
        self.calls = 0
        self.timed = timed
        self.latencies_ms: list[float] = []

    def hit(self, data: Any) -> None:
        if self.timed:
            self.latencies_ms.append(time.time() * 1000 - float(data["t"]))
        self.calls += 1


def process_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def child_main(spec: WorkerSpec, conn: Connection) -> None:
    """Entry point of the spawned worker process."""
    try:
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        if spec.uvloop:
            import uvloop

            loop_factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(spec, conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


async def _serve(spec: WorkerSpec, conn: Connection) -> None:
    record = Record(timed=spec.mode == "latency")
    start = _start_corral if spec.side == "corral" else _start_bullmq
    t0 = time.time()
    cpu0 = process_cpu_s()
    stop = await start(spec, record)
    conn.send(("started", t0, cpu0))
    message = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    if message != "stop":
        raise RuntimeError(f"unexpected message from the parent: {message!r}")
    await stop()
    conn.send(("stopped", record.calls, record.latencies_ms))


async def _start_corral(spec: WorkerSpec, record: Record) -> Callable[[], Awaitable[Any]]:
    from corral import Job, JobQueueManager, load_settings
    from corral.core.handlers import HandlerRegistry

    async def noop(job: Job) -> None:
        record.hit(job.data)

    registry = HandlerRegistry()
    registry.register(noop, JOB_NAME)
    settings = load_settings(queue=spec.queue, prefix=spec.prefix, redis_url=spec.redis_url)
    manager = JobQueueManager(settings)
    await manager.start_worker(
        registry, concurrency=spec.concurrency, execution_log=spec.execution_log
    )

    async def stop() -> None:
        drained = await manager.graceful_shutdown(SHUTDOWN_TIMEOUT_MS)
        if not drained:
            raise RuntimeError("corral: graceful_shutdown did not drain in time")

    return stop


async def _start_bullmq(spec: WorkerSpec, record: Record) -> Callable[[], Awaitable[Any]]:
    from bullmq import Worker

    async def process(job: Any, token: str) -> None:
        record.hit(job.data)

    # Stock usage: a URL (bullmq makes its own single-connection client), autorun on.
    worker = Worker(
        spec.queue,
        process,
        {"connection": spec.redis_url, "concurrency": spec.concurrency, "prefix": spec.prefix},
    )

    async def stop() -> None:
        await asyncio.wait_for(worker.close(), SHUTDOWN_TIMEOUT_MS / 1000)

    return stop
