"""The per-job fast paths (``adapters/bullmq/hotpath.py``) do exactly what bullmq's own code
does: ``job_from_raw`` builds the job ``Job.fromJSON`` builds, ``next_job`` leaves the worker as
``nextJobFromJobData`` does, ``Completion`` sends ``moveToFinished`` the keys and arguments
``Scripts.moveToCompletedArgs`` makes. A bullmq upgrade that changes its side fails here."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Worker

from corral.adapters.bullmq import internals
from corral.adapters.bullmq.hotpath import JOB_FIELDS, Completion, job_from_raw

OPTS = (
    '{"removeOnFail":{"count":5000,"age":604800},"timeout":30000,"removeOnComplete":'
    '{"count":1000,"age":86400},"backoff":{"delay":5000,"type":"exponential"},'
    '"priority":16,"delay":0,"attempts":3}'
)
PLAIN = {"data": '{"i":1}', "name": "noop", "opts": OPTS, "delay": "0", "priority": "16",
         "timestamp": "1796064266562"}  # fmt: skip
RAWS = {
    "plain": PLAIN,
    "fetched": {**PLAIN, "processedOn": "1796064266600", "ats": "1"},
    "retried": {**PLAIN, "atm": "2", "ats": "3", "stacktrace": '["tb1","tb2"]',
                "failedReason": "KeyError: 'x'", "progress": '{"done":3}'},
    "recovered": {**PLAIN, "stc": "1", "defa": "job stalled more than allowable limit"},
    "finished": {**PLAIN, "finishedOn": "1796064267000", "returnvalue": '{"ok":true}',
                 "attemptsMade": "1"},
    "not-json-return": {**PLAIN, "returnvalue": "plain text", "progress": "7"},
    "scheduled": {**PLAIN, "rjk": "every-minute"},
    "child": {**PLAIN, "parentKey": "bull:parents:9", "parent": '{"id":"9","queueKey":"bull:p"}',
              "opts": '{"fpof":true,"parent":{"id":"9","queue":"bull:p"},"attempts":1}'},
    "no-opts": {"data": "[1,2]", "name": "n", "timestamp": "1"},
    "job-id-opts": {**PLAIN, "opts": '{"jobId":"custom","kl":5,"de":{"id":"d1"}}'},
}  # fmt: skip


@pytest.fixture
async def workers() -> AsyncIterator[tuple[Worker, Worker]]:
    client = aioredis.Redis(host="127.0.0.1", port=1, decode_responses=True)  # never connected
    one = Worker("hotpath-one", None, {"connection": client, "autorun": False})
    other = Worker("hotpath-two", None, {"connection": client, "autorun": False, "prefix": "x"})
    yield one, other
    await client.aclose()


def _state(job: BullJob) -> dict[str, Any]:
    return dict(vars(job))


def test_job_fields_are_the_ones_fromjson_reads(workers: tuple[Worker, Worker]) -> None:
    read: set[str] = set()

    class Recording(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    for raw in RAWS.values():
        for job_id in ("1", None):
            BullJob.fromJSON(workers[0], Recording(raw), job_id)
    assert read == JOB_FIELDS, "Job.fromJSON reads other fields now: update job_from_raw"


@pytest.mark.parametrize("kind", list(RAWS))
def test_job_from_raw_builds_the_job_fromjson_builds(
    kind: str, workers: tuple[Worker, Worker]
) -> None:
    raw = RAWS[kind]
    for queue in (*workers, workers[0]):  # the template is built once, used for both queues
        for job_id in ("42", None):
            ours = job_from_raw(queue, dict(raw), job_id)
            theirs = BullJob.fromJSON(queue, dict(raw), job_id)
            assert _state(ours) == _state(theirs)
        assert ours.queue is queue
        assert ours.backend is queue.backend


def test_each_job_has_its_own_options_and_parent(workers: tuple[Worker, Worker]) -> None:
    first = job_from_raw(workers[0], RAWS["child"], "1")
    first.opts["removeOnComplete"] = True
    first.parent["cpof"] = True
    second = job_from_raw(workers[0], RAWS["child"], "2")
    assert "removeOnComplete" not in second.opts
    assert "cpof" not in second.parent
    assert second.stacktrace is not first.stacktrace


def test_options_bullmq_refuses_are_refused_every_time(workers: tuple[Worker, Worker]) -> None:
    raw = {**PLAIN, "opts": '{"fpof":true,"rdof":true}'}
    for _ in range(2):
        with pytest.raises(ValueError, match="cannot be used together"):
            BullJob.fromJSON(workers[0], dict(raw), "1")
        with pytest.raises(ValueError, match="cannot be used together"):
            job_from_raw(workers[0], dict(raw), "1")


@pytest.mark.parametrize("kind", ["plain", "recovered"])
@pytest.mark.parametrize("limits", [(0, 0), (250, 0), (0, 1796064299999), (None, None)])
async def test_next_job_leaves_the_worker_as_bullmq_does(
    kind: str, limits: tuple[int | None, int | None], workers: tuple[Worker, Worker]
) -> None:
    ours, theirs = workers[0], copy.copy(workers[0])
    for worker in (ours, theirs):
        worker.drained, worker.blockUntil, worker.limitUntil = True, 5, 9
    fetched = [dict(RAWS[kind]), "7", *limits]
    job = await internals.next_job(ours, fetched, "tok:1")
    limit, delay = (value or 0 for value in limits)  # what next_job gave bullmq before
    stock = await Worker.nextJobFromJobData(theirs, dict(RAWS[kind]), "7", limit, delay, "tok:1")
    assert job is not None
    assert stock is not None
    assert (job.queue, stock.queue) == (ours, theirs)
    assert _state(job) | {"queue": None} == _state(stock) | {"queue": None}
    assert job.token == stock.token
    for name in ("drained", "blockUntil", "limitUntil"):
        assert getattr(ours, name) == getattr(theirs, name), name


REMOVE = [True, False, None, 0, 5, {"count": 1000, "age": 86400}, {"count": True}, {"age": 1.5},
          [1], "yes"]  # fmt: skip


@pytest.mark.parametrize("remove", REMOVE, ids=repr)
@pytest.mark.parametrize(
    "worker_opts", [{}, {"limiter": {"max": 5, "duration": 1000}, "metrics": {"maxDataPoints": 9}}]
)
async def test_completion_sends_what_bullmq_would(remove: Any, worker_opts: dict[str, Any]) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, decode_responses=True)  # never connected
    worker = Worker("hotpath-c", None, {"connection": client, "autorun": False, **worker_opts})
    completion = Completion(worker)
    variants = [
        ({}, 0, "w:1"),
        ({}, 0, "w:1"),  # from the cache
        ({}, 2, "w:1"),
        ({}, 2, "w:2"),
        ({"failParentOnFailure": True}, 0, "w:1"),
        ({"ignoreDependencyOnFailure": 1}, 0, "w:1"),
        ({"attempts": 3.0}, 0, "w:1"),
    ]
    try:
        for extra, made, token in variants:
            opts = {"attempts": 3, "removeOnComplete": remove, **extra}
            job = BullJob(worker, "noop", {}, opts, "11")
            job.attemptsMade = made
            for fetch, result in ((True, {"r": [1, "é"]}), (False, None), (True, 1.5)):
                keys, args = completion.args(job, result, token, fetch)
                their_keys, their_args = worker.scripts.moveToCompletedArgs(
                    job, result, remove, token, fetch
                )
                assert keys == their_keys
                assert abs(args[1] - their_args[1]) < 1000  # the finished-on timestamp
                assert args[:1] + args[2:] == their_args[:1] + their_args[2:], (extra, made)
    finally:
        await client.aclose()


async def test_a_result_bullmq_cannot_store_is_refused_alike(
    workers: tuple[Worker, Worker],
) -> None:
    worker = workers[0]
    job = BullJob(worker, "noop", {}, {}, "1")
    for result in (float("nan"), {1, 2}):
        with pytest.raises((ValueError, TypeError)) as ours:
            Completion(worker).args(job, result, "w:1", True)
        with pytest.raises((ValueError, TypeError)) as theirs:
            worker.scripts.moveToCompletedArgs(job, result, False, "w:1", True)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))
