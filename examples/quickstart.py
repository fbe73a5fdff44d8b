"""Add jobs, run a worker in this process, print the results.

Run from the repository root with a Redis at REDIS_URL (default redis://localhost:6379):

    .venv/bin/python examples/quickstart.py
"""

import asyncio

from _wait import wait_finished

from corral import JobPriority, JobQueueManager


async def main() -> None:
    async with JobQueueManager() as qm:  # REDIS_URL, CORRAL_QUEUE, ... from the environment
        first = await qm.add_job(
            "dataProcessingJob",
            {"dataSource": "orders.csv"},
            priority=JobPriority.HIGH,
            category="reports",
            timeout=10_000,  # ms, per attempt
        )
        batch = await qm.add_bulk_jobs(
            [
                {"name": "resize_image", "data": {"width": w}, "options": {"priority": "LOW"}}
                for w in (640, 1280, 1920)
            ]
        )
        # A worker inside this process; `corral worker --handlers app_handlers` does the same.
        await qm.start_worker(["app_handlers"], concurrency=4, execution_log=False)
        for info in await wait_finished(qm, [first, *batch]):
            print(info.id, info.name, info.state, info.result)  # noqa: T201
        print(await qm.get_queue_status())  # noqa: T201
        print(await qm.health_check())  # noqa: T201
    # Leaving the block drains the worker and closes every connection.


if __name__ == "__main__":
    asyncio.run(main())
