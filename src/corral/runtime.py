"""The composition root: builds adapters and services from settings, in order, and closes them
in reverse. Facades (``manager``, ``worker``) hold a Runtime; nothing else wires adapters."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from corral.adapters.bullmq.connection import make_client, ping, server_info
from corral.adapters.bullmq.consumer import BullConsumer, WorkerConfig
from corral.adapters.bullmq.events import ChangeFeed, EventStream, publish_change
from corral.adapters.bullmq.queue import BullQueue
from corral.core.events import EVENT_NAMES, QueueEvent
from corral.core.handlers import HandlerRegistry
from corral.core.ports import AttemptListener, QueueBroker
from corral.errors import BrokerAuthenticationFailed, BrokerUnavailable, StoreUnavailable
from corral.services.discovery import discover
from corral.services.execution import Executor
from corral.settings import CorralSettings

# SQL (SQLAlchemy, Alembic), the Prometheus client and the scheduler's fire gate (with the cron
# code) load when first used: a worker needs none of them (its execution log writes through the
# driver), and they are most of its memory and start-up time.
if TYPE_CHECKING:
    from corral.adapters.bullmq.fires import FireGate
    from corral.adapters.sql.execution_log import SqlExecutionLog
    from corral.adapters.sql.schedule_store import SqlScheduleStore
    from corral.services.execution_log import ExecutionLogWriter

logger = logging.getLogger(__name__)

#: Connections of the monitoring client (health checks, /metrics): one probe reads about six
#: figures at once.
MONITOR_CONNECTIONS = 8

Listener = Callable[[QueueEvent], Any]


class Listeners:
    """Event listeners by name; sync ones are called inline, async ones run as tasks."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[Listener]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add(self, name: str, listener: Listener) -> None:
        if name not in EVENT_NAMES:
            raise ValueError(
                f"event: unknown event {name!r} (known: {', '.join(sorted(EVENT_NAMES))})"
            )
        if not callable(listener):
            raise TypeError("listener: must be callable")
        self._by_name.setdefault(name, []).append(listener)

    def dispatch(self, event: QueueEvent) -> None:
        for listener in self._by_name.get(event.name, ()):
            try:
                outcome = listener(event)
                if inspect.isawaitable(outcome):
                    task = asyncio.ensure_future(outcome)
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
            except Exception:
                logger.exception(
                    "listener for %r failed", event.name, extra={"event": "listener.error"}
                )

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "async listener failed: %r", task.exception(), extra={"event": "listener.error"}
            )

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def freeze_start_up_heap() -> None:
    """Once per process, when its first worker starts or its scheduler has loaded the
    schedules: what exists by then (modules, clients, the log writer, the loaded schedules)
    lives as long as the process, so it leaves the garbage collector's sight (``gc.freeze``).
    A full collection then walks only what jobs or fires allocated since, a few ms, instead of
    the whole start-up heap: 50-150 ms with the event loop stopped, which a worker otherwise
    paid once or twice in its first seconds of work (pick-up latency spikes), and a scheduler
    with 10,000 schedules every few seconds. Frozen objects dropped later (schedules replaced by
    a reload) are still freed by reference counting; only cycles among them would stay."""
    if gc.get_freeze_count() == 0:
        gc.freeze()


class Runtime:
    """Owns every connection a Corral process opens for one queue."""

    def __init__(self, settings: CorralSettings, *, queue: str | None = None) -> None:
        self.settings = settings
        self.queue_name = queue or settings.queue
        self._url = settings.redis_url.get_secret_value()
        self._stack = AsyncExitStack()
        self._queue: BullQueue | None = None
        self._monitor: BullQueue | None = None
        self._events: EventStream | None = None
        self.listeners = Listeners()
        self.consumers: list[BullConsumer] = []
        self._engine: Any = None
        self._store: SqlScheduleStore | None = None
        self._log: SqlExecutionLog | None = None
        self._writer: ExecutionLogWriter | None = None

    # -- producer / admin --------------------------------------------------------------------
    async def queue(self) -> QueueBroker:
        return self._bull_queue()

    async def monitor(self) -> QueueBroker:
        """The same queue on a small client of its own, for health checks and metric scrapes:
        a flood of probes waits on these few connections and never takes one the work needs
        (adds, admin calls), nor is a probe starved by a burst of adds."""
        return self._bull_monitor()

    def _bull_queue(self) -> BullQueue:
        if self._queue is None:
            self._queue = self._open_queue()
        return self._queue

    def _bull_monitor(self) -> BullQueue:
        if self._monitor is None:
            self._monitor = self._open_queue(
                max_connections=MONITOR_CONNECTIONS,
                pool_timeout_s=self.settings.redis_connect_timeout_s,
            )
        return self._monitor

    def _open_queue(self, **client: Any) -> BullQueue:
        s = self.settings
        queue = BullQueue(
            make_client(self._url, connect_timeout_s=s.redis_connect_timeout_s, **client),
            self._url,
            name=self.queue_name,
            prefix=s.prefix,
            memory_reserve=s.redis_memory_reserve,
        )
        self._stack.push_async_callback(queue.close)
        return queue

    async def ping(self) -> float:
        client = self._bull_monitor().client
        return await ping(client, self._url, self.settings.redis_connect_timeout_s)

    async def check_redis_password(self) -> None:
        """Raise BrokerAuthenticationFailed if Redis refuses the password. An unreachable Redis
        passes: processes wait for it, but no wait fixes a wrong password."""
        try:
            await self.ping()
        except BrokerUnavailable as exc:
            if isinstance(exc, BrokerAuthenticationFailed):
                raise

    @property
    def redis_has_password(self) -> bool:
        return urlsplit(self._url).password is not None or "password=" in self._url

    @property
    def redis_host(self) -> str | None:
        return urlsplit(self._url).hostname

    async def redis_info(self) -> dict[str, object]:
        return await server_info(self._bull_monitor().client, self._url)

    # -- SQL ----------------------------------------------------------------------------------
    async def migrate(self) -> None:
        from corral.adapters.sql.driver_log import schema_at_head

        url = self.settings.database_url.get_secret_value()
        # Nearly always at head: checked on the driver, SQLAlchemy and Alembic stay unloaded.
        if not await schema_at_head(url):
            from corral.adapters.sql.migrate import upgrade

            await upgrade(url)

    def _sql_engine(self) -> Any:
        if self._engine is None:
            from corral.adapters.sql.engine import make_engine

            engine = make_engine(self.settings.database_url.get_secret_value())
            self._stack.push_async_callback(engine.dispose)
            self._engine = engine
        return self._engine

    def store(self) -> SqlScheduleStore:
        if self._store is None:
            from corral.adapters.sql.schedule_store import SqlScheduleStore

            self._store = SqlScheduleStore(self._sql_engine())
        return self._store

    def execution_log(self) -> SqlExecutionLog:
        if self._log is None:
            from corral.adapters.sql.execution_log import SqlExecutionLog

            self._log = SqlExecutionLog(self._sql_engine())
        return self._log

    async def execution_log_writer(self) -> ExecutionLogWriter:
        """The batched execution-log writer for this runtime (started once, closed last)."""
        if self._writer is None:
            from corral.adapters.sql.driver_log import DriverExecutionLog
            from corral.services.execution_log import ExecutionLogWriter

            # Writes only, on a driver connection of its own: a worker loads no SQLAlchemy.
            log = DriverExecutionLog(self.settings.database_url.get_secret_value())
            self._stack.push_async_callback(log.aclose)
            if self.settings.auto_migrate and not await log.at_head():
                await self.migrate()
            writer = ExecutionLogWriter(log, queue=self.queue_name)
            writer.start()
            self._stack.push_async_callback(writer.close)
            self._writer = writer
        return self._writer

    async def ping_database(self) -> float:
        """Round-trip latency in ms; raise StoreUnavailable (no password) if the database does
        not answer within the connect timeout."""
        from corral.adapters.sql.engine import ping as ping_sql

        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.redis_connect_timeout_s + 5.0):
                await ping_sql(self._sql_engine())
        except TimeoutError:
            raise StoreUnavailable("database unavailable: no answer in time") from None
        return (time.perf_counter() - started) * 1000

    def execution_log_backlog(self) -> int | None:
        """Rows this process's execution-log writer still holds; None without a writer."""
        return None if self._writer is None else self._writer.backlog

    @staticmethod
    def exposition(figures: dict[str, Any]) -> tuple[bytes, str]:
        """``figures`` (plus any the caller added) in Prometheus text format, and the
        Content-Type to serve it with."""
        from corral.adapters import prometheus

        return prometheus.render(figures), prometheus.CONTENT_TYPE

    # -- scheduling ---------------------------------------------------------------------------
    async def fire_gate(self) -> FireGate:
        return self._bull_queue().fire_gate()

    async def publish_change(self, what: str) -> None:
        client = self._bull_queue().client
        await publish_change(client, prefix=self.settings.prefix, queue=self.queue_name, what=what)

    def change_feed(self, on_change: Callable[[], None]) -> ChangeFeed:
        feed = ChangeFeed(
            make_client(self._url, max_connections=2),
            prefix=self.settings.prefix,
            queue=self.queue_name,
            on_change=on_change,
        )
        feed.start()
        self._stack.push_async_callback(feed.close)
        return feed

    # -- events -------------------------------------------------------------------------------
    async def start_events(self) -> None:
        if self._events is None:
            stream = EventStream(
                make_client(self._url, max_connections=2),
                prefix=self.settings.prefix,
                queue=self.queue_name,
                sink=self.listeners.dispatch,
            )
            self._events = stream
            self._stack.push_async_callback(self.listeners.drain)
            self._stack.push_async_callback(stream.close)
            await stream.start()

    # -- workers ------------------------------------------------------------------------------
    def registry_from(self, handlers: HandlerRegistry | Iterable[str] | None) -> HandlerRegistry:
        if isinstance(handlers, HandlerRegistry):
            return handlers
        packages = list(handlers) if handlers is not None else self.settings.handler_packages
        return discover(packages)

    async def start_consumer(
        self,
        registry: HandlerRegistry,
        *,
        concurrency: int | None = None,
        prefetch: int | None = None,
        limiter_max: int | None = None,
        limiter_duration_ms: int | None = None,
        lifecycle: AttemptListener | None = None,
    ) -> BullConsumer:
        s = self.settings
        concurrency = concurrency or s.concurrency
        if prefetch is None:
            # One fewer than it runs: a worker running one job at a time holds none, so its
            # jobs start strictly in priority order (a held job is never overtaken).
            prefetch = concurrency - 1 if s.prefetch is None else s.prefetch
        config = WorkerConfig(
            queue=self.queue_name,
            prefix=s.prefix,
            concurrency=concurrency,
            prefetch=prefetch,
            limiter_max=limiter_max,
            limiter_duration_ms=limiter_duration_ms,
            lock_duration_ms=s.lock_duration_ms,
            stalled_interval_ms=s.stalled_interval_ms,
            max_stalled_count=s.max_stalled_count,
        )
        # Commands in flight are bounded by the jobs held plus a few timers (lock renewal,
        # stats, stalled check): sized above that, the pool never runs dry and need not wait.
        client = make_client(
            self._url,
            max_connections=max(50, config.held * 2 + 10),
            connect_timeout_s=s.redis_connect_timeout_s,
            wait_for_connection=False,
        )
        try:
            await ping(client, self._url, s.redis_connect_timeout_s)
        except BaseException:
            await client.aclose()
            raise
        # bullmq's wait for new jobs (BZPOPMIN) holds a connection for seconds: its own client.
        blocking = make_client(
            self._url, max_connections=2, connect_timeout_s=s.redis_connect_timeout_s
        )
        # Sync handlers get threads of their own; a timed-out one keeps its thread, so allow
        # some headroom above the concurrency.
        listeners = [] if lifecycle is None else [lifecycle]
        executor = Executor(registry, threads=config.concurrency * 2, listeners=listeners)
        consumer = BullConsumer(client, config, executor, blocking_client=blocking)
        freeze_start_up_heap()
        await consumer.start()
        self.consumers.append(consumer)
        return consumer

    async def stop_consumers(self, timeout_ms: int, hurry: asyncio.Event | None = None) -> bool:
        """Close every worker within ``timeout_ms``; True if all drained in time."""
        consumers, self.consumers = self.consumers, []
        results = await asyncio.gather(*(c.close(timeout_ms, hurry) for c in consumers))
        return all(results)

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._queue = None
        self._events = None
