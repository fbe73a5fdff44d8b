"""A finished job whose result cannot be recorded because Redis is briefly away.

Before, the worker dropped the completion: the job stayed active in Redis, its SQL row stayed
``active``, and stalled-job recovery ran it a second time a lock duration later. Now the worker
records it again when Redis is back, within the job's lock: one run, one completion. The
ledger the handler writes is the evidence.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from corral import JobQueueManager
from corral.core.queries import ExecutionQuery
from corral.settings import load_settings
from tests.support.processes import RedisServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault


@pytest.mark.timeout(120)
async def test_a_completion_during_a_redis_blip_is_recorded_once(
    tmp_path: Path, queue_name: str, database_url: str
) -> None:
    server = RedisServer(tmp_path, appendfsync="always")
    server.start()
    settings = load_settings(
        queue=queue_name,
        prefix="corraltest",
        redis_url=server.url,
        database_url=database_url,
        handlers="tests.support.it_handlers",
        lock_duration_ms=10_000,
        stalled_interval_ms=500,
    )
    qm = JobQueueManager(settings)
    ledger = tmp_path / "ledger.jsonl"

    def rows() -> list[dict[str, str]]:
        text = ledger.read_text() if ledger.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    async def events() -> list[str]:
        return [r["event"] for r in rows()]

    try:
        await qm._rt.migrate()
        job_id = await qm.add_job("record_to_file", {"sleep": 2.0, "path": str(ledger)})
        await qm.start_worker(execution_log=True)
        await eventually(events, until=lambda e: e == ["start"], timeout_s=15)
        # The handler sleeps 2 s: take Redis away across its end, back 2 s later.
        await asyncio.sleep(0.5)
        server.shutdown()
        await asyncio.sleep(3.0)
        server.start()

        async def state() -> str:
            return str((await qm.get_job(job_id)).state)

        assert await eventually(state, until=lambda s: s == "completed", timeout_s=20)
        # A stalled re-run would start within lock duration + stalled interval: wait past it.
        await asyncio.sleep(3.0)
        assert await events() == ["start", "finish"], rows()

        async def logged() -> list[str]:
            found, _ = await qm._rt.execution_log().search(ExecutionQuery(limit=10))
            return [r.status for r in found]

        assert await eventually(logged, until=lambda s: s == ["completed"], timeout_s=15)
    finally:
        await qm.graceful_shutdown(1000)
        server.kill()
