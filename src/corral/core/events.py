"""Queue events as Corral presents them to ``qm.on(...)`` listeners."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

EVENT_NAMES: Final = frozenset(
    {
        "completed",
        "failed",
        "progress",
        "active",
        "stalled",
        "waiting",
        "delayed",
        "added",
        "removed",
        "retries-exhausted",
        "drained",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEvent:
    """One event from the cluster-wide stream: ``name`` (``completed``...), the job's id, and
    the event's own fields (``result`` for completed, ``error`` for failed, ``progress``...)."""

    name: str
    queue: str
    job_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""
