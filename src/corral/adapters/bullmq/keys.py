"""Redis keys Corral adds beside BullMQ's own, under the same ``prefix:queue:`` namespace."""

from __future__ import annotations

from typing import Final

HEARTBEAT_INTERVAL_S: Final = 1.0
HEARTBEAT_TTL_MS: Final = 5_000
#: How long a per-minute throughput bucket lives: a day (services.monitoring's
#: MAX_THROUGHPUT_MINUTES), plus a minute of slack.
MINUTE_TTL_MS: Final = 86_400_000 + 60_000


class Keys:
    """The names of one queue's keys."""

    def __init__(self, prefix: str, queue: str) -> None:
        self.base = f"{prefix}:{queue}"
        self.events = f"{self.base}:events"
        corral = f"{self.base}:corral"
        #: Hash of cluster-wide counters: completed, failed, processing_ms (sum), stalled.
        self.stats = f"{corral}:stats"
        #: Sorted set: worker id -> last heartbeat (ms).
        self.workers = f"{corral}:workers"
        #: Hash: worker id -> JSON {id, host, pid, concurrency, started_at}.
        self.worker_info = f"{corral}:workers:info"
        #: Hash: fired, missed (skipped ticks), lateness_ms_sum, lateness_count.
        self.scheduler_stats = f"{corral}:scheduler"
        #: Pub/sub channel: a schedule was created, changed or deleted (payload: its id).
        self.schedule_changes = f"{corral}:schedules:changed"
        #: Sorted set: scheduler id -> last heartbeat (ms).
        self.schedulers = f"{corral}:schedulers"
        #: String: the schedule store's change marker as the replica that polls the store
        #: last read it, written with its heartbeat, gone :data:`HEARTBEAT_TTL_MS` after.
        self.schedulers_marker = f"{corral}:schedulers:marker"

    def minute(self, epoch_minute: int) -> str:
        """Hash: completed / failed jobs finished in one UTC minute (``epoch_minute`` =
        ms // 60000), cluster-wide; expires after :data:`MINUTE_TTL_MS`."""
        return f"{self.base}:corral:m:{epoch_minute}"

    def watermark(self, schedule_id: str) -> str:
        """String: the newest tick (epoch ms) of a schedule that was fired or skipped."""
        return f"{self.base}:corral:wm:{schedule_id}"

    def claim(self, what: str) -> str:
        """String (``SET NX PX``): which process does ``what`` (e.g. ``reconcile``) this period."""
        return f"{self.base}:corral:claim:{what}"

    def scheduler_skew(self, scheduler_id: str) -> str:
        """String: a scheduler's clock minus Redis's TIME, in seconds, as its last heartbeat
        measured it; expires :data:`HEARTBEAT_TTL_MS` after it (on Redis's clock, so a scheduler
        whose own clock is far off, and whose heartbeat score therefore looks stale or fresh,
        still shows)."""
        return f"{self.base}:corral:schedulers:skew:{scheduler_id}"

    def scheduler_promise(self, scheduler_id: str) -> str:
        """String: a scheduler's promise about the schedules it owns (``core.ownership``):
        rewritten after each of its turns that changes it, refreshed by each heartbeat, gone
        :data:`HEARTBEAT_TTL_MS` after the last."""
        return f"{self.base}:corral:schedulers:promise:{scheduler_id}"
