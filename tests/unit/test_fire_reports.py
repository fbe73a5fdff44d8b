"""What the scheduler logs about its fires (``services.fire_reports``): one INFO line per turn
of the loop, naming the tick when the turn fired one, summing up when it fired several (each
fire then at DEBUG). Pure: outcomes are built by hand."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from corral.core.schedules import ScheduledJob, new_schedule
from corral.services.fire_reports import FireReports

TICK = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
LOGGER = "corral.services.scheduling"


@dataclass(frozen=True, slots=True)
class Fired:
    fired: datetime | None
    settled_ms: int | None
    skipped: int = 0
    lost_race: bool = False
    first_skipped: datetime | None = None
    last_skipped: datetime | None = None


def _schedule(name: str) -> ScheduledJob:
    fields = {"name": name, "handler_name": "noop", "cron_expression": "* * * * * *", "domain": "t"}
    return new_schedule(uuid4(), fields, TICK - timedelta(days=1))


def _fired(late_ms: int) -> Fired:
    return Fired(fired=TICK, settled_ms=int(TICK.timestamp() * 1000) + late_ms)


def _reports() -> FireReports:
    return FireReports(clock=lambda: TICK)


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def test_a_turn_that_fires_several_ticks_logs_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reports = _reports()
    schedules = [_schedule(f"report-{i}") for i in range(8)]
    for i, schedule in enumerate(schedules):
        reports.record(schedule, _fired(3 + i))
    assert not _records(caplog, logging.INFO)  # nothing at INFO until the turn ends
    reports.turn_done()

    (summary,) = _records(caplog, logging.INFO)
    assert summary.__dict__["event"] == "scheduler.fired_many"
    assert summary.__dict__["count"] == 8
    assert summary.__dict__["lateness_ms_max"] == 10
    message = summary.getMessage()
    assert "8 ticks" in message
    assert "report-0" in message
    assert "report-7" not in message
    singles = _records(caplog, logging.DEBUG)
    assert [r.__dict__["event"] for r in singles] == ["scheduler.fired"] * 8
    assert {r.__dict__["schedule_id"] for r in singles} == {str(s.id) for s in schedules}
    assert reports.stats.fired == 8

    caplog.clear()
    reports.turn_done()  # a turn that fired nothing logs nothing
    assert not caplog.records


def test_a_turn_that_fires_one_tick_names_it_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reports = _reports()
    schedule = _schedule("nightly")
    reports.record(schedule, _fired(12))
    reports.turn_done()

    (line,) = [r for r in caplog.records if r.name == LOGGER]
    assert line.levelno == logging.INFO
    assert line.__dict__["event"] == "scheduler.fired"
    assert line.__dict__["schedule_id"] == str(schedule.id)
    assert "nightly" in line.getMessage()
    assert TICK.isoformat() in line.getMessage()


def test_at_info_a_busy_turn_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reports = _reports()
    for i in range(167):
        reports.record(_schedule(f"s{i}"), _fired(2))
    reports.turn_done()
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1
