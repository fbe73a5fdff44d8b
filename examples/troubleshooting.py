"""The errors behind docs/troubleshooting.md, produced for real. Needs no worker.

.venv/bin/python examples/troubleshooting.py
"""

import asyncio

from corral import BrokerUnavailable, JobQueueManager, ValidationError, load_settings
from corral.scheduler import TaskScheduler


async def main() -> None:
    # --8<-- [start:redis]
    unreachable = load_settings(redis_url="redis://127.0.0.1:1")  # nothing listens on port 1
    async with JobQueueManager(unreachable) as qm:
        print(await qm.health_check())  # noqa: T201
        try:
            await qm.add_job("dataProcessingJob", {})
        except BrokerUnavailable as exc:
            print(f"{type(exc).__name__}: {exc}")  # noqa: T201
    # --8<-- [end:redis]

    # --8<-- [start:validation]
    scheduler = TaskScheduler(handlers=["app_handlers"])
    attempts = [
        {"handler_name": "sendInvoice", "cron_expression": "0 2 * * *"},
        {"handler_name": "dataProcessingJob", "cron_expression": "60 * * * * *"},
        {"handler_name": "dataProcessingJob", "cron_expression": "0 0 0 30 2 *"},
        {"handler_name": "dataProcessingJob", "cron_expression": "@daily"},
        {"handler_name": "dataProcessingJob", "cron_expression": "0 2 * * *", "timezone": "EST5"},
    ]
    for fields in attempts:
        try:
            await scheduler.create(name="Nightly", domain="ops", **fields)
        except ValidationError as exc:
            print(f"{type(exc).__name__}: {exc}")  # noqa: T201
    await scheduler.close()
    # --8<-- [end:validation]

    async with JobQueueManager() as qm:
        for name, data, options in [
            ("send invoice", {}, {}),
            ("dataProcessingJob", {"when": {1, 2}}, {}),
            ("dataProcessingJob", {}, {"priority": 0}),
            ("dataProcessingJob", {}, {"retries": 3}),
        ]:
            try:
                await qm.add_job(name, data, **options)
            except ValidationError as exc:
                print(f"{type(exc).__name__}: {exc}")  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
