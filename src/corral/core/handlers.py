"""Handlers: the ``@job_handler`` mark, the :class:`Job` a handler receives, and the registry.

The decorator only *marks* a function; nothing is registered at import time. Discovery
(``services/discovery.py``) collects marked functions into a :class:`HandlerRegistry` built per
runtime, so there is no global state to reset between tests and two runtimes in one process
can hold different handlers.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar, Final, TypeVar, overload

from corral.core.ports import JobControl
from corral.core.validation import check_name
from corral.errors import DuplicateHandler, HandlerNotFound

_MARK: Final = "__corral_handler_name__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True, kw_only=True, eq=False)
class Job:
    """The job a handler receives: its identity and data, and a way to report progress."""

    #: How long the ``*_sync`` methods wait for the event loop to store what they report.
    SYNC_CALL_TIMEOUT_S: ClassVar[float] = 30.0

    id: str
    name: str
    data: dict[str, Any] = field(repr=False)
    attempts_made: int
    timestamp_ms: int = field(repr=False)
    control: InitVar[JobControl]
    _control: JobControl = field(init=False, repr=False)
    #: The worker's loop, for the *_sync methods called from a sync handler's thread.
    _loop: asyncio.AbstractEventLoop | None = field(init=False, repr=False)

    def __post_init__(self, control: JobControl) -> None:
        self._control = control
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Report progress (a number, usually 0-100, or a JSON object)."""
        await self._control.update_progress(progress)

    async def log(self, line: str) -> None:
        """Append a line to this job's log."""
        await self._control.log(line)

    def update_progress_sync(self, progress: int | float | dict[str, Any]) -> None:
        """:meth:`update_progress` for a plain (sync) handler, which runs in a thread: hands
        the call to the worker's event loop and waits until it is stored."""
        self._from_thread(self._control.update_progress(progress), "update_progress")

    def log_sync(self, line: str) -> None:
        """:meth:`log` for a plain (sync) handler."""
        self._from_thread(self._control.log(line), "log")

    def _from_thread(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is not None:
            coroutine.close()
            raise RuntimeError(
                f"{name}_sync is for plain (sync) handlers, which run in a worker thread; "
                f"an async handler uses `await job.{name}(...)`"
            )
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(self.SYNC_CALL_TIMEOUT_S)


HandlerFunc = Callable[[Job], Awaitable[Any]] | Callable[[Job], Any]


def validate_handler_name(name: object, path: str = "handler_name") -> str:
    return check_name(name, path)


@overload
def job_handler(func: F, /) -> F: ...
@overload
def job_handler(name: str, /) -> Callable[[F], F]: ...


def job_handler(func_or_name: F | str, /) -> F | Callable[[F], F]:
    """Mark a function as the handler for jobs of its name.

    ``@job_handler`` uses the function's ``__name__``; ``@job_handler("dataProcessingJob")``
    names it explicitly. Async and plain functions are both accepted; plain ones run in a
    thread so they never block the event loop (and with it the lock renewal).
    """
    if not isinstance(func_or_name, str):
        return job_handler(func_or_name.__name__)(func_or_name)
    name = validate_handler_name(func_or_name, "job_handler name")

    def mark(func: F) -> F:
        setattr(func, _MARK, name)
        return func

    return mark


def marked_name(obj: object) -> str | None:
    """The handler name an object was marked with, or None."""
    name = getattr(obj, _MARK, None)
    return name if isinstance(name, str) and callable(obj) else None


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    func: Callable[[Job], Any]
    is_async: bool
    origin: str  # "module.qualname", for messages


class HandlerRegistry(Mapping[str, Handler]):
    """Handlers by name. Built once per runtime; lookups of unknown names raise."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, func: Callable[[Job], Any], name: str | None = None) -> Handler:
        handler_name = validate_handler_name(name or marked_name(func) or func.__name__)
        origin = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
        existing = self._handlers.get(handler_name)
        if existing is not None and existing.func is not func:
            raise DuplicateHandler(handler_name, existing.origin, origin)
        handler = Handler(
            name=handler_name,
            func=func,
            is_async=inspect.iscoroutinefunction(func),
            origin=origin,
        )
        self._handlers[handler_name] = handler
        return handler

    def get_handler(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise HandlerNotFound(name) from None

    def __getitem__(self, name: str) -> Handler:
        return self._handlers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
