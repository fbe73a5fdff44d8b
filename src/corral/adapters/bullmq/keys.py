"""Redis keys Corral adds beside BullMQ's own, under the same ``prefix:queue:`` namespace."""

from __future__ import annotations

from typing import Final

HEARTBEAT_INTERVAL_S: Final = 1.0
HEARTBEAT_TTL_MS: Final = 5_000
#: How long a per-minute throughput bucket lives: a day (services.monitoring's
#: MAX_THROUGHPUT_MINUTES), plus a minute of slack.
MINUTE_TTL_MS: Final = 86_400_000 + 60_000


def base(prefix: str, queue: str) -> str:
    return f"{prefix}:{queue}"


def events(prefix: str, queue: str) -> str:
    return f"{base(prefix, queue)}:events"


def stats(prefix: str, queue: str) -> str:
    """Hash of cluster-wide counters: completed, failed, processing_ms (sum), stalled."""
    return f"{base(prefix, queue)}:corral:stats"


def minute(prefix: str, queue: str, epoch_minute: int) -> str:
    """Hash: completed / failed jobs finished in one UTC minute (``epoch_minute`` = ms // 60000),
    cluster-wide; expires after :data:`MINUTE_TTL_MS`."""
    return f"{base(prefix, queue)}:corral:m:{epoch_minute}"


def workers(prefix: str, queue: str) -> str:
    """Sorted set: worker id -> last heartbeat (ms)."""
    return f"{base(prefix, queue)}:corral:workers"


def worker_info(prefix: str, queue: str) -> str:
    """Hash: worker id -> JSON {id, host, pid, concurrency, started_at}."""
    return f"{base(prefix, queue)}:corral:workers:info"


def watermark(prefix: str, queue: str, schedule_id: str) -> str:
    """String: the newest tick (epoch ms) of a schedule that was fired or skipped."""
    return f"{base(prefix, queue)}:corral:wm:{schedule_id}"


def scheduler_stats(prefix: str, queue: str) -> str:
    """Hash: fired, missed (skipped ticks), lateness_ms_sum, lateness_count."""
    return f"{base(prefix, queue)}:corral:scheduler"


def schedule_changes(prefix: str, queue: str) -> str:
    """Pub/sub channel: a schedule was created, changed or deleted (payload: its id)."""
    return f"{base(prefix, queue)}:corral:schedules:changed"


def schedulers(prefix: str, queue: str) -> str:
    """Sorted set: scheduler id -> last heartbeat (ms)."""
    return f"{base(prefix, queue)}:corral:schedulers"


def claim(prefix: str, queue: str, what: str) -> str:
    """String (``SET NX PX``): which process does ``what`` (e.g. ``reconcile``) this period."""
    return f"{base(prefix, queue)}:corral:claim:{what}"


def scheduler_skew(prefix: str, queue: str, scheduler_id: str) -> str:
    """String: a scheduler's clock minus Redis's TIME, in seconds, as its last heartbeat measured
    it; expires :data:`HEARTBEAT_TTL_MS` after it (on Redis's clock, so a scheduler whose own
    clock is far off, and whose heartbeat score therefore looks stale or fresh, still shows)."""
    return f"{base(prefix, queue)}:corral:schedulers:skew:{scheduler_id}"
