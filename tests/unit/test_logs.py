"""LOG_FORMAT=json: the formatter's one-object-per-line records, with the ``extra=`` fields the
text format leaves out, and no secret anywhere in them."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

from corral.logs import JsonFormatter, _RedactingFilter, configure_logging

CANARY = "CANARY-pw-7f3a"
URL = f"redis://:{CANARY}@cache.internal:6379/0"


def _record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionError(f"cannot reach {URL}")
        except ConnectionError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(
        "corral.worker", logging.WARNING, __file__, 1, msg, args or None, exc_info
    )
    record.__dict__.update(extra)
    return record


def _format(record: logging.LogRecord) -> dict[str, Any]:
    """What the handler writes: the redacting filter first, then the formatter."""
    assert _RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry: dict[str, Any] = json.loads(line)
    return entry


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    entry = _format(_record("job %s failed after %d attempts", "42", 3))
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "corral.worker"
    assert entry["message"] == "job 42 failed after 3 attempts"
    assert datetime.fromisoformat(entry["time"]).utcoffset() is not None
    assert "exc_info" not in entry


def test_the_extra_fields_are_kept() -> None:
    entry = _format(
        _record(
            "job %s done",
            "7",
            event="job.failed",
            job_id="7",
            schedule_id="0b0c",
            worker_id="w-1",
            attempt=2,
            skew_s=0.25,
        )
    )
    assert entry["event"] == "job.failed"
    assert entry["job_id"] == "7"
    assert entry["schedule_id"] == "0b0c"
    assert entry["worker_id"] == "w-1"
    assert entry["attempt"] == 2
    assert entry["skew_s"] == 0.25


def test_an_extra_that_is_not_json_becomes_its_text() -> None:
    entry = _format(_record("x", event="e", odd={1, 2}, ratio=float("nan")))
    assert entry["odd"] == "{1, 2}"
    assert entry["ratio"] == "nan"


def test_the_exception_is_one_string_field() -> None:
    entry = _format(_record("lost the connection", exc=True, event="worker.error"))
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert "ConnectionError: cannot reach redis://:***@cache.internal:6379/0" in entry["exc_info"]


def test_no_secret_reaches_the_line() -> None:
    """In the format, in a string argument, in an object argument (its text is only made when
    the message is formatted), in an extra field and in the traceback."""
    record = _record(
        f"connecting to {URL} as %s (%s)",
        URL,
        ValueError(URL),
        exc=True,
        event="worker.error",
        redis_url=URL,
    )
    line = JsonFormatter().format(record) if _RedactingFilter().filter(record) else ""
    assert CANARY not in line
    entry = json.loads(line)
    assert entry["message"].count("redis://:***@cache.internal:6379/0") == 3
    assert entry["redis_url"] == "redis://:***@cache.internal:6379/0"


def test_alembics_plugin_announcements_stay_out_of_an_info_log() -> None:
    """Seven INFO lines about Alembic's autogenerate plugins opened every first migration."""
    plugins, root = logging.getLogger("alembic.runtime.plugins"), logging.getLogger()
    before, root_level, handlers = plugins.level, root.level, list(root.handlers)
    try:
        configure_logging("info")
        assert not plugins.isEnabledFor(logging.INFO)
        assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
        configure_logging("debug")
        assert not plugins.isEnabledFor(logging.INFO)
    finally:
        plugins.setLevel(before)
        root.setLevel(root_level)
        root.handlers[:] = handlers
