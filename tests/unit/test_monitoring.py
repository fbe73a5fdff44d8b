"""Cluster metrics and health from the figures the adapters read from Redis."""

from __future__ import annotations

from typing import Any

import pytest

from corral.services.monitoring import (
    HealthThresholds,
    Metrics,
    ThroughputPoint,
    clock_skew_problems,
    compute_metrics,
    evaluate_health,
    throughput_series,
)

WORKER = {"id": "w1", "name": "worker-1"}


def _health(**overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "redis_error": None,
        "latency_ms": 1.5,
        "counts": {"waiting": 0, "active": 0, "completed": 10, "failed": 0},
        "workers": [WORKER],
        "metrics": compute_metrics({"completed": 10}),
        "paused": False,
    }
    arguments.update(overrides)
    return evaluate_health(**arguments)


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_of_an_empty_queue() -> None:
    metrics = compute_metrics({})
    assert metrics == Metrics(
        total_jobs=0,
        completed_jobs=0,
        failed_jobs=0,
        retried_attempts=0,
        stalled_jobs=0,
        success_rate=1.0,
        average_processing_time=0.0,
    )


def test_metrics_from_redis_figures() -> None:
    # as read from the stats hash: floats
    metrics = compute_metrics(
        {"completed": 8.0, "failed": 2.0, "retried": 5.0, "stalled": 1.0, "processing_ms": 1500.0}
    )
    assert metrics.total_jobs == 10
    assert metrics.completed_jobs == 8
    assert metrics.failed_jobs == 2
    assert metrics.retried_attempts == 5
    assert metrics.stalled_jobs == 1
    assert metrics.success_rate == pytest.approx(0.8)
    # every attempt counts: 8 + 2 + 5 = 15 attempts in 1500 ms
    assert metrics.average_processing_time == pytest.approx(100.0)


def test_metrics_all_failed() -> None:
    metrics = compute_metrics({"failed": 4, "processing_ms": 40})
    assert metrics.success_rate == 0.0
    assert metrics.average_processing_time == pytest.approx(10.0)


def test_metrics_types() -> None:
    metrics = compute_metrics({"completed": 3.0, "failed": 1.0})
    assert isinstance(metrics.total_jobs, int)
    assert isinstance(metrics.completed_jobs, int)
    assert isinstance(metrics.success_rate, float)


# -- health ------------------------------------------------------------------------------------


def test_healthy() -> None:
    report = _health()
    assert report.status == "healthy"
    assert report.details["problems"] == []
    assert report.details["redis"] == "ok"
    assert report.details["workers_alive"] == 1
    assert report.details["backlog"] == 0
    assert report.details["paused"] is False
    assert report.details["redis_latency_ms"] == 1.5
    assert report.details["success_rate"] == 1.0


def test_healthy_with_nothing_known_yet() -> None:
    report = _health(latency_ms=None, counts=None, workers=None, metrics=None, paused=None)
    assert report.status == "healthy"
    assert "success_rate" not in report.details


def test_unhealthy_when_redis_is_unreachable() -> None:
    report = _health(redis_error="Redis not reachable at 127.0.0.1:1: Connection refused")
    assert report.status == "unhealthy"
    assert "127.0.0.1:1" in report.details["redis"]
    assert report.details["problems"] == [
        "Redis unreachable: Redis not reachable at 127.0.0.1:1: Connection refused"
    ]


def test_degraded_backlog_with_no_workers() -> None:
    report = _health(counts={"waiting": 3, "prioritized": 4}, workers=[])
    assert report.status == "degraded"
    assert report.details["backlog"] == 7
    assert report.details["workers_alive"] == 0
    assert report.details["problems"] == ["7 jobs waiting and no live worker"]


def test_backlog_with_workers_is_fine() -> None:
    assert _health(counts={"waiting": 50}, workers=[WORKER]).status == "healthy"


def test_no_workers_and_no_backlog_is_fine() -> None:
    assert _health(counts={"waiting": 0}, workers=[]).status == "healthy"


def test_degraded_backlog_over_threshold() -> None:
    report = _health(
        counts={"waiting": 11}, thresholds=HealthThresholds(max_backlog=10), workers=[WORKER]
    )
    assert report.status == "degraded"
    assert report.details["problems"] == ["backlog 11 > 10"]


def test_degraded_failure_rate() -> None:
    report = _health(metrics=compute_metrics({"completed": 5, "failed": 15}))
    assert report.status == "degraded"
    assert report.details["problems"] == ["failure rate 75% > 50%"]
    assert report.details["success_rate"] == 0.25


def test_failure_rate_needs_enough_finished_jobs() -> None:
    # 3 of 4 failed, but 4 jobs say little: below min_finished_for_rate (20)
    assert _health(metrics=compute_metrics({"completed": 1, "failed": 3})).status == "healthy"


def test_degraded_latency() -> None:
    report = _health(latency_ms=250.0)
    assert report.status == "degraded"
    assert report.details["problems"] == ["Redis latency 250 ms > 100 ms"]
    assert report.details["redis_latency_ms"] == 250.0


def test_degraded_paused() -> None:
    report = _health(paused=True)
    assert report.status == "degraded"
    assert report.details["problems"] == ["queue is paused"]
    assert report.details["paused"] is True


def test_paused_with_backlog_and_no_workers_reports_only_the_pause() -> None:
    report = _health(paused=True, counts={"waiting": 5}, workers=[])
    assert report.details["problems"] == ["queue is paused"]


def test_every_reason_is_listed() -> None:
    report = _health(
        latency_ms=500.0,
        counts={"waiting": 20_000},
        workers=[],
        metrics=compute_metrics({"completed": 0, "failed": 30}),
        paused=False,
    )
    assert report.status == "degraded"
    assert len(report.details["problems"]) == 4


def test_redis_configuration_warnings() -> None:
    from corral.services.monitoring import redis_warnings

    assert (
        redis_warnings(
            info={"maxmemory_policy": "noeviction"}, has_password=False, host="127.0.0.1"
        )
        == []
    )
    lru = redis_warnings(info={"maxmemory_policy": "allkeys-lru"}, has_password=True, host="h")
    assert lru == ["Redis maxmemory-policy is allkeys-lru: it must be noeviction or jobs vanish"]
    exposed = redis_warnings(info={}, has_password=False, host="10.0.0.5")
    assert exposed == ["Redis has no password and is not on a loopback address"]
    assert redis_warnings(info={}, has_password=True, host="10.0.0.5") == []


def test_throughput_series_fills_quiet_minutes_and_ends_with_the_current_one() -> None:
    now_ms = 1_000 * 60_000 + 59_999  # the last millisecond of epoch minute 1000
    series = throughput_series(now_ms, 3, {999: (4, 1), 1000: (2, 0), 990: (9, 9)})
    assert series == [
        ThroughputPoint(998 * 60_000, 0, 0),
        ThroughputPoint(999 * 60_000, 4, 1),
        ThroughputPoint(1000 * 60_000, 2, 0),
    ]
    assert len(throughput_series(now_ms + 1, 60, {})) == 60
    assert throughput_series(now_ms + 1, 1, {1000: (5, 5)}) == [
        ThroughputPoint(1001 * 60_000, 0, 0)
    ]


def test_a_busy_redis_is_not_called_unreachable() -> None:
    report = evaluate_health(
        redis_error="Redis connection pool exhausted: all 50 connections to r:6379 busy for 10 s",
        latency_ms=None,
        counts=None,
        workers=None,
        metrics=None,
        paused=None,
        redis_busy=True,
    )
    assert report.status == "unhealthy"
    assert report.details["redis"].startswith("busy: Redis connection pool exhausted")
    assert "unreachable" not in str(report.details)


def test_a_scheduler_clock_more_than_a_second_off_redis_is_a_problem() -> None:
    report = _health(scheduler_clock_skews={"a": 0.0021, "b": 3.04, "c": -1.5, "d": -0.9})
    assert report.status == "degraded"
    assert report.details["scheduler_clock_skew_s"] == {"a": 0.002, "b": 3.04, "c": -1.5, "d": -0.9}
    assert report.details["problems"] == [
        "scheduler b clock is 3.0 s ahead of Redis TIME (more than 1 s)",
        "scheduler c clock is 1.5 s behind Redis TIME (more than 1 s)",
    ]


def test_clock_skews_within_a_second_are_fine() -> None:
    assert clock_skew_problems({"a": 1.0, "b": -1.0}) == []
    report = _health(scheduler_clock_skews={})
    assert report.status == "healthy"
    assert report.details["scheduler_clock_skew_s"] == {}
    assert "scheduler_clock_skew_s" not in _health().details
