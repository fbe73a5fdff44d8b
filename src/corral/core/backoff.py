"""How long a supervised loop waits after failures in a row: one policy for every loop.

Pure: the loop counts its failures and does the waiting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``initial_s`` after the first failure, ``factor`` times longer after each further one,
    never more than ``max_s`` (a factor of 1 retries at a steady pace)."""

    initial_s: float
    max_s: float
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row (1 or more)."""
        steps = max(failures - 1, 0)
        if self.factor > 1 and self.max_s > self.initial_s > 0:
            # past this many steps the cap applies (and factor ** steps could overflow)
            steps = min(steps, math.ceil(math.log(self.max_s / self.initial_s, self.factor)))
        return min(self.max_s, self.initial_s * self.factor**steps)
