"""``corral dev``: everything in one process on embedded defaults, for trying Corral out.

Today it runs a private Redis (unless REDIS_URL is set), a worker with the example handlers,
and adds the seed's example jobs once; it prints what ran. The scheduler, SQL store, API and
dashboard join it as they land (see the README's status).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from corral.adapters.embedded import EmbeddedRedis
from corral.core.jobs import JobPriority
from corral.manager import JobQueueManager
from corral.settings import CorralSettings
from corral.worker import StopSignal

logger = logging.getLogger(__name__)


def _say(message: str) -> None:
    """Console output of the dev command (not a log line)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


EXAMPLE_HANDLERS = "corral.examples.handlers"


async def add_seed_examples(qm: JobQueueManager) -> list[str]:
    """The seed's quick-start jobs: one normal, one urgent with a timeout, ten low in bulk."""
    ids = [
        await qm.add_job(
            "example-task",
            {"message": "Hello World"},
            priority=JobPriority.NORMAL,
            category="example",
        ),
        await qm.add_job(
            "dataProcessingJob", {"dataSource": "orders"}, priority=JobPriority.HIGH, timeout=10_000
        ),
    ]
    ids += await qm.add_bulk_jobs(
        [
            {"name": "batch-task", "data": {"index": i}, "options": {"priority": JobPriority.LOW}}
            for i in range(10)
        ]
    )
    return ids


async def run_dev(settings: CorralSettings, *, redis_from_env: bool, folder: Path) -> None:
    stop = StopSignal()
    stop.install()
    if redis_from_env:
        await _serve(settings, stop)
        return
    async with EmbeddedRedis(folder / "redis") as redis:
        _say(f"corral dev: private Redis on 127.0.0.1:{redis.port} (password-protected)")
        dev_settings = settings.model_copy(
            update={"redis_url": type(settings.redis_url)(redis.url)}
        )
        await _serve(dev_settings, stop)


async def _serve(settings: CorralSettings, stop: StopSignal) -> None:
    handlers = settings.handler_packages or [EXAMPLE_HANDLERS]
    qm = JobQueueManager(settings)
    qm.on("completed", lambda e: _say(f"  completed {e.job_id}: {e.data.get('result')}"))
    qm.on("failed", lambda e: _say(f"  failed    {e.job_id}: {e.data.get('error')}"))
    try:
        await qm.start_events()
        await qm.start_worker(handlers)
        ids = await add_seed_examples(qm)
        _say(
            f"corral dev: worker running on queue {qm.queue_name!r}; added {len(ids)} example "
            "jobs. Ctrl-C to stop."
        )
        await stop.stop.wait()
    finally:
        drained = await qm.graceful_shutdown(settings.shutdown_timeout_ms)
        _say("corral dev: stopped" + ("" if drained else " (active jobs requeued)"))
