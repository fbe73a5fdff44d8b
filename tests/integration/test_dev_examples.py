"""The example schedules of `corral dev`: created once, paused when the examples are off (their
handlers would otherwise fail as "not registered"), never created twice."""

from __future__ import annotations

from corral.core.queries import ScheduleQuery
from corral.core.schedules import ScheduleStatus
from corral.dev import EXAMPLE_HANDLERS, ensure_example_schedules, pause_example_schedules
from corral.scheduler import TaskScheduler
from corral.settings import CorralSettings


async def test_examples_created_once_then_paused_when_off(settings: CorralSettings) -> None:
    scheduler = TaskScheduler(settings, handlers=[EXAMPLE_HANDLERS])
    try:
        await scheduler._rt.migrate()
        assert await ensure_example_schedules(scheduler) == 2
        assert await ensure_example_schedules(scheduler) == 0
        assert await pause_example_schedules(scheduler) == 2
        assert await pause_example_schedules(scheduler) == 0
        examples, total = await scheduler.list(ScheduleQuery(domain="examples"))
        assert total == 2
        assert {job.status for job in examples} == {ScheduleStatus.PAUSED}
    finally:
        await scheduler.close()
