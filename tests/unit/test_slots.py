"""The handler slots of a worker holding more jobs than it runs: at most ``size`` at once,
first come first served, every waiter refused once the worker closes, no slot lost to a
cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from corral.adapters.bullmq.slots import HandlerSlots


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_size_at_once_in_arrival_order() -> None:
    slots = HandlerSlots(2)
    started: list[int] = []

    async def take(n: int) -> None:
        assert await slots.acquire()
        started.append(n)

    tasks = [asyncio.create_task(take(n)) for n in range(5)]
    await _settle()
    assert started == [0, 1]
    slots.release()
    await _settle()
    assert started == [0, 1, 2]
    slots.release()
    slots.release()
    await _settle()
    assert started == [0, 1, 2, 3, 4]
    await asyncio.gather(*tasks)


async def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    slots = HandlerSlots(1)
    assert await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release()  # handed to the waiter, not left free for whoever asks next
    newcomer = asyncio.create_task(slots.acquire())
    await _settle()
    assert waiter.done()
    assert waiter.result() is True
    assert not newcomer.done()
    slots.release()
    assert await newcomer is True


async def test_close_refuses_waiters_and_later_callers_but_not_holders() -> None:
    slots = HandlerSlots(1)
    assert await slots.acquire()
    waiters = [asyncio.create_task(slots.acquire()) for _ in range(3)]
    await _settle()
    slots.close()
    assert await asyncio.gather(*waiters) == [False, False, False]
    assert await slots.acquire() is False
    assert slots.closed
    slots.release()  # the holder gives its slot back as usual


async def test_a_cancelled_waiter_loses_no_slot() -> None:
    slots = HandlerSlots(1)
    assert await slots.acquire()
    cancelled = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release()  # handed to the waiter ...
    cancelled.cancel()  # ... which is cancelled before it runs: the slot passes on
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await asyncio.wait_for(slots.acquire(), 1) is True

    gone = asyncio.create_task(slots.acquire())  # cancelled while still waiting
    await _settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    slots.release()
    assert await asyncio.wait_for(slots.acquire(), 1) is True


async def test_a_slot_handed_just_before_close_is_refused_and_kept() -> None:
    slots = HandlerSlots(1)
    assert await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release()  # handed to the waiter ...
    slots.close()  # ... and the worker closes before the waiter runs: its job must not start
    assert await waiter is False
    assert slots._free == 1  # the slot it refused is free again, not lost


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HandlerSlots(0)
