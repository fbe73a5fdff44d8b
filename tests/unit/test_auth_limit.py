"""The failed-authentication limit's bookkeeping (times are passed in: no sleeping)."""

from __future__ import annotations

import pytest

from corral.http.ratelimit import FailureLimiter, client_key


def test_locks_out_after_max_failures_until_the_window_ends() -> None:
    limiter = FailureLimiter(max_failures=3, window_s=60)
    assert [limiter.fail("a", t) for t in (0.0, 1.0, 2.0)] == [False, False, True]
    assert limiter.retry_after("a", 2.0) == 58
    assert limiter.retry_after("a", 59.5) == 1
    assert limiter.retry_after("b", 2.0) is None  # per client
    assert limiter.retry_after("a", 60.0) is None
    assert limiter.fail("a", 60.0) is False  # a new window
    assert limiter.retry_after("a", 60.0) is None


def test_failures_spread_over_more_than_a_window_never_lock() -> None:
    limiter = FailureLimiter(max_failures=3, window_s=10)
    for t in range(0, 100, 5):
        limiter.fail("a", float(t))
        assert limiter.retry_after("a", float(t)) is None


def test_the_table_is_capped() -> None:
    limiter = FailureLimiter(max_failures=2, window_s=60, max_clients=100)
    for i in range(1000):
        limiter.fail(f"10.0.{i // 256}.{i % 256}", 1.0)
    assert len(limiter) == 100
    limiter.fail("late", 2.0)
    limiter.fail("late", 2.0)
    assert limiter.retry_after("late", 2.0) == 60  # the newest window is kept
    for i in range(100):
        limiter.fail(f"x{i}", 100.0)  # the expired windows make room first
    assert len(limiter) == 100


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1234", "2001:db8::/64"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        (None, "unknown"),
        ("", "unknown"),
        ("some-socket", "some-socket"),
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key
