"""LOG_FORMAT=json on a real ``corral worker``: every line it writes is a JSON object, and the
job and worker ids its events carry are in them."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from corral import JobQueueManager
from tests.support.processes import corral_env, corral_process
from tests.support.waiting import eventually


async def _workers(qm: JobQueueManager) -> int:
    return len((await qm.get_queue_status())["workers"])


async def _failed(qm: JobQueueManager) -> int:
    return int((await qm.get_queue_status())["counts"].get("failed", 0))


async def test_worker_writes_one_json_object_per_line(
    qm: JobQueueManager, redis_url: str, queue_name: str, database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    env = corral_env(redis_url, queue_name, database_url, LOG_FORMAT="json")
    with corral_process("worker", env, log=log) as proc:
        await eventually(lambda: _workers(qm), until=lambda n: n == 1, timeout_s=20)
        job_id = await qm.add_job("fail", {}, attempts=1)
        await eventually(lambda: _failed(qm), until=lambda n: n == 1, timeout_s=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    lines = log.read_text().splitlines()
    assert lines
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    events = {entry.get("event"): entry for entry in entries}
    assert events["worker.started"]["worker_id"]
    assert events["worker.stopped"]["worker_id"] == events["worker.started"]["worker_id"]
    failed = events["job.failed"]
    assert failed["job_id"] == job_id
    assert "RuntimeError: boom on attempt 1" in failed["exc_info"]
