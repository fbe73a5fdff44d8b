"""When a repeating warning is worth a log line (an outage must not flood the log).

Pure: the caller passes the clock and writes the line itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LogThrottle:
    """The first occurrence is logged, then at most one line per ``interval_s``, each saying
    how many were held back since the previous line."""

    interval_s: float = 10.0
    _last: float | None = None
    _held: int = 0

    def allow(self, now: float) -> int | None:
        """None: stay quiet. Otherwise log now; the value is how many were held back."""
        if self._last is not None and now - self._last < self.interval_s:
            self._held += 1
            return None
        held, self._last, self._held = self._held, now, 0
        return held

    def clear(self) -> bool:
        """The trouble is over: start afresh. True if anything was logged since the last clear
        (so the caller can say it recovered)."""
        was_active = self._last is not None
        self._last, self._held = None, 0
        return was_active


def held_note(held: int) -> str:
    """`` (3 more like this not logged)`` or an empty string."""
    return f" ({held} more like this not logged)" if held else ""
