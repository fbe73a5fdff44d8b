"""The bullmq internals Corral relies on (``adapters/bullmq/internals.py``) are still there in
the installed bullmq, with the shapes Corral calls them with. A bullmq upgrade that moves one
fails here, with its name, rather than in a running worker."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import bullmq
import pytest
import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Queue, Worker
from bullmq.backends.redis_backend import RedisBackend
from bullmq.error_code import ErrorCode
from bullmq.lock_manager import LockManager
from bullmq.redis_connection import RedisConnection, loadScript
from bullmq.scripts import Scripts

from corral.adapters.bullmq import internals

COMMANDS = Path(bullmq.__file__).parent / "commands"

#: Worker state Corral reads: ``forceClosing`` means shutdown's deadline passed (record nothing
#: more); ``jobs`` holds the ``(job, token)`` pairs whose locks bullmq renews; ``drained`` and
#: ``waiting`` say a fetch found the queue empty and one slot waits for new jobs; ``processing``
#: holds the slots' tasks.
WORKER_STATE = (
    "drained",
    "waiting",
    "processing",
    "closing",
    "paused",
    "forceClosing",
    "jobs",
    "opts",
    "id",
    "redisConnection",
    "blockingRedisConnection",
    "limitUntil",
)
#: Job fields Corral reads besides its public data (``stacktrace`` is kept across attempts).
JOB_STATE = (
    "stalledCounter",
    "deferredFailure",
    "stacktrace",
    "finishedOn",
    "attemptsMade",
    "timestamp",
    "opts",
)


def _params(func: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p != "self"]


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=1)  # never connected
    yield client
    await client.aclose()


@pytest.mark.parametrize(
    ("owner", "method", "params", "is_async"),
    [
        (Worker, "getNextJob", ["token"], True),
        (Worker, "processJob", ["job", "token"], True),
        (Worker, "moveToActive", ["token"], True),
        (
            Worker,
            "nextJobFromJobData",
            ["job_data", "job_id", "limit_until", "delay_until", "token"],
            True,
        ),
        (Worker, "cancelProcessing", [], False),
        (Worker, "emit", None, False),
        (Worker, "on", None, False),
        (LockManager, "track_job", None, False),
        (LockManager, "untrack_job", ["job_id"], False),
        (RedisBackend, "moveToCompleted", None, True),
        (RedisBackend, "getState", ["job_id"], True),
        (RedisConnection, "getRedisVersion", [], True),
        (BullJob, "moveToFailed", None, True),
        (Scripts, "addJob", ["job", "pipe"], True),
        (Scripts, "toKey", ["name"], False),
        (Scripts, "finishedErrors", ["opts"], False),
    ],
)
def test_methods_corral_calls_exist(
    owner: type, method: str, params: list[str] | None, is_async: bool
) -> None:
    func = getattr(owner, method, None)
    assert func is not None, f"bullmq {owner.__name__}.{method} is gone"
    assert inspect.iscoroutinefunction(func) is is_async, f"{owner.__name__}.{method}"
    if params is not None:
        assert _params(func) == params, f"{owner.__name__}.{method} changed its parameters"


def test_argument_shapes_corral_relies_on() -> None:
    # positional (job_id, token, now) and the keyword fetch_next
    assert _params(LockManager.track_job)[:2] == ["job_id", "token"]
    assert len(_params(LockManager.track_job)) >= 3
    assert _params(RedisBackend.moveToCompleted)[:5] == [
        "job",
        "return_value",
        "remove_on_complete",
        "token",
        "fetch_next",
    ]
    assert _params(BullJob.moveToFailed)[:2] == ["err", "token"]
    assert "blocking_connection" in _params(RedisBackend.__init__)
    # moveToFailed keeps the traceback of the exception being handled (move_to_failed relies
    # on it to store the attempt's own traceback)
    assert "traceback.format_exc()" in inspect.getsource(BullJob.updateStacktrace)
    assert "self.updateStacktrace()" in inspect.getsource(BullJob.moveToFailed)


async def test_worker_and_job_state_corral_reads(client: aioredis.Redis) -> None:
    worker = Worker("internals-check", None, {"connection": client, "autorun": False})
    for name in WORKER_STATE:
        assert hasattr(worker, name), f"bullmq Worker.{name} is gone"
    assert "lockDuration" in worker.opts
    assert isinstance(worker.backend, RedisBackend)
    assert hasattr(worker.backend, "blocking_connection")
    assert isinstance(worker.lockManager, LockManager)
    # Shutdown's lock renewals are kept going by replacing the manager's close on the instance:
    # bullmq must call it through the worker's attribute, from run() and from close().
    for method in (Worker.run, Worker.close):
        assert "self.lockManager.close()" in inspect.getsource(method)
    assert set(internals.REQUEUE_KEYS) <= set(worker.scripts.keys)
    queue = Queue("internals-check", {"connection": client})
    job = BullJob(queue, "name", {}, {})
    for name in JOB_STATE:
        assert hasattr(job, name), f"bullmq Job.{name} is gone"
    assert isinstance(queue.scripts, Scripts)


def test_lua_scripts_exist_with_the_keys_corral_passes() -> None:
    script = loadScript(internals.REQUEUE_SCRIPT)
    header = script.split("]]", 1)[0]
    for n, name in enumerate(internals.REQUEUE_KEYS, start=1):
        expected = f"KEYS[{n}]  {name.removesuffix('s')} key"
        assert expected in header, f"{internals.REQUEUE_SCRIPT}: {expected!r}"
    for n, name in enumerate(("job id", "lock token", "job id key"), start=1):
        assert f"ARGV[{n}] {name}" in header
    stalled = (COMMANDS / "moveStalledJobsToWait-9.lua").read_text()
    assert f'"{internals.STALLED_TOO_OFTEN}"' in stalled
    assert (COMMANDS / "moveToFinished-14.lua").exists()


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.JobNotExist,
        ErrorCode.JobLockNotExist,
        ErrorCode.JobNotInState,
        ErrorCode.JobLockMismatch,
    ],
)
def test_a_lost_lock_is_still_reported_as_corral_expects(code: ErrorCode) -> None:
    error = Scripts.finishedErrors(None, {"code": code.value, "jobId": "7", "command": "x"})
    assert isinstance(error, TypeError)
    assert internals.refused(error), str(error)


def test_other_type_errors_are_not_refusals() -> None:
    assert not internals.refused(TypeError("Object of type set is not JSON serializable"))
