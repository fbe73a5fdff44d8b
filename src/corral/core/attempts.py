"""One attempt of one job as a value: what the worker's listeners (the stats reporter and the
execution-log writer) are told when it starts and when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from corral.core.failures import describe, stacktrace


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """An attempt that has started. A job is named by its id and its creation time in ms
    (``enqueued_ms``): ids come again when Redis starts empty, the pair does not."""

    job_id: str
    enqueued_ms: int
    name: str
    number: int  # 1 for the first attempt
    started_ms: float

    def completed(self, result: Any, finished_ms: float) -> AttemptOutcome:
        return AttemptOutcome(attempt=self, finished_ms=finished_ms, result=result)

    def failed(self, exc: Exception, finished_ms: float) -> AttemptOutcome:
        return AttemptOutcome(attempt=self, finished_ms=finished_ms).failed(exc)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptOutcome:
    """How an attempt ended: ``result``, or ``error`` (described as Python prints the last line
    of a traceback) with its traceback. ``retrying`` is known once the broker has recorded the
    failure: True when the job has attempts left."""

    attempt: Attempt
    finished_ms: float
    result: Any = None
    error: str | None = None
    stacktrace: str | None = None
    retrying: bool = False
    #: The exception itself, for the broker and the worker's log line.
    exception: Exception | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def duration_ms(self) -> float:
        return self.finished_ms - self.attempt.started_ms

    def failed(self, exc: Exception) -> AttemptOutcome:
        """This attempt failed with ``exc`` after all (its result could not be recorded)."""
        return replace(
            self, result=None, error=describe(exc), stacktrace=stacktrace(exc), exception=exc
        )
