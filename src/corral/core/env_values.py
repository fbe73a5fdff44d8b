"""The values a setting can take, as small parsing rules: whole numbers and numbers within
bounds, yes/no words, text with a length, one of a few choices, secrets. Pure.

Each rule takes what the environment gave (text) or what code passed (the value itself) and
returns the value, or raises ValueError with a message that fits after "VARIABLE: ". The rules
are idempotent, so a value that passed once passes again when settings are copied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final


class Secret:
    """A string that never shows in ``repr``, ``str`` or a log line; ``get_secret_value()``
    is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


Parse = Callable[[Any], Any]

#: The words pydantic accepted for yes and no; kept so no deployment's value changes meaning.
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})
_INT_TEXT: Final = re.compile(r"[+-]?\d+")


def _bounds(low: float | None, high: float | None, *, above: bool = False) -> str:
    lower = f"> {low}" if above else f">= {low}"
    if high is None:
        return lower
    return f"between {low} and {high}" if not above else f"{lower} and <= {high}"


def integer(low: int, high: int | None = None) -> Parse:
    def parse(value: Any) -> int:
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {_shown(value)}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"must be {_bounds(low, high)}, got {value}")
        return value

    return parse


def optional(parse: Parse) -> Parse:
    """``parse``, or None for no value (unset, or set to the empty string)."""

    def parse_optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse(value)

    return parse_optional


def number(low: float, high: float, *, above: bool = False) -> Parse:
    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(f"must be a number, got {_shown(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {_shown(value)}")
        number = float(value)
        inside = (number > low if above else number >= low) and number <= high
        if not math.isfinite(number) or not inside:
            raise ValueError(f"must be {_bounds(low, high, above=above)}, got {value}")
        return number

    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"must be true or false (or 1/0, yes/no, on/off), got {_shown(value)}")


def text(*checks: Callable[[str], None], low: int = 0, high: int | None = None) -> Parse:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {type(value).__name__}")
        if len(value) < low or (high is not None and len(value) > high):
            raise ValueError(f"must be {_bounds(low, high)} characters long, got {len(value)}")
        for check in checks:
            check(value)
        return value

    return parse


def choice(choices: Iterable[str], *, fold: bool) -> Parse:
    """One of ``choices``; with ``fold``, in any case and with spaces at the ends."""
    allowed = tuple(choices)

    def parse(value: Any) -> str:
        word = value.strip().lower() if fold and isinstance(value, str) else value
        if word not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(word)

    return parse


def secret(*checks: Callable[[str], None], optional: bool = False) -> Parse:
    def parse(value: Any) -> Secret | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            value = Secret(value)
        if not isinstance(value, Secret):
            raise ValueError(f"must be text, got {type(value).__name__}")
        for check in checks:
            check(value.get_secret_value())
        return value

    return parse


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
