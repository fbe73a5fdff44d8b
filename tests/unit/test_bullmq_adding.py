"""The add path (``adapters/bullmq/adding.py``) sends what bullmq's own would: for every kind of
job Corral adds (plain, delayed, with a job id, with each option Corral maps), ``Adder`` picks
the script ``Scripts.addJob`` picks and gives it the same keys and arguments. A bullmq upgrade
that changes its side fails here. (Sending them is covered by every test that adds a job.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from bullmq import Job as BullJob
from bullmq import Queue

from corral.adapters.bullmq.adding import ADD_KEYS, Adder
from corral.adapters.bullmq.mapping import to_bullmq_options
from corral.core.jobs import JobSpec, build_spec

TIMESTAMP_MS = 1_796_064_266_562

SPECS = {
    "plain": build_spec("noop", {"i": 1}, {}),
    "urgent": build_spec("noop", {"i": 1}, {"priority": 20}),
    "delayed": build_spec("send", {"to": "a@b"}, {"delay": 1500}),
    "job id": build_spec("noop", {}, {"job_id": "order-42"}),
    "every option": build_spec(
        "report",
        {"nested": {"list": [1, 2.5, None, True, "é"]}},
        {
            "priority": 3,
            "category": "reports",
            "timeout": 5000,
            "attempts": 7,
            "backoff": {"type": "fixed", "delay": 250},
            "remove_on_complete": 0,
            "remove_on_fail": {"age": 60},
        },
    ),
    "kept forever, no timeout": build_spec(
        "noop", {}, {"remove_on_complete": False, "remove_on_fail": False, "timeout": None}
    ),
}


@pytest.fixture
async def queues() -> AsyncIterator[tuple[Queue, Queue]]:
    client = aioredis.Redis(host="127.0.0.1", port=1, decode_responses=True)  # never connected
    yield (
        Queue("adding-one", {"connection": client}),
        Queue("adding-two", {"connection": client, "prefix": "corral"}),
    )
    await client.aclose()


def _bullmq_sends(queue: Queue, spec: JobSpec, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The script, keys and arguments ``Scripts.addJob`` sends for ``spec``: its scripts are
    replaced by recorders, its clock by ``TIMESTAMP_MS``."""
    sent: list[tuple[str, list[Any], list[Any]]] = []

    def recorder(name: str) -> Any:
        async def record(*, keys: list[Any], args: list[Any], client: Any = None) -> str:
            sent.append((name, keys, args))
            return "1"

        return record

    for name in ADD_KEYS:
        monkeypatch.setitem(queue.scripts.commands, name, recorder(name))
    monkeypatch.setattr("bullmq.job.time.time", lambda: TIMESTAMP_MS / 1000)
    job = BullJob(
        queue, spec.name, spec.data, {**queue.jobsOpts, **to_bullmq_options(spec.options)}
    )
    return sent, job


@pytest.mark.parametrize("kind", list(SPECS))
async def test_an_add_sends_what_bullmq_would(
    kind: str, queues: tuple[Queue, Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SPECS[kind]
    for queue in (*queues, queues[0]):  # the second time from the options' cache
        adder = Adder(queue)
        for _ in range(2):
            sent, job = _bullmq_sends(queue, spec, monkeypatch)
            await queue.scripts.addJob(job)
            assert [adder.command(spec, TIMESTAMP_MS)] == sent


async def test_the_arguments_are_the_job_as_bullmq_stores_it(queues: tuple[Queue, Queue]) -> None:
    """Read back as bullmq's Lua reads them: the header, the data and the options."""
    spec = SPECS["every option"]
    script, keys, args = Adder(queues[1]).command(spec, TIMESTAMP_MS)
    assert script == "addPrioritizedJob"
    assert keys[0] == "corral:adding-two:marker"
    header = msgpack.unpackb(args[0])
    assert header == ["corral:adding-two:", "", "report", TIMESTAMP_MS, *[None] * 5]
    assert json.loads(args[1]) == spec.data
    opts = msgpack.unpackb(args[2])
    assert opts["priority"] == 21 - 3
    assert opts["attempts"] == 7
    assert opts["backoff"] == {"type": "fixed", "delay": 250}
    assert args[3] == opts["priority"]


async def test_each_options_value_is_packed_once(queues: tuple[Queue, Queue]) -> None:
    adder = Adder(queues[0])
    first = adder.command(SPECS["plain"], TIMESTAMP_MS)[2][2]
    again = adder.command(build_spec("other", {"x": 2}, {}), TIMESTAMP_MS + 1)[2][2]
    assert again is first
    assert adder.command(SPECS["urgent"], TIMESTAMP_MS)[2][2] != first
