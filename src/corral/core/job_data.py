"""Job data: a JSON object of plain JSON values, bounded in depth and in stored size. Pure."""

from __future__ import annotations

import json
import math
from typing import Any, Final

from corral.core.validation import check_text
from corral.errors import InvalidJobOptions

#: The default cap on a job's data as BullMQ stores it (compact JSON, ASCII escapes); the
#: runtime passes CORRAL_MAX_JOB_DATA_BYTES instead.
DEFAULT_MAX_DATA_BYTES: Final = 512 * 1024
MAX_DATA_DEPTH: Final = 32


def validate_data(
    data: object, path: str = "data", *, max_bytes: int = DEFAULT_MAX_DATA_BYTES
) -> dict[str, Any]:
    """Job data must be a JSON object of plain JSON values, at most 32 levels deep and at most
    ``max_bytes`` serialized as BullMQ stores it (compact, ASCII escapes).

    Checked by walking the value, not by serialising it whole, so the error can name the exact
    path (``data.items[3].when``), a 10,000-deep structure fails fast instead of recursing, and
    a 50 MB value is refused once the walk has counted past the limit.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidJobOptions(path, f"must be a JSON object (dict), got {type(data).__name__}")
    meter = _Meter(max_bytes)
    over = False
    try:
        meter.value(data, path, 0)
    except _Over:
        over = True
    if meter.total > max_bytes:
        size = f"at least {meter.total}" if over else meter.total
        raise InvalidJobOptions(path, f"is {size} bytes serialized; the limit is {max_bytes} bytes")
    return data


class _Over(Exception):
    """The walk has counted past the limit; the rest need not be looked at."""


class _Meter:
    """Sums the exact size of the compact JSON form while checking each value.

    The walk goes on to twice the limit, so data a little over it gets its exact size in the
    error; past that it stops and the error gives the size counted so far ("at least").
    """

    __slots__ = ("stop_at", "total")

    def __init__(self, limit: int) -> None:
        self.stop_at = 2 * limit
        self.total = 0

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.stop_at:
            raise _Over

    def value(self, value: object, path: str, depth: int) -> None:
        if depth > MAX_DATA_DEPTH:
            raise InvalidJobOptions(path, f"nested deeper than {MAX_DATA_DEPTH} levels")
        if isinstance(value, dict):
            self._object(value, path, depth)
        elif isinstance(value, list | tuple):
            self.add(2 + max(len(value) - 1, 0))  # brackets and commas
            for index, item in enumerate(value):
                self.value(item, f"{path}[{index}]", depth + 1)
        elif isinstance(value, str):
            self._text(value, path)
        else:
            self.add(_scalar_size(value, path))

    def _object(self, value: dict[Any, Any], path: str, depth: int) -> None:
        self.add(2 + max(len(value) - 1, 0))  # braces and commas
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJobOptions(path, f"has a non-string key {key!r}")
            self._text(key, path)
            self.add(1)  # the colon
            self.value(item, f"{path}.{key}", depth + 1)

    def _text(self, text: str, path: str) -> None:
        check_text(text, path, "NUL characters are not allowed", error=InvalidJobOptions)
        if self.total + len(text) + 2 > self.stop_at:
            # Certainly past the stop without escaping a (maybe huge) string to measure it.
            self.add(len(text) + 2)
        self.add(len(json.dumps(text)))  # the exact stored form, at C speed


def _scalar_size(value: object, path: str) -> int:
    if value is None:
        return 4
    if isinstance(value, bool):
        return 4 if value else 5
    if isinstance(value, int):
        if abs(value) >= 10**30:
            raise InvalidJobOptions(path, "integer too large")
        return len(int.__repr__(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJobOptions(path, "NaN and Infinity are not valid JSON")
        return len(float.__repr__(value))
    raise InvalidJobOptions(path, f"{type(value).__name__} is not JSON-serializable")
