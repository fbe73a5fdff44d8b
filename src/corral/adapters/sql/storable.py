"""Values made storable on both databases before they are sent.

The execution log is written from job outcomes the worker does not control (a handler's error
text or result, a raw job's name), and one bad row must not make a whole batch fail again and
again. So: NUL characters (PostgreSQL text and JSONB reject them) become U+FFFD, lone
surrogates become ``?``, NaN/Infinity in a result become strings, and strings are cut to their
column's length (PostgreSQL refuses longer ones, SQLite would keep them).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

_MAX_DEPTH: Final = 32


def json_text(value: Any) -> str:
    """JSON for the JSON/JSONB columns, on both write paths: UTF-8 as is, and never
    NaN/Infinity (JSONB rejects them; :func:`storable_json` turns them into strings first)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def text(value: str, max_len: int | None = None) -> str:
    """``value`` with NULs and lone surrogates replaced, cut to ``max_len``."""
    if value.isascii() and "\x00" not in value:  # the usual case: nothing to replace
        return value if max_len is None or len(value) <= max_len else value[:max_len]
    cleaned = value.replace("\x00", "\ufffd")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    if max_len is not None and len(cleaned) > max_len:
        cleaned = cleaned[:max_len]
    return cleaned


def opt_text(value: Any, max_len: int) -> str | None:
    """:func:`text` of ``str(value)``; None stays None."""
    return None if value is None else text(str(value), max_len)


def storable_json(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that both JSON and JSONB accept (see the module docstring)."""
    if depth > _MAX_DEPTH:
        return "..."
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(str(k)): storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v, depth + 1) for v in value]
    return text(str(value))
