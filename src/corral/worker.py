"""The worker process: run one queue's worker until SIGTERM/SIGINT, then drain gracefully.

One shutdown path: the first signal sets the stop event and the worker drains within the
shutdown timeout; a second signal cuts the drain short (jobs still running go back to the
queue at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable

from corral.core.backoff import RetryPolicy
from corral.core.handlers import HandlerRegistry
from corral.errors import BrokerAuthenticationFailed, BrokerUnavailable
from corral.runtime import Runtime
from corral.services.monitoring import redis_warnings
from corral.settings import CorralSettings
from corral.supervision import Supervisor

logger = logging.getLogger(__name__)

#: Start-up retries wait 1 s, 1.5 s, 2.25 s, ... growing by half each time, at most 20 s: fast
#: enough to start within a few seconds of Redis.
STARTUP_RETRY = RetryPolicy(initial_s=1.0, factor=1.5, max_s=20.0)


class StopSignal:
    """SIGTERM/SIGINT -> ``stop`` (first) and ``hurry`` (second)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            logger.warning("second %s: stopping now", sig.name, extra={"event": "shutdown.hurry"})
            self.hurry.set()
        else:
            logger.info("%s received: draining", sig.name, extra={"event": "shutdown.start"})
            self.stop.set()


async def _warn_about_redis(runtime: Runtime) -> None:
    """Log Redis configuration risks once at start-up (an evicting maxmemory-policy silently
    drops jobs), where whoever deploys the worker reads its output."""
    try:
        info = await runtime.redis_info()
    except BrokerUnavailable:
        return  # the worker itself reports an outage
    for problem in redis_warnings(
        info=info, has_password=runtime.redis_has_password, host=runtime.redis_host
    ):
        logger.warning("%s", problem, extra={"event": "worker.redis_warning"})


async def run_worker(
    settings: CorralSettings,
    *,
    handlers: HandlerRegistry | Iterable[str] | None = None,
    queue: str | None = None,
    concurrency: int | None = None,
    prefetch: int | None = None,
    limiter_max: int | None = None,
    limiter_duration_ms: int | None = None,
    stop: StopSignal | None = None,
) -> bool:
    """Run until stopped; returns True if every active job finished before the deadline."""
    if stop is None:
        stop = StopSignal()
        stop.install()
    runtime = Runtime(settings, queue=queue)
    try:
        registry = runtime.registry_from(handlers)
        writer = await runtime.execution_log_writer() if settings.execution_log else None
        connecting = Supervisor(
            logger,
            failure="{error} Retrying in {delay:.1f} s.",
            event="worker.start_retry",
            recovery="connected to Redis after {failures} failed attempts",
            recovered_event="worker.start_recovered",
            policy=STARTUP_RETRY,
        )
        consumer = None
        while consumer is None:
            try:
                consumer = await runtime.start_consumer(
                    registry,
                    concurrency=concurrency,
                    prefetch=prefetch,
                    limiter_max=limiter_max,
                    limiter_duration_ms=limiter_duration_ms,
                    lifecycle=writer,
                )
            except BrokerAuthenticationFailed:
                raise
            except BrokerUnavailable as exc:
                # Redis may simply not be up yet (a deploy that starts everything at once):
                # wait and try again rather than exit, until told to stop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.stop.wait(), connecting.failed(exc))
                if stop.stop.is_set():
                    return True
        connecting.recovered()
        await _warn_about_redis(runtime)
        stopped = asyncio.ensure_future(stop.stop.wait())
        died = asyncio.ensure_future(consumer.wait_closed())
        await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
        if died.done() and not stop.stop.is_set():
            logger.critical("the worker loop ended unexpectedly", extra={"event": "worker.died"})
        stopped.cancel()
        return await runtime.stop_consumers(settings.shutdown_timeout_ms, stop.hurry)
    finally:
        await runtime.aclose()
