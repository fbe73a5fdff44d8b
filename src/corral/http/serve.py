"""Serving the app inside an asyncio program that owns the signals (``corral dev``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


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
        self._task = asyncio.create_task(self.server.serve(), name="corral-api")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raise the start-up error (port taken, ...)
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
