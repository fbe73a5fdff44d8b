"""Cron schedules in SQL: create, preview, watch one fire, pause, trigger, read the log.

.venv/bin/python examples/schedules.py
"""

import asyncio
from datetime import UTC, datetime

from _wait import wait_finished

from corral import JobQueueManager
from corral.core.queries import ExecutionQuery
from corral.scheduler import TaskScheduler


async def main() -> None:
    # --8<-- [start:preview]
    scheduler = TaskScheduler(handlers=["app_handlers"])  # handler names are checked on create
    # New York springs forward on 2026-03-08: 02:30 does not exist that day.
    after = datetime(2026, 3, 7, 12, tzinfo=UTC)
    for moment in scheduler.preview("0 30 2 * * *", "America/New_York", n=3, after=after):
        print(moment.isoformat())  # noqa: T201
    # 2026-03-08T07:00:00+00:00  (02:30 is in the gap: fires at its end, 03:00 EDT)
    # 2026-03-09T06:30:00+00:00  (02:30 EDT)
    # 2026-03-10T06:30:00+00:00  (02:30 EDT)
    # --8<-- [end:preview]

    async with JobQueueManager() as qm, scheduler:
        await qm.start_worker(["app_handlers"], concurrency=2)  # writes the execution log
        # --8<-- [start:create]
        await scheduler.initialize(migrate=True)  # create the tables, load, start firing
        every_second = await scheduler.create(
            name="Heartbeat",
            handler_name="dataProcessingJob",
            cron_expression="* * * * * *",  # six fields, seconds first: every second
            timezone="UTC",
            payload={"dataSource": "heartbeat"},
            domain="examples",
        )
        nightly = await scheduler.create(
            name="Daily backup",
            description="Full backup at 02:00 Shanghai time",
            handler_name="dataProcessingJob",
            cron_expression="0 2 * * *",  # five fields: minute first, second = 0
            timezone="Asia/Shanghai",
            payload={"dataSource": "backup", "backupType": "full"},
            retry_attempts=3,  # 4 attempts in all
            retry_delay=60_000,  # ms between them, fixed
            timeout=300_000,  # ms per attempt
            priority=10,
            domain="ops",
        )
        # --8<-- [end:create]

        # Scheduled runs get the job id sched-<schedule id>-<epoch seconds>; the execution
        # log row carries the schedule's id in job_id.
        async with asyncio.timeout(10):
            records: list = []
            while not records:
                await asyncio.sleep(0.2)
                records, _ = await scheduler.executions(ExecutionQuery(job_id=every_second.id))
        fired = records[-1].execution_id
        print("fired:", fired.startswith(f"sched-{every_second.id}-"))  # noqa: T201
        [info] = await wait_finished(qm, [fired])
        print("scheduled run:", info.state, info.result)  # noqa: T201

        # --8<-- [start:manage]
        await scheduler.set_status(every_second.id, 2)  # 2 = paused, 0 = disabled, 1 = enabled
        await scheduler.update(nightly.id, cron_expression="0 30 2 * * *")
        manual_id = await scheduler.trigger_now(nightly.id)  # one run now, id manual-...
        # --8<-- [end:manage]
        [info] = await wait_finished(qm, [manual_id])
        print("manual run:", info.state, info.result)  # noqa: T201
        print("stats:", (await scheduler.stats())["process"]["fired"] >= 1)  # noqa: T201
        await scheduler.delete(every_second.id)
        await scheduler.delete(nightly.id)


if __name__ == "__main__":
    asyncio.run(main())
