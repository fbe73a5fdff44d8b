"""Logging set-up and the one redaction helper for anything that might hold a secret."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, Final

from corral.core.redaction import redact_text

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: The attributes every LogRecord has; anything else on a record came from ``extra=``
#: (uvicorn's ``color_message`` is its message again, with terminal colour codes).
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_text(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    the fields the code attached with ``extra=`` (``event``, ``job_id``, ``schedule_id``...) and,
    for an exception, ``exc_info`` (the traceback as one string).

    Every string goes through :func:`redact_text` here too: the filter only sees the format and
    its string arguments, while the formatted message, a traceback or an extra field may hold a
    URL with its password as well.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = _plain(value)
        if record.exc_info:
            entry["exc_info"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc_info"] = redact_text(record.exc_text)
        if record.stack_info:
            entry["stack_info"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def _plain(value: object) -> object:
    """A JSON value for an ``extra=`` field: numbers, booleans and None as they are, anything
    else (NaN included: JSON has no such number) as its redacted text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return redact_text(value if isinstance(value, str) else str(value))


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Root handler on stderr at ``level``, with URL passwords masked in every record;
    ``log_format`` is ``text`` (for people) or ``json`` (one object per line, for collectors)."""
    root = logging.getLogger()
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    if not any(getattr(h, "_corral", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._corral = True  # type: ignore[attr-defined]
        formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
        handler.setFormatter(formatter)
        handler.addFilter(_RedactingFilter())
        root.addHandler(handler)
    logging.getLogger("bullmq").setLevel(max(numeric, logging.WARNING))
    # Alembic announces each of its autogenerate plugins at INFO on every migration: seven
    # lines about code Corral never runs, at the top of a first `corral dev`.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(numeric, logging.WARNING))
