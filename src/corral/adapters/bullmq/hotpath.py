"""The two steps of bullmq's that every job takes, at a fraction of their CPU: decoding a
fetched job (``Job.fromJSON``) and recording its completion (``RedisBackend.moveToCompleted``).

Both reach into bullmq's internals like ``internals.py`` and are checked the same way:
``tests/unit/test_bullmq_internals.py`` compares each with bullmq's own on every field and
argument, so an upgrade that changes bullmq's fails there, loudly.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from bullmq import Job as BullJob
from bullmq import Worker
from bullmq.job import getReturnValue, optsFromJSON
from bullmq.scripts import raw2NextJobData

from corral.adapters.bullmq.wire import run_script

#: The fields of a job's hash ``Job.fromJSON`` reads (the test checks the list against it).
JOB_FIELDS: Final = frozenset(
    (
        "data",
        "opts",
        "name",
        "id",
        "progress",
        "delay",
        "priority",
        "timestamp",
        "finishedOn",
        "processedOn",
        "rjk",
        "ats",
        "failedReason",
        "attemptsMade",
        "atm",
        "stc",
        "defa",
        "returnvalue",
        "stacktrace",
        "parentKey",
        "parent",
    )
)
_TEMPLATES: dict[str, BullJob] = {}
_MAX_TEMPLATES = 256


def job_from_raw(queue: Any, raw: dict[str, Any], job_id: str | None = None) -> BullJob:
    """``Job.fromJSON(queue, raw, job_id)``, for a fraction of its CPU.

    ``fromJSON`` decodes four JSON texts and runs ``Job.__init__`` over the decoded options for
    every job, though the jobs of one producer share one options text. Here the job starts as
    a copy of a template built once per options text by ``Job.__init__`` itself, holding no
    queue (its own ``opts`` dict and ``parent``; nested option values are shared: nothing in
    bullmq or Corral changes them), and the default progress and stacktrace are not decoded.
    The rest is ``fromJSON`` line for line; the test compares the two on every field."""
    job = _from_template(queue, raw.get("opts", "{}"))
    get = raw.get
    job.name = get("name")
    job.data = json.loads(get("data", "{}"))
    job.id = job_id or get("id", b"").decode("utf-8")
    progress = get("progress")
    job.progress = 0 if progress is None else json.loads(progress)
    job.delay = int(get("delay", "0"))
    job.priority = int(get("priority", "0"))
    job.timestamp = int(get("timestamp", "0"))
    job.attemptsMade = int(get("attemptsMade") or get("atm") or "0")
    job.stalledCounter = int(get("stc") or "0")
    stacktrace = get("stacktrace")
    job.stacktrace = [] if stacktrace is None or stacktrace == "[]" else json.loads(stacktrace)
    _rarer_fields(job, raw)
    return job


def _rarer_fields(job: BullJob, raw: dict[str, Any]) -> None:
    if value := raw.get("finishedOn"):
        job.finishedOn = int(value)
    if value := raw.get("processedOn"):
        job.processedOn = int(value)
    if value := raw.get("rjk"):
        job.repeatJobKey = value
    if value := raw.get("ats"):
        job.attemptsStarted = int(value)
    if value := raw.get("failedReason"):
        job.failedReason = value
    if value := raw.get("defa"):
        job.deferredFailure = value
    returnvalue = raw.get("returnvalue")
    if type(returnvalue) is str:
        job.returnvalue = getReturnValue(returnvalue)
    if value := raw.get("parentKey"):
        job.parentKey = value
    if value := raw.get("parent"):
        job.parent = json.loads(value)


def _from_template(queue: Any, opts_text: str) -> BullJob:
    template = _TEMPLATES.get(opts_text)
    if template is None:
        template = BullJob(queue, None, None, optsFromJSON(json.loads(opts_text)))
        template.queue = template.backend = template.queueQualifiedName = None
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        _TEMPLATES[opts_text] = template
    job: BullJob = BullJob.__new__(BullJob)
    state = template.__dict__.copy()
    state["opts"] = state["opts"].copy()
    if state["parent"] is not None:
        state["parent"] = state["parent"].copy()
    job.__dict__ = state
    job.queue = queue
    job.backend = queue.backend
    job.queueQualifiedName = queue.qualifiedName
    return job


#: The ``scripts.keys`` ``Scripts.moveToFinishedArgs`` passes first, in order.
FINISHED_KEYS: Final = (
    "wait",
    "active",
    "prioritized",
    "events",
    "stalled",
    "limiter",
    "delayed",
    "paused",
    "meta",
    "pc",
)
_MAX_PACKED = 1024
#: ``json.dumps(value, separators=(",", ":"), allow_nan=False)``, as bullmq encodes a result,
#: without a new encoder per call.
_to_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _cache_key(
    token: str, job: BullJob, remove: Any, flags: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """What the packed finishing options of ``job`` depend on, or None when a value is not of
    the plain types a key can tell apart (``True == 1``, but msgpack packs them differently)."""
    if type(job.attempts) is not int or type(job.attemptsMade) is not int:
        return None
    if any(type(flag) is not bool for flag in flags):
        return None
    if type(remove) is dict:
        if not all(type(k) is str and type(v) is int for k, v in remove.items()):
            return None
        return (token, tuple(remove.items()), job.attempts, job.attemptsMade, flags)
    if remove is None or type(remove) is bool or type(remove) is int:
        return (token, (type(remove), remove), job.attempts, job.attemptsMade, flags)
    return None


class Completion:
    """``RedisBackend.moveToCompleted`` for the jobs of one worker (``job.queue``: the packed
    options include the worker's), for a fraction of its CPU.

    The same ``moveToFinished`` call with the same keys and arguments as
    ``Scripts.moveToCompletedArgs`` builds (the test compares them), but the keys that are the
    same for every job are listed once, and the msgpack of the finishing options is kept per
    distinct value (a worker's jobs share their options and their fetch chain's token), and the
    script is sent by :func:`~corral.adapters.bullmq.wire.run_script`."""

    def __init__(self, worker: Worker) -> None:
        scripts = worker.scripts
        self._scripts = scripts
        self._keys = [*scripts.getKeys(list(FINISHED_KEYS)), scripts.keys["completed"]]
        self._metrics = scripts.toKey("metrics:completed")
        self._marker = scripts.keys["marker"]
        self._prefix = scripts.keys[""]
        self._packed: dict[tuple[Any, ...], bytes] = {}

    def args(
        self, job: BullJob, result: Any, token: str, fetch_next: bool
    ) -> tuple[list[Any], list[Any]]:
        keys = [*self._keys, self._scripts.toKey(job.id), self._metrics, self._marker]
        value = "null" if result is None else _to_json(result)
        timestamp = round(time.time() * 1000)
        packed = self._packed_opts(job, token)
        fetch = "1" if fetch_next else ""
        return keys, [
            job.id,
            timestamp,
            "returnvalue",
            value,
            "completed",
            fetch,
            self._prefix,
            packed,
        ]

    async def __call__(
        self, job: BullJob, result: Any, token: str, *, fetch_next: bool
    ) -> dict[str, Any]:
        keys, args = self.args(job, result, token, fetch_next)
        raw = await run_script(self._scripts.commands["moveToFinished"], keys, args)
        if raw is None:
            return {"result": None, "finishedOn": args[1]}
        if type(raw) is int and raw < 0:
            raise self._scripts.finishedErrors(
                {"code": raw, "jobId": job.id, "command": "moveToFinished", "state": "active"}
            )
        return {"result": raw2NextJobData(raw), "finishedOn": args[1]}

    def _packed_opts(self, job: BullJob, token: str) -> bytes:
        opts = job.opts
        remove = opts.get("removeOnComplete", False)
        flags = (
            opts.get("failParentOnFailure", False),
            opts.get("continueParentOnFailure", False),
            opts.get("ignoreDependencyOnFailure", False),
            opts.get("removeDependencyOnFailure", False),
        )
        key = _cache_key(token, job, remove, flags)
        packed = None if key is None else self._packed.get(key)
        if packed is None:  # bullmq packs it (ARGV[8])
            packed = self._scripts.moveToCompletedArgs(job, None, remove, token)[1][7]
            if key is not None:
                if len(self._packed) >= _MAX_PACKED:
                    self._packed.clear()
                self._packed[key] = packed
        return packed
