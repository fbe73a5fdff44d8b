"""Promises between scheduler replicas (``core.ownership``, ``services.promises``): when a
replica leaves another's ticks to it, and when it checks them itself. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from corral.core.ownership import promise_text, trusted_until, view_of
from corral.services.promises import Promises, next_poll

MEMBERS = ("a", "b", "c")
NOW = datetime(2031, 5, 4, 3, 2, 1, 100_000, tzinfo=UTC)
DELAY = timedelta(milliseconds=500)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_a_promise_is_trusted_until_its_tick_plus_the_delay_and_only_from_the_same_view() -> None:
    view = view_of(MEMBERS, "7:3:x")
    assert trusted_until(promise_text(1000, view), view, 500) == 1500
    assert trusted_until(promise_text(None, view), view, 500) is None  # nothing due
    assert trusted_until(None, view, 500) == -1  # none published: check its ticks
    other_members = view_of(("a", "b"), "7:3:x")
    other_marker = view_of(MEMBERS, "8:3:x")
    assert len({view, other_members, other_marker}) == 3
    assert trusted_until(promise_text(1000, other_members), view, 500) == -1
    assert trusted_until(promise_text(1000, other_marker), view, 500) == -1
    assert trusted_until(f"soon:{view}", view, 500) == -1  # garbled: check


def _promises() -> Promises:
    promises = Promises(delay=DELAY, poll_s=1.0)
    promises.new_view(MEMBERS, "7:3:x", NOW)
    return promises


def test_covers_a_replica_whose_promise_went_stale_from_its_promised_tick() -> None:
    promises = _promises()
    view = promises.view
    tick = NOW.replace(microsecond=0) - timedelta(seconds=1)  # 1.1 s ago: past the delay
    fresh = promise_text(_ms(NOW) + 900, view)
    added = promises.judge(["b", "c"], [promise_text(_ms(tick), view), fresh], NOW)
    assert added == {"b": tick}
    assert promises.covered == {"b"}
    # c's promise runs out at its tick plus the delay: read again then.
    assert promises.check_at == datetime.fromtimestamp((_ms(NOW) + 1400) / 1000, UTC)
    # b is back (a fresh promise): no longer covered.
    assert promises.judge(["b", "c"], [fresh, fresh], NOW) == {}
    assert promises.covered == frozenset()
    assert promises.judge(["b", "c"], [fresh, fresh], NOW) is None  # nothing changed


def test_covers_replicas_without_a_promise_or_with_another_view_from_now() -> None:
    promises = _promises()
    elsewhere = view_of(("a", "b"), "7:3:x")
    added = promises.judge(["b", "c"], [None, promise_text(_ms(NOW) + 900, elsewhere)], NOW)
    assert added == {"b": NOW, "c": NOW}


def test_publishes_only_a_changed_promise_and_nothing_alone() -> None:
    promises = _promises()
    text = promises.to_publish(NOW, MEMBERS)
    assert text == promise_text(_ms(NOW), promises.view)
    promises.promised = text
    assert promises.to_publish(NOW, MEMBERS) is None
    assert promises.to_publish(None, MEMBERS) == promise_text(None, promises.view)
    assert promises.to_publish(NOW + DELAY, ("a",)) is None


def test_polls_fall_a_quarter_past_the_second_about_a_second_apart() -> None:
    for offset_ms in (0, 100, 250, 500, 740, 760, 999):
        now = NOW.replace(microsecond=0) + timedelta(milliseconds=offset_ms)
        at = next_poll(now, 1.0)
        assert at.microsecond == 250_000, offset_ms
        assert timedelta(seconds=0.5) <= at - now <= timedelta(seconds=1.5), offset_ms
    assert next_poll(NOW, 0.2) == NOW + timedelta(seconds=0.2)  # short polls are not moved
