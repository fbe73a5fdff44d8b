"""What a scheduler reports about the ticks it settles: its counters, the log lines for fires
and skips, the callbacks that write the execution log's rows, and its clock's skew.

Fires are logged once per turn of the loop (:meth:`FireReports.turn_done`): a turn that fired
one tick names it at INFO; a turn that fired several logs one INFO summary and each fire at
DEBUG. A replica owning thousands of schedules fires ~100 ticks a second, and formatting and
writing a line for each cost about as much CPU as deciding and committing them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from corral.core.executions import MissedTicks
from corral.core.schedules import ScheduledJob, fire_id
from corral.core.throttle import LogThrottle
from corral.services.firing import OnMissed, Outcome
from corral.services.monitoring import MAX_CLOCK_SKEW_S, skew_text

# The lines keep the scheduler loop's logger name, which operators may already filter on.
logger = logging.getLogger("corral.services.scheduling")

#: How many of a busy turn's schedules its summary line names.
NAMED_IN_SUMMARY = 5


def _iso(moment: datetime | None) -> str:
    return "?" if moment is None else moment.isoformat()


@dataclass(slots=True)
class SchedulerStats:
    fired: int = 0
    skipped: int = 0
    lost_races: int = 0
    #: Ticks fired for schedules another replica owns (it had not fired them in time).
    backup_fires: int = 0
    #: Other replicas' ticks this one checked (their owner's promise had failed or was not
    #: yet made from the same view), and how often the set of replicas it covers changed.
    backup_checks: int = 0
    coverage_changes: int = 0
    #: Batch transactions that lost a race and were settled again one schedule at a time.
    batch_conflicts: int = 0
    lateness_ms_max: float = 0.0
    lateness_ms_sum: float = 0.0
    reloads: int = 0


@dataclass(slots=True, kw_only=True)
class FireReports:
    """Counts and logs each settle's outcome and hands fires and skips to the callbacks."""

    on_fired: Callable[[str, int, str], None] | None = None
    on_missed: OnMissed | None = None
    clock: Callable[[], datetime]
    stats: SchedulerStats = field(default_factory=lambda: SchedulerStats())
    #: This process's clock minus Redis's TIME (s), as the last heartbeat measured it.
    clock_skew_s: float | None = None
    _skew_throttle: LogThrottle = field(default_factory=lambda: LogThrottle(interval_s=60.0))
    #: This turn's fires so far (schedule, tick, lateness in ms), logged by :meth:`turn_done`.
    _turn: list[tuple[ScheduledJob, datetime, float]] = field(default_factory=list)

    def note_skew(self, skew: float) -> None:
        """Warn once a minute while this clock is more than a second off Redis's: ticks fire
        when this clock reaches them, so that much early or late."""
        self.clock_skew_s = skew
        if abs(skew) <= MAX_CLOCK_SKEW_S:
            if self._skew_throttle.clear():
                logger.info(
                    "scheduler clock is within %g s of Redis TIME again (%+.3f s)",
                    MAX_CLOCK_SKEW_S,
                    skew,
                    extra={"event": "scheduler.clock_ok", "skew_s": skew},
                )
            return
        held = self._skew_throttle.allow(time.monotonic())
        if held is not None:
            logger.warning(
                "scheduler clock is %s (more than %g s): this replica fires ticks up to that "
                "much %s; check the host's time sync (NTP)",
                skew_text(skew),
                MAX_CLOCK_SKEW_S,
                "early" if skew > 0 else "late",
                extra={"event": "scheduler.clock_skew", "skew_s": skew},
            )

    def record(self, schedule: ScheduledJob, outcome: Outcome) -> None:
        if outcome.lost_race:
            self.stats.lost_races += 1
        first, last, settled_ms = outcome.first_skipped, outcome.last_skipped, outcome.settled_ms
        if outcome.skipped:
            self.stats.skipped += outcome.skipped
            logger.warning(
                "schedule %s (%s): %d missed ticks skipped (%s to %s)",
                schedule.id,
                schedule.name,
                outcome.skipped,
                _iso(first),
                _iso(last),
                extra={"event": "scheduler.missed", "schedule_id": str(schedule.id)},
            )
            if self.on_missed is not None and first is not None and last is not None:
                missed = MissedTicks(count=outcome.skipped, first=first, last=last)
                at = datetime.fromtimestamp(settled_ms / 1000, UTC) if settled_ms else self.clock()
                self.on_missed(schedule, missed, at)
        if outcome.fired is not None and settled_ms is not None:
            lateness = settled_ms - outcome.fired.timestamp() * 1000
            self.stats.fired += 1
            if self.on_fired is not None:
                fired_id = fire_id(schedule.id, outcome.fired)
                self.on_fired(fired_id, settled_ms, schedule.handler_name)
            self.stats.lateness_ms_sum += lateness
            self.stats.lateness_ms_max = max(self.stats.lateness_ms_max, lateness)
            self._turn.append((schedule, outcome.fired, lateness))

    def turn_done(self) -> None:
        """Log the fires recorded since the last call: the loop calls it after each turn."""
        fires, self._turn = self._turn, []
        if len(fires) == 1:
            _log_fire(logging.INFO, *fires[0])
            return
        if not fires:
            return
        named = ", ".join(schedule.name for schedule, _, _ in fires[:NAMED_IN_SUMMARY])
        more = len(fires) - NAMED_IN_SUMMARY
        late_max = max(lateness for _, _, lateness in fires)
        logger.info(
            "scheduler fired %d ticks (%s%s; up to %.0f ms late)",
            len(fires),
            named,
            f" and {more} more" if more > 0 else "",
            late_max,
            extra={
                "event": "scheduler.fired_many",
                "count": len(fires),
                "lateness_ms_max": late_max,
            },
        )
        if logger.isEnabledFor(logging.DEBUG):
            for fire in fires:
                _log_fire(logging.DEBUG, *fire)


def _log_fire(level: int, schedule: ScheduledJob, tick: datetime, lateness: float) -> None:
    logger.log(
        level,
        "schedule %s (%s) fired tick %s (%.0f ms late)",
        schedule.id,
        schedule.name,
        tick.isoformat(),
        lateness,
        extra={"event": "scheduler.fired", "schedule_id": str(schedule.id)},
    )
