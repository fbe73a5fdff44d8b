"""The input rules several models share: strict integers and handler names. Pure.

One place for each, so a job option, a schedule field and an API argument refuse the same value
with the same words. ``error`` lets the job model raise its own :class:`InvalidJobOptions`.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

from corral.errors import ValidationError

# A job's name is the name of its handler: letters, digits, '_' and '-', at most 64. No dots,
# slashes or colons, so no name can be mistaken for an import path.
NAME_RULE: Final = "must be 1-64 letters, digits, '_' or '-', not starting with a digit or '-'"
NAME_RE: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-]{0,63}\Z")  # \Z: "$" allows a final "\n"


def is_strict_int(value: object, low: int | None = None, high: int | None = None) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool`` (True as a priority is a caller's bug, not 1), within
    ``[low, high]`` where given."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def strict_int(
    value: object,
    path: str,
    low: int,
    high: int | None = None,
    *,
    error: type[ValidationError] = ValidationError,
) -> int:
    """``value`` as a plain int in ``[low, high]`` (no upper bound without ``high``), or
    ``error(path, problem)``."""
    if not is_strict_int(value):
        raise error(path, f"must be an integer, got {type(value).__name__}")
    if not is_strict_int(value, low, high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise error(path, f"must be {bounds}, got {value}")
    return int(value)


def check_text(
    text: str, path: str, nul: str, *, error: type[ValidationError] = ValidationError
) -> None:
    """Text a database can store: no NUL (PostgreSQL refuses it; ``nul`` says so in the
    caller's words) and no lone surrogate (it cannot be encoded)."""
    if "\x00" in text:
        raise error(path, nul)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(path, "contains a lone surrogate (not valid Unicode)") from None


def check_name(value: object, path: str, *, error: type[ValidationError] = ValidationError) -> str:
    """A handler's name (see :data:`NAME_RE`): it selects code to run, so nothing else passes."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise error(path, NAME_RULE)
    return value
