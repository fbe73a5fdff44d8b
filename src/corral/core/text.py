"""The rule for names people read: in the dashboard, in logs, in CLI output.

A name may be in any script, but not hold characters that are invisible or that reorder the text
around them: ``invoice\u202efdp.exe`` displays as ``invoiceexe.pdf``, and a zero-width space
makes two names that look the same differ. Those are Unicode format characters (category Cf:
the bidi overrides and isolates U+202A-202E and U+2066-2069, the marks U+200E/U+200F, the
zero-width U+200B-U+200D, the BOM U+FEFF, ...). Control characters and line or paragraph
separators would split a log line.
"""

from __future__ import annotations

import unicodedata
from typing import Final

_LINE_BREAKING: Final = frozenset({"Cc", "Zl", "Zp"})


def name_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a displayed name, or None."""
    if text.isascii():
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            return "must not contain control characters or newlines"
        return None
    for char in text:
        category = unicodedata.category(char)
        if category in _LINE_BREAKING:
            return "must not contain control characters or newlines"
        if category == "Cf":
            return (
                "must not contain invisible or bidirectional control characters "
                f"(U+{ord(char):04X})"
            )
    return None
