from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

import redis

from corral import Job, UnrecoverableError, job_handler


def _ledger(job: Job, event: str) -> None:
    key = job.data.get("ledger")
    if not key:
        return
    # A test whose queue's Redis refuses writes (out of memory) keeps its ledger elsewhere.
    url = os.environ.get("CORRAL_TEST_LEDGER_URL") or os.environ.get("REDIS_URL")
    client = redis.Redis.from_url(url or "redis://127.0.0.1:6379")
    try:
        client.rpush(
            key,
            json.dumps(
                {
                    "job_id": job.id,
                    "event": event,
                    "attempt": job.attempts_made + 1,
                    "pid": os.getpid(),
                    "t": time.time(),
                    "tag": job.data.get("tag"),
                }
            ),
        )
    finally:
        client.close()


@job_handler
async def noop(job: Job) -> None:
    return None


@job_handler
async def record(job: Job) -> dict[str, Any]:
    """Ledger a start and a finish; return the start time."""
    started = time.time()
    _ledger(job, "start")
    await asyncio.sleep(float(job.data.get("sleep", 0)))
    _ledger(job, "finish")
    return {"started": started, "tag": job.data.get("tag")}


@job_handler
def record_sync(job: Job) -> dict[str, Any]:
    started = time.time()
    _ledger(job, "start")
    time.sleep(float(job.data.get("sleep", 0)))
    _ledger(job, "finish")
    return {"started": started}


@job_handler
async def jitter(job: Job) -> dict[str, int]:
    """Ledger a start, sleep ``data.sleep`` s (default: a random 50-500 ms), ledger a finish;
    return the pid, so a test can tell which run's result the queue kept."""
    _ledger(job, "start")
    sleep = job.data.get("sleep")
    await asyncio.sleep(float(sleep) if sleep is not None else random.uniform(0.05, 0.5))
    _ledger(job, "finish")
    return {"pid": os.getpid()}


@job_handler
def spin_sync(job: Job) -> dict[str, int]:
    """A CPU-bound plain handler (it runs in a thread): a busy loop for ``data.seconds``."""
    _ledger(job, "start")
    until = time.monotonic() + float(job.data.get("seconds", 1))
    spins = 0
    while time.monotonic() < until:
        spins += 1
    _ledger(job, "finish")
    return {"pid": os.getpid(), "spins": spins}


@job_handler
async def fail(job: Job) -> None:
    _ledger(job, "start")
    raise RuntimeError(f"boom on attempt {job.attempts_made + 1}")


@job_handler
async def record_to_file(job: Job) -> dict[str, Any]:
    """Like ``record``, with the ledger in a file (data["path"]): it needs no Redis, so it
    finishes while Redis is away."""
    path = str(job.data["path"])
    with open(path, "a") as ledger:
        ledger.write(json.dumps({"job_id": job.id, "event": "start"}) + "\n")
    await asyncio.sleep(float(job.data.get("sleep", 0)))
    with open(path, "a") as ledger:
        ledger.write(json.dumps({"job_id": job.id, "event": "finish"}) + "\n")
    return {"pid": os.getpid()}


@job_handler
async def poison(job: Job) -> None:
    """Kills its worker process on every attempt, after its neighbours have started."""
    _ledger(job, "start")
    await asyncio.sleep(float(job.data.get("sleep", 0.3)))
    os._exit(1)


@job_handler
async def key_error(job: Job) -> None:
    """Fails the way real code does: a lookup of a key that is not there."""
    sizes: dict[str, int] = {}
    _ledger(job, "start")
    sizes["height"] = sizes["width"] * 2


@job_handler
async def fail_unrecoverable(job: Job) -> None:
    _ledger(job, "start")
    raise UnrecoverableError("this cannot succeed")


@job_handler
async def progress(job: Job) -> str:
    for step in (25, 50, 100):
        await job.update_progress(step)
    await job.log("all steps done")
    return "done"


@job_handler
async def chatty(job: Job) -> int:
    """Log ``data.lines`` numbered lines (default 3)."""
    lines = int(job.data.get("lines", 3))
    for n in range(lines):
        await job.log(f"line {n}")
    return lines


@job_handler
def progress_sync(job: Job) -> str:
    """A plain handler (it runs in a thread) reporting progress and logging."""
    for step in (25, 50, 100):
        job.update_progress_sync(step)
    job.log_sync("sync steps done")
    return "done"


@job_handler
async def progress_sync_misused(job: Job) -> str:
    """An async handler calling the sync variant: a clear error, not a hang."""
    job.update_progress_sync(50)
    return "unreachable"


@job_handler
async def echo(job: Job) -> dict[str, Any]:
    """Return the job's data as its result."""
    return dict(job.data)


@job_handler
async def stubborn(job: Job) -> None:
    """Ledger a start, then wait; cancelled, spend ``data.cleanup`` s (default 50) cleaning up
    before giving in: a handler that does not stop when its worker's deadline cuts it off."""
    _ledger(job, "start")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(float(job.data.get("cleanup", 50)))
        raise
