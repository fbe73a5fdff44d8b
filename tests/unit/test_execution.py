"""The Executor: async and sync handlers, timeouts, listeners. No Redis: a fake JobControl."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from corral.core.attempts import Attempt, AttemptOutcome
from corral.core.handlers import HandlerRegistry, Job
from corral.errors import HandlerNotFound, JobTimeoutError, UnrecoverableError
from corral.services.execution import Executor

LONG_S = 5.0  # how long a "slow" handler would run if nothing stopped it


class FakeControl:
    """Implements the JobControl protocol in memory."""

    def __init__(self) -> None:
        self.progress: list[object] = []
        self.lines: list[str] = []

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        self.progress.append(progress)

    async def log(self, line: str) -> None:
        self.lines.append(line)


class RecordingListener:
    def __init__(self) -> None:
        self.started: list[tuple[str, str, int]] = []
        self.finished: list[AttemptOutcome] = []

    def attempt_started(self, attempt: Attempt) -> None:
        self.started.append((attempt.job_id, attempt.name, attempt.number))

    def attempt_finished(self, outcome: AttemptOutcome) -> None:
        self.finished.append(outcome)


class BrokenListener:
    def attempt_started(self, attempt: Attempt) -> None:
        raise RuntimeError("listener broke on start")

    def attempt_finished(self, outcome: AttemptOutcome) -> None:
        raise RuntimeError("listener broke on finish")


def _job(
    name: str, *, attempts_made: int = 0, control: FakeControl | None = None, **data: Any
) -> Job:
    return Job(
        id=f"job-{name}",
        name=name,
        data=dict(data),
        attempts_made=attempts_made,
        timestamp_ms=0,
        control=control or FakeControl(),
    )


@pytest.fixture
def registry() -> HandlerRegistry:
    return HandlerRegistry()


@pytest.fixture
def observer() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def executor(registry: HandlerRegistry, observer: RecordingListener) -> Iterator[Executor]:
    ex = Executor(registry, threads=4, listeners=[observer])
    yield ex
    ex.close()


async def _run(
    executor: Executor, registry: HandlerRegistry, func: Callable[..., Any], name: str, **kw: Any
) -> Any:
    registry.register(func, name)
    timeout_ms = kw.pop("timeout_ms", 30_000)
    job = kw.pop("job", None) or _job(name, **kw)
    outcome = await executor.run(job, timeout_ms)
    executor.finished(outcome)  # as the worker does once the broker has recorded it
    if outcome.exception is not None:
        raise outcome.exception
    return outcome.result


# -- running -----------------------------------------------------------------------------------


async def test_async_handler(
    executor: Executor, registry: HandlerRegistry, observer: RecordingListener
) -> None:
    control = FakeControl()

    async def handler(job: Job) -> dict[str, Any]:
        await job.update_progress(25)
        await job.log("working")
        await job.update_progress(100)
        return {"success": True, "n": job.data["n"]}

    job = _job("async-task", attempts_made=2, control=control, n=3)
    result = await _run(executor, registry, handler, "async-task", job=job)
    assert result == {"success": True, "n": 3}
    assert control.progress == [25, 100]
    assert control.lines == ["working"]
    assert observer.started == [("job-async-task", "async-task", 3)]
    [finished] = observer.finished
    assert finished.ok is True
    assert finished.attempt.number == 3
    assert finished.error is None
    assert finished.duration_ms >= 0


async def test_async_handler_runs_on_the_loop_thread(
    executor: Executor, registry: HandlerRegistry
) -> None:
    async def handler(job: Job) -> int:
        return threading.get_ident()

    assert await _run(executor, registry, handler, "where") == threading.get_ident()


async def test_sync_handler_runs_off_the_loop_thread(
    executor: Executor, registry: HandlerRegistry, observer: RecordingListener
) -> None:
    loop_thread = threading.get_ident()

    def handler(job: Job) -> dict[str, Any]:
        return {"thread": threading.get_ident(), "name": threading.current_thread().name}

    result = await _run(executor, registry, handler, "sync-task")
    assert result["thread"] != loop_thread
    assert result["name"].startswith("corral-handler")
    assert observer.finished[0].ok is True


async def test_sync_wrapper_around_async_code_is_awaited(
    executor: Executor, registry: HandlerRegistry
) -> None:
    async def inner(job: Job) -> str:
        await asyncio.sleep(0)
        return "awaited"

    class AsyncCallable:
        async def __call__(self, job: Job) -> str:
            return "called"

    @functools.wraps(inner)
    def plain_wrapper(job: Job) -> Any:
        return inner(job)

    assert await _run(executor, registry, plain_wrapper, "wrapped") == "awaited"
    assert await _run(executor, registry, AsyncCallable(), "instance") == "called"


async def test_no_timeout(executor: Executor, registry: HandlerRegistry) -> None:
    async def handler(job: Job) -> str:
        await asyncio.sleep(0.01)
        return "done"

    assert await _run(executor, registry, handler, "untimed", timeout_ms=None) == "done"


# -- failures ----------------------------------------------------------------------------------


async def test_handler_error_propagates_and_is_observed(
    executor: Executor, registry: HandlerRegistry, observer: RecordingListener
) -> None:
    async def handler(job: Job) -> None:
        raise ValueError("bad input row 7")

    with pytest.raises(ValueError, match="bad input row 7"):
        await _run(executor, registry, handler, "failing")
    [finished] = observer.finished
    assert finished.ok is False
    assert finished.error == "ValueError: bad input row 7"
    assert finished.stacktrace is not None
    assert finished.stacktrace.endswith("ValueError: bad input row 7")


async def test_sync_handler_error_propagates(executor: Executor, registry: HandlerRegistry) -> None:
    def handler(job: Job) -> None:
        raise UnrecoverableError("do not retry")

    with pytest.raises(UnrecoverableError, match="do not retry"):
        await _run(executor, registry, handler, "unrecoverable")


async def test_handlers_own_timeout_error_is_not_a_job_timeout(
    executor: Executor, registry: HandlerRegistry
) -> None:
    async def async_handler(job: Job) -> None:
        raise TimeoutError("upstream HTTP call timed out")

    def sync_handler(job: Job) -> None:
        raise TimeoutError("socket timed out")

    for func, name in ((async_handler, "async-own"), (sync_handler, "sync-own")):
        with pytest.raises(TimeoutError) as info:
            await _run(executor, registry, func, name, timeout_ms=30_000)
        assert not isinstance(info.value, JobTimeoutError)
        assert "timed out" in str(info.value)


def test_unknown_handler(executor: Executor) -> None:
    with pytest.raises(HandlerNotFound, match=r"'os\.system' not registered"):
        executor.handler_for("os.system")


# -- timeouts ----------------------------------------------------------------------------------


async def test_async_timeout_cancels_the_coroutine(
    executor: Executor, registry: HandlerRegistry, observer: RecordingListener
) -> None:
    reached: dict[str, bool] = {"after_sleep": False, "finally": False, "cancelled": False}

    async def handler(job: Job) -> None:
        try:
            await asyncio.sleep(LONG_S)
            reached["after_sleep"] = True
        except asyncio.CancelledError:
            reached["cancelled"] = True
            raise
        finally:
            reached["finally"] = True

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(JobTimeoutError) as info:
        await _run(executor, registry, handler, "slow-async", timeout_ms=200)
    assert loop.time() - started < LONG_S  # fired before the handler's sleep could finish
    assert info.value.timeout_ms == 200
    assert "200 ms" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert reached == {"after_sleep": False, "finally": True, "cancelled": True}
    # still not reached a little later: the coroutine is gone, not running on
    await asyncio.sleep(0.05)
    assert reached["after_sleep"] is False
    assert observer.finished[0].ok is False
    assert isinstance(observer.finished[0].exception, JobTimeoutError)


async def test_sync_timeout_fails_on_time_and_the_thread_runs_on(
    executor: Executor, registry: HandlerRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    finished = threading.Event()

    def handler(job: Job) -> str:
        release.wait(LONG_S)  # blocks like a slow sync call until the test lets it go
        finished.set()
        return "late"

    with caplog.at_level(logging.WARNING, logger="corral.services.execution"):
        with pytest.raises(JobTimeoutError) as info:
            await _run(executor, registry, handler, "slow-sync", timeout_ms=200)
    assert info.value.timeout_ms == 200
    assert not finished.is_set()  # failed on time, while the handler was still running
    assert any("its thread runs on" in r.getMessage() for r in caplog.records)
    # the thread cannot be killed: it carries on and finishes once released
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)


async def test_attempts_sharing_a_limit_time_out_each_on_its_own(
    executor: Executor, registry: HandlerRegistry
) -> None:
    """One timer serves every attempt with the same limit (and one per other limit): the slow
    attempts time out, the quick ones complete, and one that ended in time is never cancelled
    afterwards by a deadline it no longer has."""

    async def handler(job: Job) -> str:
        await asyncio.sleep(job.data["s"])
        return "done"

    registry.register(handler, "varied")

    async def attempt(n: int, seconds: float, limit_ms: int) -> object:
        outcome = await executor.run(_job("varied", s=seconds), limit_ms)
        return outcome.result if outcome.ok else type(outcome.exception)

    specs = [(i, 0.3 if i % 3 == 0 else 0.0, 100 if i % 2 else 10_000) for i in range(30)]
    results = await asyncio.gather(*(attempt(*spec) for spec in specs))
    expected = [
        JobTimeoutError if seconds and limit_ms == 100 else "done" for _, seconds, limit_ms in specs
    ]
    assert results == expected

    async def completes_then_lives_on() -> str:
        outcome = await executor.run(_job("varied", s=0.0), 100)
        await asyncio.sleep(0.3)  # past the deadline the attempt had: no cancellation comes
        return "lived on" if outcome.ok else "failed"

    assert await completes_then_lives_on() == "lived on"


async def test_a_cancellation_from_outside_stays_a_cancellation(
    executor: Executor, registry: HandlerRegistry
) -> None:
    """A shutdown cancelling the attempt's task, before or together with its time limit,
    is not reported as a timeout."""

    async def handler(job: Job) -> None:
        await asyncio.sleep(LONG_S)

    registry.register(handler, "cut-off")
    task = asyncio.create_task(executor.run(_job("cut-off"), 30_000))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def cancelled_as_well(job: Job) -> None:
        try:
            await asyncio.sleep(LONG_S)
        except asyncio.CancelledError:  # the limit ran out; a shutdown comes at the same time
            this = asyncio.current_task()
            assert this is not None
            this.cancel()
            raise

    registry.register(cancelled_as_well, "cut-off-too")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(executor.run(_job("cut-off-too"), 50))


async def test_a_handler_that_swallows_its_timeout_keeps_its_result(
    executor: Executor, registry: HandlerRegistry
) -> None:
    """As with ``asyncio.timeout``: the cancellation is the handler's to handle; its task is
    left with no cancellation pending."""

    async def handler(job: Job) -> str:
        try:
            await asyncio.sleep(LONG_S)
        except asyncio.CancelledError:
            return "cleaned up"
        return "slept"

    async def run_and_report() -> tuple[object, int]:
        result = await _run(executor, registry, handler, "stubborn", timeout_ms=50)
        this = asyncio.current_task()
        assert this is not None
        await asyncio.sleep(0)  # no cancellation left to arrive here
        return result, this.cancelling()

    assert await asyncio.create_task(run_and_report()) == ("cleaned up", 0)


# -- listeners ---------------------------------------------------------------------------------


async def test_a_failing_listener_does_not_fail_the_job(
    registry: HandlerRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    recording = RecordingListener()
    executor = Executor(registry, threads=1, listeners=[BrokenListener(), recording])
    try:

        async def handler(job: Job) -> str:
            return "ok"

        with caplog.at_level(logging.ERROR, logger="corral.services.execution"):
            assert await _run(executor, registry, handler, "observed") == "ok"
    finally:
        executor.close()
    failures = [r for r in caplog.records if r.getMessage() == "attempt listener failed"]
    assert len(failures) == 2  # start and finish, each logged
    # the listener after the broken one was still told
    assert recording.started == [("job-observed", "observed", 1)]
    assert recording.finished[0].ok is True


async def test_a_failing_listener_does_not_mask_the_handler_error(
    registry: HandlerRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    executor = Executor(registry, threads=1, listeners=[BrokenListener()])
    try:

        async def handler(job: Job) -> None:
            raise KeyError("missing")

        with caplog.at_level(logging.ERROR, logger="corral.services.execution"):
            with pytest.raises(KeyError, match="missing"):
                await _run(executor, registry, handler, "observed-fail")
    finally:
        executor.close()


async def test_sync_reporting_from_a_thread_reaches_the_control() -> None:
    control = FakeControl()
    job = _job("plain", control=control)
    await asyncio.to_thread(job.update_progress_sync, 40)
    await asyncio.to_thread(job.log_sync, "from a thread")
    assert control.progress == [40]
    assert control.lines == ["from a thread"]
    with pytest.raises(RuntimeError, match=r"await job\.update_progress"):
        job.update_progress_sync(1)  # on the loop itself: it would deadlock, so it refuses
    assert control.progress == [40]
