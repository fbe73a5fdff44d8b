"""A change made through the API reaches a running scheduler within the 2 s bound."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from corral import JobQueueManager
from corral.http.app import create_app
from corral.scheduler import TaskScheduler
from corral.settings import Secret
from tests.support.waiting import eventually

TOKEN = "propagation-token"  # noqa: S105 - a test value


async def _fired(qm: JobQueueManager) -> list[str]:
    queue = await qm._rt.queue()
    jobs = await queue._queue.getJobs(["waiting", "prioritized", "completed", "active"], 0, -1)
    return sorted(str(j.id) for j in jobs)


async def test_api_changes_reach_a_running_scheduler(qm: JobQueueManager) -> None:
    app = create_app(qm.settings.replace(**{"admin_token": Secret(TOKEN)}))
    app.state.scheduler._handlers = ["tests.support.it_handlers"]
    scheduler = TaskScheduler(qm.settings)
    await scheduler.initialize()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client:
            sent = time.monotonic()
            created = await client.post(
                "/api/admin/scheduled-jobs",
                json={
                    "name": "via api",
                    "handlerName": "noop",
                    "cronExpression": "* * * * * *",
                    "timezone": "UTC",
                    "domain": "t",
                },
            )
            assert created.status_code == 201
            await eventually(lambda: _fired(qm), until=lambda ids: len(ids) >= 1, timeout_s=5)
            latency = time.monotonic() - sent
            print(f"API create -> first fire: {latency:.2f} s")
            assert latency < 3.0  # 2 s propagation bound + up to 1 s to the next tick

            job_id = created.json()["id"]
            answer = await client.patch(f"/api/admin/scheduled-jobs/{job_id}", json={"status": 0})
            assert answer.status_code == 200
            disabled_at = datetime.now(UTC).timestamp()
            await asyncio.sleep(3)
            late = [i for i in await _fired(qm) if int(i.rsplit("-", 1)[1]) > disabled_at + 2]
            assert late == []
    finally:
        await scheduler.close()
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()
