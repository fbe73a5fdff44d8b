"""Cluster metrics and health, computed from figures the adapters read from Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from corral.core.queue_jobs import JobState

if TYPE_CHECKING:
    from corral.core.ports import QueueBroker

HealthStatus = Literal["healthy", "degraded", "unhealthy"]

#: A scheduler whose clock is further than this from Redis's is worth a warning: replicas fire a
#: tick when their own clock reaches it, so that much early (ahead) or late (behind).
MAX_CLOCK_SKEW_S: Final = 1.0


def skew_text(skew_s: float) -> str:
    """``3.0 s ahead of Redis TIME`` / ``2.1 s behind Redis TIME``."""
    return f"{abs(skew_s):.1f} s {'ahead of' if skew_s > 0 else 'behind'} Redis TIME"


def clock_skew_problems(skews: Mapping[str, float], limit_s: float = MAX_CLOCK_SKEW_S) -> list[str]:
    """One line per scheduler whose clock is more than ``limit_s`` off Redis's."""
    return [
        f"scheduler {sid} clock is {skew_text(skew)} (more than {limit_s:g} s)"
        for sid, skew in sorted(skews.items())
        if abs(skew) > limit_s
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """Cluster-wide totals since the queue was created (or its stats were reset).

    ``total_jobs`` counts finished jobs (completed + failed); ``success_rate`` is
    completed / total (1.0 when nothing finished yet); ``average_processing_time`` is the mean
    handler time in ms over every attempt, failed ones included.
    """

    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    retried_attempts: int
    stalled_jobs: int
    success_rate: float
    average_processing_time: float


def compute_metrics(stats: Mapping[str, float]) -> Metrics:
    completed = int(stats.get("completed", 0))
    failed = int(stats.get("failed", 0))
    retried = int(stats.get("retried", 0))
    attempts = completed + failed + retried
    total = completed + failed
    return Metrics(
        total_jobs=total,
        completed_jobs=completed,
        failed_jobs=failed,
        retried_attempts=retried,
        stalled_jobs=int(stats.get("stalled", 0)),
        success_rate=completed / total if total else 1.0,
        average_processing_time=(stats.get("processing_ms", 0.0) / attempts) if attempts else 0.0,
    )


#: The longest throughput series anyone can ask for: a day of minutes.
MAX_THROUGHPUT_MINUTES: Final = 1440


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    """Jobs that finished (for good: a retried attempt is not counted) in one UTC minute."""

    minute_start_ms: int
    completed: int
    failed: int


def throughput_series(
    now_ms: int, minutes: int, counts: Mapping[int, tuple[int, int]]
) -> list[ThroughputPoint]:
    """``minutes`` points, oldest first, ending with the minute that holds ``now_ms``.

    ``counts`` maps an epoch minute (ms // 60000) to (completed, failed); a minute missing from
    it finished nothing.
    """
    current = now_ms // 60_000
    return [
        ThroughputPoint(m * 60_000, *counts.get(m, (0, 0)))
        for m in range(current - minutes + 1, current + 1)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthThresholds:
    max_latency_ms: float = 100.0
    max_backlog: int = 10_000
    max_failure_rate: float = 0.5
    min_finished_for_rate: int = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    status: HealthStatus
    details: dict[str, Any] = field(default_factory=dict)


def evaluate_health(
    *,
    redis_error: str | None,
    latency_ms: float | None,
    counts: Mapping[str, int] | None,
    workers: Sequence[Mapping[str, Any]] | None,
    metrics: Metrics | None,
    paused: bool | None,
    warnings: Sequence[str] = (),
    thresholds: HealthThresholds = HealthThresholds(),
    redis_busy: bool = False,
    scheduler_clock_skews: Mapping[str, float] | None = None,
) -> HealthReport:
    """``unhealthy`` when Redis cannot be reached (or, ``redis_busy``, when every connection to
    it stayed in use); ``degraded`` (with every reason listed in ``details.problems``) when it
    can but something needs attention."""
    if redis_error is not None:
        what = "busy" if redis_busy else "unreachable"
        return HealthReport(
            status="unhealthy",
            details={
                "redis": f"{what}: {redis_error}",
                "problems": [f"Redis {what}: {redis_error}"],
            },
        )
    problems: list[str] = []
    counts = counts or {}
    backlog = int(counts.get(JobState.WAITING, 0)) + int(counts.get(JobState.PRIORITIZED, 0))
    live = len(workers or ())
    if latency_ms is not None and latency_ms > thresholds.max_latency_ms:
        problems.append(f"Redis latency {latency_ms:.0f} ms > {thresholds.max_latency_ms:.0f} ms")
    if backlog and live == 0 and not paused:
        problems.append(f"{backlog} jobs waiting and no live worker")
    if backlog > thresholds.max_backlog:
        problems.append(f"backlog {backlog} > {thresholds.max_backlog}")
    if metrics is not None and metrics.total_jobs >= thresholds.min_finished_for_rate:
        failure_rate = 1.0 - metrics.success_rate
        if failure_rate > thresholds.max_failure_rate:
            problems.append(f"failure rate {failure_rate:.0%} > {thresholds.max_failure_rate:.0%}")
    if paused:
        problems.append("queue is paused")
    problems.extend(warnings)
    problems.extend(clock_skew_problems(scheduler_clock_skews or {}))
    details: dict[str, Any] = {
        "redis": "ok",
        "redis_latency_ms": None if latency_ms is None else round(latency_ms, 2),
        "workers_alive": live,
        "backlog": backlog,
        "paused": bool(paused),
        "problems": problems,
    }
    if metrics is not None:
        details["success_rate"] = round(metrics.success_rate, 4)
    if scheduler_clock_skews is not None:
        details["scheduler_clock_skew_s"] = {
            sid: round(skew, 3) for sid, skew in sorted(scheduler_clock_skews.items())
        }
    return HealthReport(status="degraded" if problems else "healthy", details=details)


def redis_warnings(*, info: Mapping[str, Any], has_password: bool, host: str | None) -> list[str]:
    """Configuration risks of the connected Redis: an eviction policy that drops jobs, and no
    password on a Redis other hosts can reach."""
    found = []
    policy = info.get("maxmemory_policy")
    if policy is not None and policy != "noeviction":
        found.append(f"Redis maxmemory-policy is {policy}: it must be noeviction or jobs vanish")
    loopback = host in (None, "", "localhost", "::1") or str(host).startswith("127.")
    if not has_password and not loopback:
        found.append("Redis has no password and is not on a loopback address")
    return found


async def metric_figures(queue: QueueBroker, *, backlog: int | None) -> dict[str, Any]:
    """The cluster-wide figures ``/metrics`` shows, read from the broker now (see
    ``adapters/prometheus.py`` for their shape), with ``backlog``, the execution-log rows this
    process still holds (None: it has no writer)."""
    stats, counts, paused, workers, scheduler, skews = await asyncio.gather(
        queue.cluster_stats(),
        queue.counts(),
        queue.is_paused(),
        queue.live_workers(),
        queue.scheduler_stats(),
        queue.scheduler_clock_skews(),
    )
    figures: dict[str, Any] = {
        "queue": queue.name,
        "stats": stats,
        "counts": counts,
        "paused": paused,
        "workers_alive": len(workers),
        "scheduler": scheduler,
        "scheduler_clock_skew": skews,
    }
    if backlog is not None:
        figures["execution_log_backlog"] = backlog
    return figures
