"""The ``/metrics`` exposition: cluster-wide figures, read from Redis at scrape time, rendered
in the Prometheus text format (0.0.4).

Every scrape builds a fresh ``CollectorRegistry`` around one collector over a plain dict, so
nothing here counts anything: the numbers are the ones every worker and scheduler flush to
Redis (docs/design.md, "Cluster-wide figures"), and any API replica answers the same. The figures::

    {
        "queue": "corral",
        "redis_up": True,                       # False: only corral_redis_up is shown
        "stats": {"completed": 10, "failed": 1, "retried": 2, "stalled": 0,
                  "processing_ms": 1234.5},     # the workers' stats hash
        "counts": {"waiting": 3, "active": 1, ...},
        "paused": False,
        "workers_alive": 2,
        "scheduler": {"fired": 5, "missed": 0, "lateness_ms_sum": 40.2},
        "scheduler_clock_skew": {"9f0c...": 0.002},  # scheduler id -> its clock - Redis TIME (s)
        "execution_log_backlog": 0,             # only when this process has a writer
    }

Processing time is a summary (``_sum`` and ``_count``), not a histogram: the workers flush a
running sum and count of handler time, not per-bucket counts. The count is every attempt
(completed + failed + retried), the same base as ``get_metrics().average_processing_time``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _num(figures: Mapping[str, Any], name: str) -> float:
    value = figures.get(name, 0)
    return float(value) if isinstance(value, int | float) else 0.0


class _Figures:
    """A collector over one snapshot of figures."""

    def __init__(self, figures: Mapping[str, Any]) -> None:
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        f = self.figures
        queue = str(f.get("queue", ""))
        up = GaugeMetricFamily("corral_redis_up", "1 if Redis answered this scrape, else 0")
        up.add_metric([], 1.0 if f.get("redis_up", True) else 0.0)
        yield up
        if not f.get("redis_up", True):
            return
        yield from _job_metrics(queue, f.get("stats") or {})
        yield from _queue_metrics(queue, f)
        yield from _scheduler_metrics(queue, f.get("scheduler") or {})
        yield _skew_gauge(queue, f.get("scheduler_clock_skew") or {})
        backlog = f.get("execution_log_backlog")
        if backlog is not None:
            yield _gauge(
                "corral_execution_log_backlog",
                "Execution-log rows this process has not written to the database yet",
                queue,
                float(backlog),
            )


def _counter(name: str, doc: str, queue: str, value: float) -> Metric:
    counter = CounterMetricFamily(name, doc, labels=["queue"])
    counter.add_metric([queue], value)
    return counter


def _gauge(name: str, doc: str, queue: str, value: float) -> Metric:
    gauge = GaugeMetricFamily(name, doc, labels=["queue"])
    gauge.add_metric([queue], value)
    return gauge


def _job_metrics(queue: str, stats: Mapping[str, Any]) -> Iterable[Metric]:
    completed, failed = _num(stats, "completed"), _num(stats, "failed")
    retried = _num(stats, "retried")
    yield _counter("corral_jobs_completed", "Jobs completed, cluster-wide", queue, completed)
    yield _counter("corral_jobs_failed", "Jobs failed for good, cluster-wide", queue, failed)
    yield _counter("corral_job_retries", "Failed attempts that were retried", queue, retried)
    yield _counter(
        "corral_jobs_stalled", "Jobs found stalled (worker lost)", queue, _num(stats, "stalled")
    )
    summary = SummaryMetricFamily(
        "corral_job_processing_seconds",
        "Handler time over every attempt (sum and count only; no buckets are recorded)",
        labels=["queue"],
    )
    summary.add_metric(
        [queue], int(completed + failed + retried), _num(stats, "processing_ms") / 1000
    )
    yield summary


def _queue_metrics(queue: str, f: Mapping[str, Any]) -> Iterable[Metric]:
    depth = GaugeMetricFamily(
        "corral_queue_jobs", "Jobs in the queue by state", labels=["queue", "state"]
    )
    for state, count in sorted((f.get("counts") or {}).items()):
        depth.add_metric([queue, str(state)], float(count))
    yield depth
    paused = 1.0 if f.get("paused") else 0.0
    yield _gauge("corral_queue_paused", "1 if the queue is paused", queue, paused)
    yield _gauge(
        "corral_workers_alive", "Workers with a fresh heartbeat", queue, _num(f, "workers_alive")
    )


def _scheduler_metrics(queue: str, stats: Mapping[str, Any]) -> Iterable[Metric]:
    fired = _num(stats, "fired")
    yield _counter("corral_scheduler_fires", "Cron ticks fired (enqueued)", queue, fired)
    yield _counter(
        "corral_scheduler_missed_ticks",
        "Cron ticks skipped (missed beyond the catch-up window)",
        queue,
        _num(stats, "missed"),
    )
    lateness = SummaryMetricFamily(
        "corral_scheduler_fire_lateness_seconds",
        "How late fired ticks were enqueued after their due time",
        labels=["queue"],
    )
    lateness.add_metric([queue], int(fired), _num(stats, "lateness_ms_sum") / 1000)
    yield lateness


def _skew_gauge(queue: str, skews: Mapping[str, Any]) -> Metric:
    gauge = GaugeMetricFamily(
        "corral_scheduler_clock_skew_seconds",
        "A live scheduler's wall clock minus Redis TIME, measured at its last heartbeat",
        labels=["queue", "scheduler"],
    )
    for scheduler in sorted(skews):
        gauge.add_metric([queue, str(scheduler)], _num(skews, scheduler))
    return gauge


def render(figures: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of ``figures`` (see the module docstring)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(figures))
    return generate_latest(registry)
