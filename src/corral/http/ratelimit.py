"""Failed-authentication limit: after ``max_failures`` failures from one client address within
``window_s`` seconds, that address is locked out until the window ends.

The table lives in memory, **per API process** (like dashboard sessions): behind several
replicas an attacker gets ``max_failures`` tries per replica and window, and a restart forgets
everything. It holds at most ``max_clients`` addresses; beyond that the oldest windows are
dropped first, so memory stays bounded whatever the number of addresses that try.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Final

#: At most this many client addresses are tracked per process.
MAX_CLIENTS: Final = 10_000
#: IPv6 clients are keyed by their /64: one host usually holds a whole /64 and could otherwise
#: rotate through its addresses to dodge the limit (or flush the table).
IPV6_PREFIX: Final = 64


def client_key(host: str | None) -> str:
    """The address the limit counts for ``host`` (an IPv6 address counts for its /64)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass
class _Window:
    start: float
    failures: int = 0


class FailureLimiter:
    """Counts failures per client in fixed windows that start at the client's first failure.

    Times are ``time.monotonic()`` values passed in, so the logic is testable without sleeping.
    """

    def __init__(self, max_failures: int, window_s: float, max_clients: int = MAX_CLIENTS) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        # Insertion order == window start order (an expired window is re-inserted at the end),
        # so the windows to drop first are always at the front.
        self._windows: dict[str, _Window] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def retry_after(self, client: str, now: float) -> int | None:
        """Whole seconds until ``client`` may try again, or None if it is not locked out."""
        window = self._windows.get(client)
        if window is None or window.failures < self.max_failures:
            return None
        left = window.start + self.window_s - now
        return max(1, math.ceil(left)) if left > 0 else None

    def fail(self, client: str, now: float) -> bool:
        """Count one failure; True if this failure locks ``client`` out."""
        window = self._windows.get(client)
        if window is None or now >= window.start + self.window_s:
            self._windows.pop(client, None)
            self._make_room(now)
            window = self._windows[client] = _Window(now)
        window.failures += 1
        return window.failures == self.max_failures

    def _make_room(self, now: float) -> None:
        while self._windows:
            client, oldest = next(iter(self._windows.items()))
            expired = now >= oldest.start + self.window_s
            if not expired and len(self._windows) < self.max_clients:
                return
            del self._windows[client]
