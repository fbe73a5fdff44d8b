"""One retry policy and one supervisor for every loop that retries (see corral/supervision.py)."""

from __future__ import annotations

import logging

import pytest

from corral.core.backoff import RetryPolicy
from corral.supervision import Supervisor
from corral.worker import STARTUP_RETRY


def test_the_worker_waits_for_redis_1_s_growing_by_half_up_to_20_s() -> None:
    delays = [STARTUP_RETRY.delay(n) for n in range(1, 12)]
    assert delays[:4] == [1.0, 1.5, 2.25, 3.375]
    assert max(delays) == 20.0
    assert delays[-1] == 20.0
    assert STARTUP_RETRY.delay(10**6) == 20.0  # no overflow however long the outage


def test_doubling_capped_and_steady_policies() -> None:
    doubling = RetryPolicy(initial_s=1.0, max_s=30.0)
    assert [doubling.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert RetryPolicy(initial_s=1.0, max_s=1.0, factor=1.0).delay(99) == 1.0


async def test_supervisor_logs_the_first_failure_then_holds_back_and_logs_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []

    async def wait(delay: float) -> None:
        waits.append(delay)

    async def broken() -> None:
        raise ConnectionError("Redis not reachable")

    async def works() -> None:
        return None

    supervisor = Supervisor(
        logging.getLogger("corral.test"),
        failure="step failed ({where}): {error}",
        event="step.failed",
        recovery="step works again after {failures} failures",
        recovered_event="step.ok",
        policy=RetryPolicy(initial_s=0.1, max_s=0.4),
    )
    with caplog.at_level(logging.INFO, logger="corral.test"):
        for _ in range(4):
            assert await supervisor.attempt(broken, wait, where="here") is False
        assert supervisor.failures == 4
        assert await supervisor.attempt(works, wait) is True
    assert waits == [0.1, 0.2, 0.4, 0.4]
    assert supervisor.failures == 0
    assert [(r.getMessage(), getattr(r, "event", None)) for r in caplog.records] == [
        ("step failed (here): Redis not reachable", "step.failed"),  # the rest held back
        ("step works again after 4 failures", "step.ok"),
    ]
