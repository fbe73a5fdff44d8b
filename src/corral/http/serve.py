"""Serving the app inside an asyncio program that owns the signals (``corral api``,
``corral dev``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from corral.errors import ConfigurationError
from corral.worker import StopSignal


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The host program's one shutdown path handles SIGINT/SIGTERM; uvicorn must not.
        yield


class EmbeddedServer:
    """Run uvicorn as a task of the current loop; ``stop()`` shuts it down gracefully."""

    def __init__(self, app: FastAPI, *, host: str, port: int, log_level: str) -> None:
        self.server = _Server(
            uvicorn.Config(
                app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="corral-api")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raise the start-up error (port taken, ...)
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.02)

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as exc:
            # uvicorn exits the process when it cannot bind (it has logged why); a SystemExit
            # escaping a task would tear the loop down, so make it an ordinary error.
            raise OSError(f"the server could not start, exit code {exc.code}") from None

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def serve_until_signal(app: FastAPI, *, host: str, port: int, log_level: str) -> None:
    """``corral api``: serve until SIGTERM/SIGINT, finish in-flight requests, exit 0.

    (uvicorn.run would re-raise the signal after its own graceful shutdown, so the process
    would end "killed by SIGTERM" unlike every other Corral process.)
    """
    stop = StopSignal()
    stop.install()
    server = EmbeddedServer(app, host=host, port=port, log_level=log_level)
    try:
        await server.start()
    except OSError as exc:
        raise ConfigurationError(
            f"CORRAL_API_PORT: cannot listen on {host}:{port} ({exc}); "
            "set CORRAL_API_HOST / CORRAL_API_PORT or --host / --port"
        ) from None
    try:
        await stop.stop.wait()
    finally:
        await server.stop()
