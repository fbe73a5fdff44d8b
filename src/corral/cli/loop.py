"""The event loop of a ``corral`` command: uvloop when it is installed (``corral[fast]``) and
``CORRAL_UVLOOP`` is not false, else asyncio's own.

uvloop makes the worker's per-job overhead smaller (its loop and sockets are in C). It stays
optional, and can be turned off, because it is one more native dependency whose behaviour
(signals, subprocesses, debugging tools) differs in corners from asyncio's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor if wanted and installed; None means asyncio's default loop."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(main)
