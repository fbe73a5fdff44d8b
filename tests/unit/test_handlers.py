"""The ``@job_handler`` mark, the registry and the Job a handler receives."""

from __future__ import annotations

from typing import Any

import pytest

from corral.core.handlers import (
    Handler,
    HandlerRegistry,
    Job,
    job_handler,
    marked_name,
    validate_handler_name,
)
from corral.errors import DuplicateHandler, HandlerError, HandlerNotFound, ValidationError


class FakeControl:
    def __init__(self) -> None:
        self.progress: list[object] = []
        self.lines: list[str] = []

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        self.progress.append(progress)

    async def log(self, line: str) -> None:
        self.lines.append(line)


def _job(control: FakeControl | None = None, **data: Any) -> Job:
    return Job(
        id="7",
        name="task",
        data=dict(data),
        attempts_made=0,
        timestamp_ms=0,
        control=control or FakeControl(),
    )


# -- the decorator -----------------------------------------------------------------------------


def test_bare_decorator_marks_with_the_function_name() -> None:
    async def data_processing_job(job: Job) -> dict[str, Any]:
        return {}

    marked = job_handler(data_processing_job)
    assert marked is data_processing_job  # the function itself, unwrapped
    assert marked_name(marked) == "data_processing_job"


def test_named_decorator_marks_with_the_given_name() -> None:
    @job_handler("dataProcessingJob")
    def handler(job: Job) -> None:
        return None

    assert marked_name(handler) == "dataProcessingJob"
    assert handler.__name__ == "handler"


def test_decorating_registers_nothing_globally() -> None:
    @job_handler
    def lonely(job: Job) -> None:
        return None

    assert "lonely" not in HandlerRegistry()


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "os:system",
        "builtins.eval",
        "../x",
        "handlers/x",
        "a" * 65,
        "",
        "1abc",
        "-abc",
        "a b",
        "tâche",
        "x\n",
        "rec\u202eord",
        "\ufeffrecord",
        "re\u200bcord",
    ],
)
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        job_handler(name)
    assert info.value.path == "job_handler name"
    assert "1-64" in str(info.value)


@pytest.mark.parametrize("name", ["a" * 64, "_private", "example-task", "Task9", "__import__"])
def test_valid_names(name: str) -> None:
    assert validate_handler_name(name) == name


def test_bare_decorator_rejects_a_function_with_an_invalid_name() -> None:
    with pytest.raises(ValidationError):
        job_handler(lambda job: None)


@pytest.mark.parametrize("value", [None, 5, b"task", ["task"]])
def test_non_string_names_are_rejected(value: object) -> None:
    with pytest.raises(ValidationError):
        validate_handler_name(value)


def test_marked_name_ignores_unmarked_and_non_callables() -> None:
    def plain(job: Job) -> None:
        return None

    class NotCallable:
        __corral_handler_name__ = "x"

    assert marked_name(plain) is None
    assert marked_name(NotCallable()) is None
    assert marked_name("x") is None


# -- the registry ------------------------------------------------------------------------------


async def async_handler(job: Job) -> str:
    return "async"


def sync_handler(job: Job) -> str:
    return "sync"


def test_register_uses_mark_then_explicit_then_function_name() -> None:
    @job_handler("marked-name")
    def marked(job: Job) -> None:
        return None

    registry = HandlerRegistry()
    assert registry.register(marked).name == "marked-name"
    assert registry.register(sync_handler, "explicit").name == "explicit"
    assert registry.register(async_handler).name == "async_handler"
    assert sorted(registry) == ["async_handler", "explicit", "marked-name"]
    assert len(registry) == 3


def test_register_records_kind_and_origin() -> None:
    registry = HandlerRegistry()
    a = registry.register(async_handler)
    s = registry.register(sync_handler)
    assert isinstance(a, Handler)
    assert a.is_async
    assert not s.is_async
    assert a.func is async_handler
    assert a.origin == f"{__name__}.async_handler"
    assert s.origin == f"{__name__}.sync_handler"


def test_registering_the_same_function_twice_is_harmless() -> None:
    registry = HandlerRegistry()
    registry.register(sync_handler)
    registry.register(sync_handler)
    assert len(registry) == 1


def test_duplicate_name_names_both_origins() -> None:
    def first(job: Job) -> None:
        return None

    def second(job: Job) -> None:
        return None

    registry = HandlerRegistry()
    registry.register(first, "sync")
    with pytest.raises(DuplicateHandler) as info:
        registry.register(second, "sync")
    error = info.value
    assert isinstance(error, HandlerError)
    assert error.name == "sync"
    assert error.first.endswith("first")
    assert error.second.endswith("second")
    assert str(error) == f"handler 'sync' registered twice: {error.first}, {error.second}"
    assert registry.get_handler("sync").func is first  # the first one stays


@pytest.mark.parametrize("name", ["os.system", "../x", "a" * 65, "a:b"])
def test_register_rejects_invalid_names(name: str) -> None:
    registry = HandlerRegistry()
    with pytest.raises(ValidationError):
        registry.register(sync_handler, name)
    assert len(registry) == 0


def test_register_rejects_a_function_whose_name_is_invalid() -> None:
    with pytest.raises(ValidationError):
        HandlerRegistry().register(lambda job: None)


def test_unknown_handler() -> None:
    registry = HandlerRegistry()
    registry.register(sync_handler)
    with pytest.raises(HandlerNotFound) as info:
        registry.get_handler("os.system")
    assert str(info.value) == "handler 'os.system' not registered"
    assert info.value.name == "os.system"
    assert isinstance(info.value, LookupError)
    assert "os.system" not in registry
    with pytest.raises(KeyError):
        registry["os.system"]


def test_registries_are_independent() -> None:
    one, two = HandlerRegistry(), HandlerRegistry()
    one.register(sync_handler)
    assert "sync_handler" in one
    assert "sync_handler" not in two


# -- the Job -----------------------------------------------------------------------------------


async def test_job_reports_progress_and_log_lines_through_its_control() -> None:
    control = FakeControl()
    job = _job(control, n=1)
    await job.update_progress(25)
    await job.update_progress({"step": "load"})
    await job.log("line one")
    assert control.progress == [25, {"step": "load"}]
    assert control.lines == ["line one"]
    assert job.data == {"n": 1}


def test_job_repr_leaves_the_data_out() -> None:
    job = _job(password="CANARY-7f3a")  # noqa: S106 - a canary, not a credential
    assert "CANARY" not in repr(job)
    assert "'7'" in repr(job)
    assert "task" in repr(job)
