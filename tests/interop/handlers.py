"""The handlers Corral runs in the interop tests: the same behaviour as the processor of
``node/consumer.mjs``, so a job's data means the same whichever side runs it.

Each attempt pushes one JSON row to the Redis list named by ``data["ledger"]`` (on REDIS_URL):
``{"worker": "corral", "id", "name", "data", "attemptsMade", "pid", "t"}``. The data steers the
attempt: ``fail_attempts`` (n) fails the first n attempts, ``unrecoverable`` fails it for good,
``sleep_ms`` waits before finishing. A completed job returns
``{"seen_by": "corral", "name", "data"}``. Used in-process and by ``corral worker`` processes
(``CORRAL_HANDLERS=tests.interop.handlers``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import redis

from corral import Job, UnrecoverableError, job_handler

_clients: dict[str, redis.Redis] = {}


def _ledger(job: Job) -> None:
    key = job.data.get("ledger")
    if not key:
        return
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    row = {
        "worker": "corral",
        "id": job.id,
        "name": job.name,
        "data": job.data,
        "attemptsMade": job.attempts_made,
        "pid": os.getpid(),
        "t": round(time.time() * 1000),
    }
    client.rpush(key, json.dumps(row))


async def _attempt(job: Job) -> dict[str, Any]:
    _ledger(job)
    sleep_ms = job.data.get("sleep_ms")
    if sleep_ms:
        await asyncio.sleep(float(sleep_ms) / 1000)
    if job.data.get("unrecoverable"):
        raise UnrecoverableError(f"corral gives up on {job.id}")
    if job.attempts_made < int(job.data.get("fail_attempts", 0)):
        raise RuntimeError(f"corral boom on attempt {job.attempts_made + 1}")
    return {"seen_by": "corral", "name": job.name, "data": job.data}


@job_handler("interop")
async def interop(job: Job) -> dict[str, Any]:
    return await _attempt(job)


@job_handler("sendReport")  # a name as a Node application would write it
async def send_report(job: Job) -> dict[str, Any]:
    return await _attempt(job)
