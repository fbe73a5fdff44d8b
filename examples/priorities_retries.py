"""Priorities decide the order; attempts and backoff decide what happens on failure.

.venv/bin/python examples/priorities_retries.py
"""

import asyncio

from _wait import wait_finished

from corral import Backoff, JobPriority, JobQueueManager


async def main() -> None:
    async with JobQueueManager() as qm:
        # --8<-- [start:priorities]
        # Added before any worker runs, lowest priority first...
        ids = [
            await qm.add_job("record-order", {"order": p.name}, priority=p)
            for p in (JobPriority.LOW, JobPriority.NORMAL, JobPriority.HIGH, JobPriority.CRITICAL)
        ]
        ids.append(await qm.add_job("record-order", {"order": "15"}, priority=15))
        # --8<-- [end:priorities]

        # --8<-- [start:retries]
        flaky = await qm.add_job(
            "flaky-task",
            {},
            attempts=3,  # 1 try + up to 2 retries
            backoff=Backoff(type="fixed", delay_ms=200),  # or {"type": "fixed", "delay": 200}
        )
        bad_input = await qm.add_job("charge-card", {"amount": 0}, attempts=5)
        no_handler = await qm.add_job("send-invoice", {})  # no handler has this name
        # --8<-- [end:retries]

        # ...then one worker taking one job at a time runs them by priority.
        await qm.start_worker(["app_handlers"], concurrency=1, execution_log=False)

        orders = await wait_finished(qm, ids)
        orders.sort(key=lambda info: info.result["seq"])
        print("run order:", [info.result["order"] for info in orders])  # noqa: T201

        for info in await wait_finished(qm, [flaky, bad_input, no_handler]):
            print(  # noqa: T201
                f"{info.name}: {info.state} after {info.attempts_made} attempt(s);",
                f"result={info.result} reason={info.failed_reason!r}",
            )


if __name__ == "__main__":
    asyncio.run(main())
