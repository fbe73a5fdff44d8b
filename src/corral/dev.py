"""``corral dev``: everything in one process on embedded defaults, for trying Corral out.

It runs a private Redis (unless REDIS_URL is set), migrates the SQLite database, starts a
scheduler (creating the example schedules once) and a worker with the example handlers, adds
the seed's example jobs, and prints what ran. The API and dashboard join it when they land.
"""

from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path

from pydantic import SecretStr

from corral.adapters.embedded import EmbeddedRedis
from corral.core.jobs import JobPriority
from corral.core.queries import ScheduleQuery
from corral.errors import ConfigurationError
from corral.http.app import create_app
from corral.http.serve import EmbeddedServer
from corral.manager import JobQueueManager
from corral.scheduler import TaskScheduler
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


EXAMPLE_SCHEDULES: list[dict[str, object]] = [
    {
        "name": "Demo: every minute",
        "description": "Runs the seed's data-processing job at second 0 of every minute.",
        "handler_name": "dataProcessingJob",
        "cron_expression": "0 */1 * * * *",
        "timezone": "Asia/Shanghai",
        "payload": {"dataSource": "demo"},
        "domain": "examples",
    },
    {
        "name": "Daily backup",
        "description": "The seed's backup example: 02:00 Shanghai time.",
        "handler_name": "dataProcessingJob",
        "cron_expression": "0 0 2 * * *",
        "timezone": "Asia/Shanghai",
        "payload": {"backupType": "full"},
        "retry_attempts": 3,
        "timeout": 300_000,
        "domain": "examples",
    },
]


async def ensure_example_schedules(scheduler: TaskScheduler) -> int:
    """Create the example schedules unless schedules with their names exist; returns how many
    were created."""
    existing, _ = await scheduler.list(ScheduleQuery(domain="examples", limit=500))
    names = {job.name for job in existing}
    created = 0
    for fields in EXAMPLE_SCHEDULES:
        if fields["name"] not in names:
            await scheduler.create(**fields)
            created += 1
    return created


async def _serve(settings: CorralSettings, stop: StopSignal) -> None:
    handlers = settings.handler_packages or [EXAMPLE_HANDLERS]
    await _run_scheduler_beside(settings, handlers, stop)


async def _run_scheduler_beside(
    settings: CorralSettings, handlers: list[str], stop: StopSignal
) -> None:
    scheduler = TaskScheduler(settings, handlers=handlers)
    try:
        await scheduler.initialize(migrate=True)
        if handlers == [EXAMPLE_HANDLERS]:
            created = await ensure_example_schedules(scheduler)
            if created:
                _say(f"corral dev: created {created} example schedules")
        _say(f"corral dev: scheduler running; database {settings.database_url_redacted}")
        await _run_worker(settings, handlers, stop)
    finally:
        await scheduler.close()


async def _run_worker(settings: CorralSettings, handlers: list[str], stop: StopSignal) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if not token:
        token = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"admin_token": SecretStr(token)})
    server = EmbeddedServer(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning"
    )
    try:
        await server.start()
    except OSError as exc:
        raise ConfigurationError(
            f"CORRAL_API_PORT: cannot listen on {settings.api_host}:{settings.api_port} "
            f"({exc}); set CORRAL_API_PORT to a free port"
        ) from None
    url = f"http://{settings.api_host}:{settings.api_port}/"
    _say(f"corral dev: API and dashboard at {url}  admin token: {token}")
    try:
        await _work(settings, handlers, stop)
    finally:
        await server.stop()


async def _work(settings: CorralSettings, handlers: list[str], stop: StopSignal) -> None:
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
