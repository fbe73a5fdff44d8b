"""Adding jobs: bullmq's ``Queue.add`` and ``Queue.addBulk`` for Corral's options, at a
fraction of their CPU.

bullmq builds a ``Job`` for every add (its ``__init__`` normalises the options, copies them and
checks parent options Corral never sets), re-encodes and packs the same options each time, and
sends the script through redis-py's script object and command dispatch. Here the script's name,
keys and arguments are built directly: the options of one :class:`JobOptions` value are encoded
and packed once (a producer's jobs mostly share theirs), and a single add's script goes through
:func:`~corral.adapters.bullmq.wire.run_script`, so the adds of a busy producer (a web app's
requests, ``asyncio.gather`` of many adds) are written to Redis together, one batch in flight,
on one connection instead of one each.

The scripts, keys and arguments are bullmq's own: ``tests/unit/test_bullmq_adding.py`` compares
them, field by field, with what ``Scripts.addJob`` sends for the same job, so a bullmq upgrade
that changes them fails there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgpack
from bullmq import Queue
from bullmq.backoffs import Backoffs
from bullmq.job import optsEncodeMap

from corral.adapters.bullmq.mapping import to_bullmq_options
from corral.adapters.bullmq.wire import run_script
from corral.core.jobs import JobOptions, JobSpec

#: The keys of each add script, in bullmq's order (``Scripts.addStandardJob`` and the others).
ADD_KEYS: Final = {
    "addStandardJob": (
        "wait",
        "paused",
        "meta",
        "id",
        "completed",
        "delayed",
        "active",
        "events",
        "marker",
    ),
    "addDelayedJob": ("marker", "meta", "id", "delayed", "completed", "events"),
    "addPrioritizedJob": (
        "marker",
        "meta",
        "id",
        "prioritized",
        "delayed",
        "completed",
        "active",
        "events",
        "pc",
    ),
}
_MAX_CACHED = 256
_NO_PARENT: Final = (None,) * 5


class _Packed(NamedTuple):
    """What one options value makes of every job."""

    script: str
    last: int | None  # the script's last argument: the delay or the priority; None: timestamp
    job_id: str | None
    opts: bytes  # the packed options (ARGV[3])


class Adder:
    """Builds and sends the add scripts of one bullmq ``Queue`` (see the module docstring)."""

    def __init__(self, queue: Queue) -> None:
        scripts = queue.scripts
        self._queue = queue
        self._scripts = scripts
        self._prefix = scripts.keys[""]
        self._keys = {name: scripts.getKeys(list(keys)) for name, keys in ADD_KEYS.items()}
        self._packed: dict[JobOptions, _Packed] = {}

    def command(self, spec: JobSpec, timestamp_ms: int) -> tuple[str, list[Any], list[Any]]:
        """The script's name, keys and arguments that add ``spec`` stamped ``timestamp_ms``."""
        packed = self._packed_for(spec.options)
        # ARGV[1]: prefix, custom id, name, timestamp; no parent, repeat or deduplication key.
        fields = [self._prefix, packed.job_id or "", spec.name, timestamp_ms, *_NO_PARENT]
        head = msgpack.packb(fields, use_bin_type=True)
        data = json.dumps(spec.data, separators=(",", ":"), allow_nan=False)
        last = timestamp_ms if packed.last is None else packed.last
        return packed.script, self._keys[packed.script], [head, data, packed.opts, last]

    async def add(self, spec: JobSpec) -> str:
        """Add one job; its id (the one it already had, for a job id in use)."""
        name, keys, args = self.command(spec, round(time.time() * 1000))
        result = await run_script(self._scripts.commands[name], keys, args)
        if type(result) is int and result < 0:
            raise self._scripts.finishedErrors(
                {"code": result, "parentKey": None, "command": "addJob"}
            )
        return str(result)

    async def add_bulk(self, specs: Sequence[JobSpec]) -> list[str]:
        """Add every job in one MULTI/EXEC transaction, as ``Queue.addBulk`` does."""
        timestamp_ms = round(time.time() * 1000)
        commands = self._scripts.commands
        async with self._scripts.redisClient.pipeline(transaction=True) as pipe:
            for spec in specs:
                name, keys, args = self.command(spec, timestamp_ms)
                await commands[name](keys=keys, args=args, client=pipe)
            ids = await pipe.execute()
        return [str(job_id) for job_id in ids]

    def _packed_for(self, options: JobOptions) -> _Packed:
        packed = self._packed.get(options)
        if packed is None:
            packed = self._pack(options)
            if len(self._packed) >= _MAX_CACHED:
                self._packed.clear()
            self._packed[options] = packed
        return packed

    def _pack(self, options: JobOptions) -> _Packed:
        # What ``Job.__init__`` makes of the options, and ``Scripts.addJob`` of the job.
        given = {**self._queue.jobsOpts, **to_bullmq_options(options)}
        final: dict[str, Any] = {"attempts": 0, "delay": 0}
        final.update(given)
        final["backoff"] = Backoffs.normalize(given.get("backoff"))
        opts = msgpack.packb({optsEncodeMap.get(k, k): v for k, v in final.items()})
        if final.get("delay"):
            script, last = "addDelayedJob", final["delay"]
        elif final.get("priority"):
            script, last = "addPrioritizedJob", final["priority"]
        else:
            script, last = "addStandardJob", None
        return _Packed(script, last, given.get("jobId"), opts)
