from __future__ import annotations

from corral.core.throttle import LogThrottle, held_note


def test_first_then_once_per_interval_with_the_held_count() -> None:
    throttle = LogThrottle(interval_s=10)
    assert throttle.allow(0.0) == 0
    assert [throttle.allow(t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.allow(10.0) == 3
    assert throttle.allow(15.0) is None
    assert throttle.clear() is True
    assert throttle.clear() is False
    assert throttle.allow(16.0) == 0  # a new outage is logged at once


def test_held_note() -> None:
    assert held_note(0) == ""
    assert held_note(3) == " (3 more like this not logged)"
