"""``corral dev``: everything in one process on embedded defaults, for trying Corral out and
for developing your handlers.

One process runs a scheduler, a worker, and the API and dashboard (on ``--host``/``--port``,
default CORRAL_API_HOST/CORRAL_API_PORT; a generated admin token unless CORRAL_ADMIN_TOKEN is
set). State lives in the state folder (``--folder``, default ``.corral/``): a private Redis
with its data and password (unless REDIS_URL is set) and an SQLite database (unless
DATABASE_URL is set), so a restart keeps jobs, job ids and the scheduler's watermarks (no tick
fires twice). With the private Redis it prints the REDIS_URL (and the DATABASE_URL) that your
scripts and a second ``corral worker`` join with.

The worker runs the handlers of ``--handlers`` (default CORRAL_HANDLERS; without either, the
examples). The example schedules and the seed's example jobs are added only when their
handlers are registered and ``--no-examples`` is not given; example schedules an earlier run
created are paused when the examples are off.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corral.adapters.embedded import EmbeddedRedis
from corral.core.handlers import HandlerRegistry
from corral.core.jobs import JobPriority
from corral.core.queries import ScheduleQuery
from corral.core.schedules import ScheduleStatus
from corral.errors import ConfigurationError
from corral.http.app import create_app
from corral.http.serve import EmbeddedServer
from corral.manager import JobQueueManager
from corral.scheduler import TaskScheduler
from corral.services.discovery import discover
from corral.settings import CorralSettings, Secret
from corral.worker import StopSignal


def _say(message: str) -> None:
    """Console output of the dev command (not a log line)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


EXAMPLE_HANDLERS = "corral.examples.handlers"
#: The handlers the seed's jobs and the example schedules need.
EXAMPLE_HANDLER_NAMES = frozenset({"example-task", "dataProcessingJob", "batch-task"})


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


async def pause_example_schedules(scheduler: TaskScheduler) -> int:
    """Pause the enabled example schedules an earlier run created (they would fail with
    "handler not registered" once your handlers replace the examples); returns how many."""
    existing, _ = await scheduler.list(ScheduleQuery(domain="examples", limit=500))
    names = {fields["name"] for fields in EXAMPLE_SCHEDULES}
    paused = 0
    for job in existing:
        if job.name in names and job.status == ScheduleStatus.ENABLED:
            await scheduler.set_status(job.id, ScheduleStatus.PAUSED)
            paused += 1
    return paused


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


@dataclass(frozen=True, slots=True)
class DevOptions:
    """What ``corral dev`` was asked for (the CLI's flags, resolved against the settings)."""

    folder: Path
    handlers: list[str] = field(default_factory=list)  # empty: the examples
    examples: bool = True
    redis_from_env: bool = False
    database_from_env: bool = False


def _database_in(folder: Path) -> str:
    """The dev SQLite database, in the state folder (created owner-only)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if Path("corral.db").is_file() and not (folder / "corral.db").exists():
        _say(
            f"corral dev: the database is now {folder / 'corral.db'}; ./corral.db of an "
            "earlier version is not used (move it there to keep its schedules)"
        )
    return f"sqlite+aiosqlite:///{folder / 'corral.db'}"


async def run_dev(settings: CorralSettings, options: DevOptions) -> None:
    folder = options.folder.resolve()
    if not options.database_from_env:
        database = Secret(_database_in(folder))
        settings = settings.replace(**{"database_url": database})
    stop = StopSignal()
    stop.install()
    registry = discover(options.handlers or [EXAMPLE_HANDLERS])
    examples = options.examples and EXAMPLE_HANDLER_NAMES <= set(registry)
    if options.examples and not examples:
        _say(
            "corral dev: no example jobs or schedules: their handlers are not registered "
            f"(add {EXAMPLE_HANDLERS} to --handlers to have them)"
        )
    # Everything started here stops in reverse order: worker, API, scheduler, private Redis.
    async with contextlib.AsyncExitStack() as stack:
        if not options.redis_from_env:
            redis = EmbeddedRedis(folder / "redis", state=folder / "redis.json")
            await stack.enter_async_context(redis)
            _say(f"corral dev: private Redis on 127.0.0.1:{redis.port}, data in {folder / 'redis'}")
            settings = settings.replace(**{"redis_url": Secret(redis.url)})
            _say_how_to_join(settings, options)
        scheduler = await stack.enter_async_context(TaskScheduler(settings, handlers=registry))
        await _start_scheduler(scheduler, examples)
        stack.push_async_callback((await _start_api(settings)).stop)
        await _work(settings, registry, examples, stop)


def _say_how_to_join(settings: CorralSettings, options: DevOptions) -> None:
    """The URLs another shell needs to add jobs or run a second worker. The password is shown:
    this Redis listens on loopback only and holds development data."""
    _say("corral dev: your scripts and other workers join with")
    _say(f"  REDIS_URL={settings.redis_url.get_secret_value()}")
    if not options.database_from_env:
        _say(f"  DATABASE_URL={settings.database_url.get_secret_value()}")


async def _start_scheduler(scheduler: TaskScheduler, examples: bool) -> None:
    await scheduler.initialize(migrate=True)
    if examples:
        created = await ensure_example_schedules(scheduler)
        if created:
            _say(f"corral dev: created {created} example schedules")
    else:
        paused = await pause_example_schedules(scheduler)
        if paused:
            _say(f"corral dev: paused {paused} example schedules (examples are off)")
    _say(f"corral dev: scheduler running; database {scheduler.settings.database_url_redacted}")


async def _start_api(settings: CorralSettings) -> EmbeddedServer:
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if not token:
        token = secrets.token_urlsafe(24)
        settings = settings.replace(**{"admin_token": Secret(token)})
    server = EmbeddedServer(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning"
    )
    try:
        await server.start()
    except OSError as exc:
        raise ConfigurationError(
            f"CORRAL_API_PORT: cannot listen on {settings.api_host}:{settings.api_port} "
            f"({exc}); set CORRAL_API_PORT or --port to a free port"
        ) from None
    url = f"http://{settings.api_host}:{settings.api_port}/"
    _say(f"corral dev: API and dashboard at {url}  admin token: {token}")
    return server


async def _work(
    settings: CorralSettings, registry: HandlerRegistry, examples: bool, stop: StopSignal
) -> None:
    qm = JobQueueManager(settings)
    qm.on("completed", lambda e: _say(f"  completed {e.job_id}: {e.data.get('result')}"))
    qm.on("failed", lambda e: _say(f"  failed    {e.job_id}: {e.data.get('error')}"))
    try:
        await qm.start_events()
        await qm.start_worker(registry)
        added = f"; added {len(await add_seed_examples(qm))} example jobs" if examples else ""
        _say(
            f"corral dev: worker running on queue {qm.queue_name!r} with handlers "
            f"{', '.join(sorted(registry))}{added}. Ctrl-C to stop."
        )
        await stop.stop.wait()
    finally:
        drained = await qm.graceful_shutdown(settings.shutdown_timeout_ms)
        _say("corral dev: stopped" + ("" if drained else " (active jobs requeued)"))
