"""TaskScheduler: cron jobs defined in SQL, fired exactly once per tick across replicas.

``await TaskScheduler().initialize()`` loads every enabled schedule and starts firing; the same
object manages schedules (create, update, set_status, delete, get, list, preview, trigger_now).
Changes made here, or directly in the database, reach every running scheduler within about
two seconds: a Redis pub/sub nudge, plus a one-second poll of the store's change marker by one
replica, which nudges the others when it sees a change and publishes the marker with its
heartbeat, which the others read with theirs (they read the store themselves once a minute).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from corral.core.cron import CronExpression, next_fires, parse_timezone
from corral.core.executions import ExecutionRecord
from corral.core.handlers import HandlerRegistry
from corral.core.jobs import DEFAULT_REMOVE_ON_COMPLETE, Retention
from corral.core.queries import ExecutionQuery, ScheduleQuery
from corral.core.schedules import (
    DEFAULT_TIMEZONE,
    ScheduledJob,
    ScheduleStatus,
    epoch_ms,
    new_schedule,
    validate_changes,
)
from corral.core.validation import is_strict_int
from corral.errors import InvalidCronExpression, ValidationError
from corral.runtime import Runtime, freeze_start_up_heap
from corral.services.firing import spec_for_schedule
from corral.services.reconcile import Reconciler
from corral.services.scheduling import Clock, SchedulerLoop, utc_now
from corral.settings import CorralSettings, load_settings
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

MAX_PREVIEW = 100


def _log_change(what: str, schedule_id: UUID, message: str, *args: object) -> None:
    """``message`` (its first ``%s`` is the schedule's id) as event ``schedule.<what>``."""
    extra = {"event": f"schedule.{what}", "schedule_id": str(schedule_id)}
    logger.info(message, schedule_id, *args, extra=extra)


class TaskScheduler:
    """Manage and fire scheduled jobs. Nothing connects until first use."""

    def __init__(
        self,
        settings: CorralSettings | None = None,
        *,
        queue: str | None = None,
        handlers: HandlerRegistry | Iterable[str] | None = None,
        clock: Clock = utc_now,
        keep_completed: Retention | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        if keep_completed is None and self.settings.scheduled_remove_on_complete:
            keep_completed = Retention(count=0)
        self.keep_completed = keep_completed or DEFAULT_REMOVE_ON_COMPLETE
        self._rt = Runtime(self.settings, queue=queue)
        self._handlers = handlers
        self._known: set[str] | None = None
        self.clock = clock
        self._loop: SchedulerLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._prune_task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self.reconciler: Reconciler | None = None

    async def __aenter__(self) -> TaskScheduler:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- running ------------------------------------------------------------------------------
    async def initialize(self, *, migrate: bool = False) -> None:
        """Load the enabled schedules and start firing them in the background."""
        await self._rt.check_redis_password()
        if migrate:
            await self._rt.migrate()
        gate = await self._rt.fire_gate()
        writer = await self._rt.execution_log_writer() if self.settings.execution_log else None
        loop = SchedulerLoop(
            self._rt.store(),
            gate,
            clock=self.clock,
            catch_up_ms=self.settings.catch_up_ms,
            keep_completed=self.keep_completed,
            on_fired=writer.job_waiting if writer is not None else None,
            on_missed=writer.ticks_missed if writer is not None else None,
            announce=lambda: self._rt.publish_change("marker"),
        )
        self._loop = loop
        if writer is not None:
            self._prune_task = asyncio.create_task(self._prune_forever(), name="corral-prune")
            if self.settings.reconcile_interval_s > 0:
                self.reconciler = Reconciler(
                    await self._rt.queue(),
                    self._rt.execution_log(),
                    queue=self._rt.queue_name,
                    grace_s=self.settings.reconcile_grace_s,
                    clock=self.clock,
                )
                self._reconcile_task = asyncio.create_task(
                    self._reconcile_forever(self.reconciler, loop.id), name="corral-reconcile"
                )
        self._rt.change_feed(loop.nudge)
        self._task = asyncio.create_task(loop.run(self._stop), name="corral-scheduler")
        waiter = asyncio.ensure_future(loop.loaded.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            waiter.cancel()
            self._task.result()  # raise the start-up error
        freeze_start_up_heap()  # the loaded schedules live as long as the process

    async def _prune_forever(self) -> None:
        """Delete execution-log rows older than the retention, once an hour (any replica may;
        deleting twice is harmless)."""
        log = self._rt.execution_log()
        while not self._stop.is_set():
            cutoff = self.clock() - timedelta(days=self.settings.execution_log_retention_days)
            try:
                removed = await log.prune(cutoff)
                if removed:
                    logger.info(
                        "pruned %d execution log rows older than %s",
                        removed,
                        cutoff.isoformat(),
                        extra={"event": "execlog.pruned"},
                    )
            except Exception as exc:
                logger.warning(
                    "execution log prune failed: %s", exc, extra={"event": "execlog.prune_failed"}
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=3600)

    async def _reconcile_forever(self, reconciler: Reconciler, owner: str) -> None:
        """A reconciliation pass every interval, by one replica: each takes a claim on the
        period (``SET NX PX``) and only its winner runs the pass; a pass that is run twice
        anyway (a claim expired under a slow pass) is harmless, its writes are conditional."""
        interval = self.settings.reconcile_interval_s
        queue = await self._rt.queue()
        supervisor = Supervisor(
            logger,
            failure="execution log reconciliation failed: {error}",
            event="execlog.reconcile_failed",
            recovery="execution log reconciliation works again",
            recovered_event="execlog.reconcile_ok",
        )

        async def run_once() -> None:
            # A little under the interval, so the winner's next turn finds the claim gone.
            if await queue.claim("reconcile", owner, max(int(interval * 900), 1)):
                await reconciler.run_once()

        while not self._stop.is_set():
            if not await supervisor.attempt(run_once):
                reconciler.stats.failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Fire until ``stop`` is set, then close."""
        await stop.wait()
        await self.close()

    @property
    def loop(self) -> SchedulerLoop | None:
        return self._loop

    async def close(self) -> None:
        self._stop.set()
        for task in (self._prune_task, self._reconcile_task):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self._prune_task = self._reconcile_task = None
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._rt.aclose()

    graceful_shutdown = close

    # -- managing schedules -------------------------------------------------------------------
    async def _validated(self, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """``fields`` checked by ``core.schedules``; a handler name must also be registered."""
        max_bytes = self.settings.max_job_data_bytes
        clean = validate_changes(fields, creating=creating, max_payload_bytes=max_bytes)
        name = clean.get("handler_name")
        if name is not None:
            known = await self._known_handlers()
            if known and name not in known:
                raise ValidationError("handler_name", f"no handler named {name!r} is registered")
        return clean

    async def _known_handlers(self) -> set[str]:
        if self._handlers is not None:
            if self._known is None:
                self._known = set(self._rt.registry_from(self._handlers))
            return self._known
        return await (await self._rt.queue()).known_handlers()

    async def create(self, **fields: Any) -> ScheduledJob:
        clean = await self._validated(fields, creating=True)
        job = await self._rt.store().create(new_schedule(uuid4(), clean, self.clock()))
        await self._rt.publish_change(str(job.id))
        _log_change("created", job.id, "schedule %s (%s) created", job.name)
        return job

    async def update(self, schedule_id: UUID, **fields: Any) -> ScheduledJob:
        clean = await self._validated(fields, creating=False)
        job = await self._rt.store().update(schedule_id, clean, self.clock())
        await self._rt.publish_change(str(schedule_id))
        _log_change("updated", schedule_id, "schedule %s updated: %s", ", ".join(sorted(clean)))
        return job

    async def set_status(self, schedule_id: UUID, status: ScheduleStatus | int) -> ScheduledJob:
        return await self.update(schedule_id, status=status)

    async def delete(self, schedule_id: UUID) -> None:
        await self._rt.store().delete(schedule_id)
        await (await self._rt.fire_gate()).forget(schedule_id)
        await self._rt.publish_change(str(schedule_id))
        _log_change("deleted", schedule_id, "schedule %s deleted")

    async def get(self, schedule_id: UUID) -> ScheduledJob:
        return await self._rt.store().get(schedule_id)

    async def list(
        self, query: ScheduleQuery | None = None
    ) -> tuple[builtins.list[ScheduledJob], int]:
        return await self._rt.store().search(query or ScheduleQuery())

    async def executions(
        self, query: ExecutionQuery | None = None
    ) -> tuple[builtins.list[ExecutionRecord], int]:
        """Execution-log rows (of one schedule with ``ExecutionQuery(job_id=...)``)."""
        return await self._rt.execution_log().search(query or ExecutionQuery())

    def preview(
        self,
        cron_expression: str,
        timezone: str = DEFAULT_TIMEZONE,
        n: int = 5,
        after: datetime | None = None,
    ) -> builtins.list[datetime]:
        """The next ``n`` fire times (UTC) of an expression in a zone; raises ValidationError
        naming ``cron_expression`` or ``timezone``."""
        if not is_strict_int(n, 1, MAX_PREVIEW):
            raise ValidationError("count", f"must be an integer between 1 and {MAX_PREVIEW}")
        try:
            cron = CronExpression.parse(cron_expression)
        except InvalidCronExpression as exc:
            raise ValidationError("cron_expression", exc.problem) from None
        return next_fires(cron, parse_timezone(timezone), after or self.clock(), n)

    async def trigger_now(self, schedule_id: UUID) -> str:
        """Enqueue one run of the schedule now, outside its cron (job id ``manual-...``)."""
        schedule = await self.get(schedule_id)
        now = self.clock()
        job_id = f"manual-{schedule.id}-{epoch_ms(now)}"
        spec = spec_for_schedule(schedule, now, job_id=job_id)
        await (await self._rt.queue()).add(spec)
        _log_change("triggered", schedule_id, "schedule %s triggered manually as job %s", job_id)
        return job_id

    async def stats(self) -> dict[str, Any]:
        """This process's figures and the cluster-wide ones from Redis."""
        cluster = await (await self._rt.fire_gate()).stats()
        count = cluster.get("fired", 0.0)
        local = self._loop.stats if self._loop is not None else None
        return {
            "cluster": {
                "fired": int(count),
                "missed": int(cluster.get("missed", 0)),
                "lateness_ms_avg": (cluster.get("lateness_ms_sum", 0.0) / count) if count else 0.0,
            },
            "process": None
            if local is None
            else {
                "fired": local.fired,
                "skipped": local.skipped,
                "lost_races": local.lost_races,
                "lateness_ms_max": local.lateness_ms_max,
                "lateness_ms_avg": (local.lateness_ms_sum / local.fired) if local.fired else 0.0,
                "reloads": local.reloads,
            },
        }
