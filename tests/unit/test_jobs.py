"""The job model: every bad input of ``add_job`` / ``add_bulk_jobs``, named by its path."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from corral.core.jobs import (
    DEFAULT_MAX_DATA_BYTES,
    DEFAULT_REMOVE_ON_COMPLETE,
    DEFAULT_REMOVE_ON_FAIL,
    MAX_BULK_JOBS,
    Backoff,
    JobExecutionStatus,
    JobOptions,
    JobPriority,
    Retention,
    build_bulk,
    build_spec,
    is_job_id,
    parse_options,
    validate_data,
    validate_name,
)
from corral.errors import InvalidJobOptions, ValidationError


def _rejects(path: str, call: Any, *args: Any, **kwargs: Any) -> InvalidJobOptions:
    """``call`` raises InvalidJobOptions whose ``.path`` is ``path`` and whose message names it."""
    with pytest.raises(InvalidJobOptions) as info:
        call(*args, **kwargs)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    return info.value


def _option_rejected(name: str, value: object) -> InvalidJobOptions:
    return _rejects(f"options.{name}", build_spec, "task", {}, {name: value})


# -- enums -------------------------------------------------------------------------------------


def test_job_priority_values_and_order() -> None:
    assert {p.name: p.value for p in JobPriority} == {
        "LOW": 1,
        "NORMAL": 5,
        "HIGH": 10,
        "CRITICAL": 20,
    }
    assert JobPriority.LOW < JobPriority.NORMAL < JobPriority.HIGH < JobPriority.CRITICAL


def test_job_execution_status_has_the_six_job_states_and_missed() -> None:
    """The six states of a queue job, plus ``missed``: the row for ticks a scheduler skipped."""
    assert {s.value for s in JobExecutionStatus} == {
        "waiting",
        "active",
        "completed",
        "failed",
        "delayed",
        "paused",
        "missed",
    }
    assert len(JobExecutionStatus) == 7
    assert JobExecutionStatus.COMPLETED == "completed"


# -- a good job --------------------------------------------------------------------------------


def test_build_spec_defaults() -> None:
    spec = build_spec("example-task", {"message": "Hello World"}, {})
    assert spec.name == "example-task"
    assert spec.data == {"message": "Hello World"}
    assert spec.options == JobOptions()
    assert spec.options.priority == JobPriority.NORMAL
    assert spec.options.timeout_ms == 30_000
    assert spec.options.attempts == 3
    assert spec.options.remove_on_complete == DEFAULT_REMOVE_ON_COMPLETE
    assert spec.options.remove_on_fail == DEFAULT_REMOVE_ON_FAIL


def test_build_spec_all_options() -> None:
    spec = build_spec(
        "urgent-task",
        {"action": "process-payment", "amount": 100},
        {
            "priority": JobPriority.HIGH,
            "category": "payments",
            "timeout": 10_000,
            "delay": 0,
            "attempts": 1,
            "backoff": {"type": "fixed", "delay": 250},
            "job_id": "pay-42",
            "remove_on_complete": True,
            "remove_on_fail": {"count": 10, "age": 3600},
        },
    )
    options = spec.options
    assert options.priority == 10
    assert options.category == "payments"
    assert options.timeout_ms == 10_000
    assert options.attempts == 1
    assert options.backoff == Backoff(type="fixed", delay_ms=250)
    assert options.job_id == "pay-42"
    assert options.remove_on_complete == Retention(count=0)
    assert options.remove_on_fail == Retention(count=10, age_s=3600)


def test_none_data_is_an_empty_object() -> None:
    assert build_spec("task", None, {}).data == {}


def test_timeout_none_means_no_timeout() -> None:
    assert parse_options({"timeout": None}).timeout_ms is None


def test_parse_options_uses_given_defaults() -> None:
    base = JobOptions(attempts=7, timeout_ms=None)
    options = parse_options({"priority": 2}, defaults=base)
    assert (options.attempts, options.timeout_ms, options.priority) == (7, None, 2)


# -- priority ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 3, 7, 19, 20])
def test_any_integer_priority_1_to_20_is_accepted(value: int) -> None:
    assert build_spec("task", {}, {"priority": value}).options.priority == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("HIGH", 10), ("high", 10), ("LOW", 1), ("CRITICAL", 20), (JobPriority.NORMAL, 5)],
)
def test_priority_names_are_accepted(value: object, expected: int) -> None:
    assert parse_options({"priority": value}).priority == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "between 1 and 20, got 0"),
        (21, "between 1 and 20, got 21"),
        (-5, "between 1 and 20"),
        (1.5, "must be an integer, got float"),
        (True, "must be an integer, got bool"),
        ("x", "must be an integer, got str"),
        ("5", "must be an integer, got str"),
        (None, "must be an integer, got NoneType"),
    ],
)
def test_bad_priority_is_rejected(value: object, problem: str) -> None:
    error = _option_rejected("priority", value)
    assert problem in str(error)
    assert isinstance(error, ValueError)  # callers may catch the builtin
    assert isinstance(error, ValidationError)


# -- timeout, delay, attempts, category ---------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 24 * 3600 * 1000 + 1, 1.5, "1000", True])
def test_bad_timeout_is_rejected(value: object) -> None:
    _option_rejected("timeout", value)


@pytest.mark.parametrize("value", [-1, 1.5, "10", None, 366 * 24 * 3600 * 1000])
def test_bad_delay_is_rejected(value: object) -> None:
    _option_rejected("delay", value)


def test_delay_zero_and_positive_are_accepted() -> None:
    assert parse_options({"delay": 0}).delay_ms == 0
    assert parse_options({"delay": 1500}).delay_ms == 1500


@pytest.mark.parametrize("value", [0, 101, -1, 2.0, "3", False])
def test_bad_attempts_are_rejected(value: object) -> None:
    _option_rejected("attempts", value)


@pytest.mark.parametrize("value", [1, 100])
def test_attempts_bounds_are_accepted(value: int) -> None:
    assert parse_options({"attempts": value}).attempts == value


@pytest.mark.parametrize("value", ["", "x" * 65, 42])
def test_bad_category_is_rejected(value: object) -> None:
    _option_rejected("category", value)


@pytest.mark.parametrize(
    "value", ["pay\u202emnets", "\u200bbilling", "\ufeffbilling", "a\u2066b\u2069", "a\nb"]
)
def test_category_with_invisible_or_bidi_characters_is_rejected(value: str) -> None:
    error = _option_rejected("category", value)
    assert "invisible" in str(error) or "control" in str(error)


@pytest.mark.parametrize("value", ["billing", "账单", "facturación", "a b"])
def test_good_category_is_accepted(value: str) -> None:
    assert parse_options({"category": value}).category == value


# -- unknown options ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prio", "timeout_ms", "jobId", "removeOnComplete"])
def test_unknown_option_is_rejected(name: str) -> None:
    error = _option_rejected(name, 1)
    assert "unknown option" in str(error)
    assert "priority" in str(error)  # the known ones are listed


# -- job_id ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("123", "digits only"),
        ("0", "digits only"),
        ("a:b", "':'"),
        ("a\nb", "control characters"),
        ("", "1-128 characters"),
        ("x" * 129, "1-128 characters"),
        (123, "must be a string, got int"),
    ],
)
def test_bad_job_id_is_rejected(value: object, problem: str) -> None:
    assert problem in str(_option_rejected("job_id", value))


@pytest.mark.parametrize("value", ["order-123", "a1", "x" * 128, "订单-7"])
def test_good_job_id_is_accepted(value: str) -> None:
    assert parse_options({"job_id": value}).job_id == value


#: Every name BullMQ 3.4.4 (or Corral) keeps right under ``prefix:queue:``: a job with such an
#: id would write its hash over the queue's own list, set or stream.
KEY_NAMES = [
    "wait",
    "paused",
    "active",
    "prioritized",
    "delayed",
    "completed",
    "failed",
    "stalled",
    "stalled-check",
    "limiter",
    "meta",
    "events",
    "id",
    "marker",
    "pc",
    "de",
    "dn",
    "repeat",
    "metrics",
    "waiting-children",
    "priority",
    "delay",
    "corral",
]


@pytest.mark.parametrize("value", KEY_NAMES)
def test_a_queue_key_name_is_not_a_job_id(value: str) -> None:
    error = _option_rejected("job_id", value)
    assert "reserved" in str(error)
    assert not is_job_id(value)
    with pytest.raises(InvalidJobOptions):
        build_bulk([{"name": "task", "options": {"job_id": value}}])


@pytest.mark.parametrize("value", ["Wait", "meta-1", "events2", "waiting"])
def test_names_near_the_key_names_are_job_ids(value: str) -> None:
    assert parse_options({"job_id": value}).job_id == value
    assert is_job_id(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "a:b", "a\nb", "a\u202eb", "\u0661", 7, None])
def test_is_job_id_applies_the_add_rule(value: object) -> None:
    assert not is_job_id(value)


@pytest.mark.parametrize("value", ["1", "123456", "order-7"])
def test_counted_and_chosen_ids_can_be_looked_up(value: str) -> None:
    assert is_job_id(value)


@pytest.mark.parametrize(
    "value", ["repeat:nightly-report:1796078802697", "repeat:a:b:17", "repeat:x:0"]
)
def test_ids_bullmq_job_schedulers_give_can_be_looked_up_not_chosen(value: str) -> None:
    assert is_job_id(value)
    with pytest.raises(InvalidJobOptions):
        parse_options({"job_id": value})


@pytest.mark.parametrize(
    "value",
    [
        "repeat:x",
        "repeat::17",
        "repeat:x:",
        "repeat:x:1a",
        "repeat:x:\u0661",
        "repeat:x\n:1",
        "repeat:" + "x" * 129 + ":1",
        "repeat:x:" + "1" * 21,
        "repeats:x:1",
    ],
)
def test_only_the_shape_of_a_scheduler_job_id_passes(value: str) -> None:
    assert not is_job_id(value)


def _bullmq_key_names() -> set[str]:
    """The first segment of every key name the installed bullmq builds on a queue's prefix."""
    import bullmq
    from bullmq.queue_keys import QueueKeys

    root = Path(bullmq.__file__).parent
    names = {name for name in QueueKeys().getKeys("q") if name}
    concat = re.compile(r"\b(?:prefix|parentPrefix|prefixKey|baseKey) *\.\. *[\"']([a-z][a-z-]*)")
    to_key = re.compile(r"toKey\([\"']([a-z][a-z-]*)")
    for script in (root / "commands").glob("*.lua"):
        names.update(concat.findall(script.read_text()))
    for source in root.rglob("*.py"):
        names.update(to_key.findall(source.read_text()))
    return names


def test_every_key_name_of_the_installed_bullmq_is_reserved() -> None:
    found = _bullmq_key_names()
    assert {"wait", "meta", "stalled-check", "metrics", "priority"} <= found  # the scan works
    assert found <= set(KEY_NAMES)
    assert not any(is_job_id(name) for name in found)


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_integer_means_fixed_delay() -> None:
    assert parse_options({"backoff": 2000}).backoff == Backoff(type="fixed", delay_ms=2000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "fixed", "delay": 100}, Backoff(type="fixed", delay_ms=100)),
        ({"type": "exponential", "delay": 50}, Backoff(type="exponential", delay_ms=50)),
        ({"delay": 7}, Backoff(type="exponential", delay_ms=7)),
        ({}, Backoff()),
        (Backoff(type="fixed", delay_ms=9), Backoff(type="fixed", delay_ms=9)),
    ],
)
def test_backoff_forms(value: object, expected: Backoff) -> None:
    assert parse_options({"backoff": value}).backoff == expected


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("fast", "options.backoff"),
        (1.5, "options.backoff"),
        (True, "options.backoff"),
        ([1000], "options.backoff"),
        (-1, "options.backoff"),
        ({"type": "linear", "delay": 10}, "options.backoff.type"),
        ({"type": "fixed", "delay": -5}, "options.backoff.delay"),
        ({"type": "fixed", "delay": "5"}, "options.backoff.delay"),
        ({"type": "fixed", "jitter": 0.5}, "options.backoff.jitter"),
    ],
)
def test_bad_backoff_is_rejected(value: object, path: str) -> None:
    _rejects(path, parse_options, {"backoff": value})


# -- retention ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["remove_on_complete", "remove_on_fail"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, Retention(count=0)),
        (False, Retention()),
        (0, Retention(count=0)),
        (500, Retention(count=500)),
        ({"count": 10}, Retention(count=10)),
        ({"age": 60}, Retention(age_s=60)),
        ({"count": 10, "age": 60}, Retention(count=10, age_s=60)),
        (Retention(count=3), Retention(count=3)),
    ],
)
def test_retention_forms(name: str, value: object, expected: Retention) -> None:
    assert getattr(parse_options({name: value}), name) == expected


@pytest.mark.parametrize(
    ("value", "suffix"),
    [
        (-1, ""),
        ("all", ""),
        (1.5, ""),
        ({"count": -1}, ".count"),
        ({"age": "1h"}, ".age"),
        ({"keep": 3}, ".keep"),
    ],
)
def test_bad_retention_is_rejected(value: object, suffix: str) -> None:
    _rejects(f"options.remove_on_complete{suffix}", parse_options, {"remove_on_complete": value})


# -- name --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["task", "dataProcessingJob", "batch-task", "_x", "a" * 64])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "os.system", "os:system", "../x", "a" * 65, "1task", "-task", "a b", "task\n", None, 5],
)
def test_bad_names_are_rejected(name: object) -> None:
    _rejects("name", build_spec, name, {}, {})


# -- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        ({"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, "data.when", "datetime"),
        ({"tags": {"a", "b"}}, "data.tags", "set"),
        ({"blob": b"\x00\x01"}, "data.blob", "bytes"),
        ({"items": [1, 2, {"when": dt.date(2024, 1, 1)}]}, "data.items[2].when", "date"),
        ({"x": float("nan")}, "data.x", "NaN"),
        ({"x": float("inf")}, "data.x", "NaN and Infinity"),
        ({"x": [float("-inf")]}, "data.x[0]", "NaN and Infinity"),
        ({"s": "a\x00b"}, "data.s", "NUL"),
        ({"s": "\ud800"}, "data.s", "surrogate"),
        ({"a\x00b": 1}, "data", "NUL"),
        ({"\udc00": 1}, "data", "surrogate"),
        ({1: "x"}, "data", "non-string key"),
        ({"big": 10**40}, "data.big", "too large"),
        ({"f": print}, "data.f", "not JSON-serializable"),
    ],
)
def test_bad_data_names_the_path(data: object, path: str, problem: str) -> None:
    error = _rejects(path, build_spec, "task", data, {})
    assert problem in str(error)


@pytest.mark.parametrize("data", [[1, 2], "x", 42, True, ("a",)])
def test_non_dict_data_is_rejected(data: object) -> None:
    assert "JSON object" in str(_rejects("data", build_spec, "task", data, {}))


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_data_nested_10000_deep_is_invalid_not_recursion_error(kind: str) -> None:
    inner: Any = 0
    for _ in range(10_000):
        inner = [inner] if kind == "list" else {"k": inner}
    with pytest.raises(InvalidJobOptions) as info:
        build_spec("task", {"root": inner}, {})
    assert "nested deeper than 32" in str(info.value)
    assert info.value.path.startswith("data.root")


def test_data_at_the_depth_cap_is_accepted() -> None:
    inner: Any = 0
    for _ in range(31):
        inner = [inner]
    assert validate_data({"root": inner}) == {"root": inner}


def test_data_over_the_default_512_kib_is_rejected() -> None:
    error = _rejects("data", build_spec, "task", {"blob": "x" * DEFAULT_MAX_DATA_BYTES}, {})
    assert f"the limit is {DEFAULT_MAX_DATA_BYTES} bytes" in str(error)
    under = {"blob": "x" * (DEFAULT_MAX_DATA_BYTES - 100)}
    assert build_spec("task", under, {}).data is under


def _serialized(data: object) -> int:
    return len(json.dumps(data, separators=(",", ":"), allow_nan=False))


@pytest.mark.parametrize(
    "data",
    [
        {"deep": {"x": "y" * 3000}},
        {"blob": "中" * 500},
        {"l": [1.5, None, True, "é", {"k": -3}] * 400},
        {"\u00e9" * 700: 1},
    ],
    ids=["ascii", "cjk", "mixed", "key"],
)
def test_the_size_error_gives_the_exact_serialized_size_and_the_limit(data: Any) -> None:
    size = _serialized(data)
    error = _rejects("data", validate_data, data, max_bytes=size - 1)
    assert str(error) == f"data: is {size} bytes serialized; the limit is {size - 1} bytes"
    assert validate_data(data, max_bytes=size) is data  # the limit itself is allowed


def test_the_size_error_figure_is_not_the_walks_estimate() -> None:
    # 600,000 ASCII characters are 600,014 bytes stored; an estimate counting every character
    # as 12 bytes said "about 7,200,000".
    data = {"deep": {"x": "y" * 600_000}}
    error = _rejects("data", validate_data, data)
    assert f"is {_serialized(data)} bytes serialized" in str(error)


def test_the_limit_is_an_argument() -> None:
    data = {"blob": "x" * 2000}
    assert validate_data(data) is data
    _rejects("data", validate_data, data, max_bytes=1024)
    _rejects("data", build_spec, "task", data, {}, max_data_bytes=1024)
    _rejects("jobs[0].data", build_bulk, [{"name": "task", "data": data}], max_data_bytes=1024)


def test_the_size_cap_is_on_the_serialized_form() -> None:
    # 150 KiB of ASCII serializes to ~150 KiB: under a 256 KiB cap, so accepted.
    ascii_data = {"blob": "x" * (150 * 1024)}
    assert validate_data(ascii_data, max_bytes=256 * 1024) is ascii_data
    # 100 K CJK characters serialize (as BullMQ stores them, \\uXXXX) to ~600 KiB: rejected.
    cjk = {"blob": "中" * (100 * 1024)}
    assert _serialized(cjk) > DEFAULT_MAX_DATA_BYTES
    _rejects("data", validate_data, cjk)
    # Many short floats: small when serialized.
    floats = {"f": [0.5] * 50_000}
    assert validate_data(floats) is floats


def test_huge_data_is_rejected_without_serializing_it_all() -> None:
    data = {f"k{i}": "v" * 1000 for i in range(5000)}  # ~5 MB
    error = _rejects("data", validate_data, data)
    assert "is at least" in str(error)  # the walk stopped once past the limit


def test_good_data_is_kept_as_is() -> None:
    data = {"s": "<b>x</b>", "n": None, "b": True, "i": -3, "f": 1.25, "l": [1, [2, {"k": "v"}]]}
    assert build_spec("task", data, {}).data is data


# -- bulk --------------------------------------------------------------------------------------


def _items(count: int) -> list[dict[str, Any]]:
    return [
        {"name": "batch-task", "data": {"index": i}, "options": {"priority": JobPriority.LOW}}
        for i in range(count)
    ]


def test_build_bulk_accepts_the_spec_example() -> None:
    specs = build_bulk(_items(10))
    assert [s.data["index"] for s in specs] == list(range(10))
    assert all(s.options.priority == 1 for s in specs)


def test_build_bulk_names_the_bad_item() -> None:
    items = _items(10)
    items[3]["options"] = {"priority": 0}
    error = _rejects("jobs[3].options.priority", build_bulk, items)
    assert "got 0" in str(error)


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"name": "os.system", "data": {}}, "jobs[3].name"),
        ({"name": "t", "data": {"when": dt.date(2024, 1, 1)}}, "jobs[3].data.when"),
        ({"name": "t", "data": [1]}, "jobs[3].data"),
        ({"name": "t", "options": {"prio": 1}}, "jobs[3].options.prio"),
        ({"name": "t", "options": []}, "jobs[3].options"),
        ({"name": "t", "options": 0}, "jobs[3].options"),
        ({"name": "t", "extra": 1}, "jobs[3].extra"),
        ("not-an-object", "jobs[3]"),
    ],
)
def test_build_bulk_item_errors(item: object, path: str) -> None:
    items: list[object] = list(_items(10))
    items[3] = item
    _rejects(path, build_bulk, items)


def test_build_bulk_accepts_opts_alias_and_missing_options() -> None:
    specs = build_bulk([{"name": "a", "opts": {"priority": 20}}, {"name": "b"}])
    assert [s.options.priority for s in specs] == [20, 5]


def test_build_bulk_rejects_1001_items() -> None:
    error = _rejects("jobs", build_bulk, _items(MAX_BULK_JOBS + 1))
    assert "1001" in str(error)


def test_build_bulk_accepts_1000_items() -> None:
    assert len(build_bulk(_items(MAX_BULK_JOBS))) == MAX_BULK_JOBS


@pytest.mark.parametrize("items", [None, {"name": "a"}, "jobs", 3])
def test_build_bulk_rejects_non_lists(items: object) -> None:
    _rejects("jobs", build_bulk, items)


def test_build_bulk_empty_list() -> None:
    assert build_bulk([]) == []
