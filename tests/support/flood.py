"""Fill a Redis until it refuses an add."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def add_until_refused(add: Callable[[], Awaitable[object]], *, most: int) -> Exception:
    """Await ``add()`` until it raises, and return what it raised (fail after ``most`` calls)."""
    for _ in range(most):
        try:
            await add()
        except Exception as exc:  # whatever it is, the caller checks it
            return exc
    raise AssertionError(f"{most} adds and none was refused")
