"""Serving the app inside an asyncio program that owns the signals (``corral api``,
``corral dev``), with limits against slow and numerous clients.

uvicorn (0.54) bounds the idle time between requests on a kept-alive connection
(``timeout_keep_alive``), the size of the request line + headers
(``h11_max_incomplete_event_size``) and the connections it serves (``limit_concurrency``:
beyond it a request is answered 503). It has no deadline for *receiving* a request: a client
that sends half a request line, dribbles headers or stops half-way through a body holds its
connection for ever. ``_ReadDeadlineProtocol`` adds that deadline: a request (line, headers and
body) must arrive within CORRAL_API_READ_TIMEOUT of the connection opening or of its first byte
on a kept-alive connection, else the connection is closed (with a 408 when the client had sent
part of a request line or headers and nothing was answered yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Generator
from typing import Any, ClassVar, Final

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from corral.core.throttle import LogThrottle, held_note
from corral.errors import ConfigurationError
from corral.http.errors import error_body
from corral.settings import CorralSettings
from corral.worker import StopSignal

logger = logging.getLogger(__name__)

#: The client is still sending a request in these h11 states.
_READING: Final = (h11.IDLE, h11.SEND_BODY)


def _timeout_answer(timeout_s: float) -> bytes:
    body = json.dumps(error_body(f"request not received within {timeout_s:g} s")).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _ReadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving each request (see the module doc).

    Subclassed per server (``with_read_deadline``) to carry the timeout; it relies on
    H11Protocol's ``conn``/``cycle``/``transport`` attributes, which the tests in
    tests/http/test_hardening_processes.py exercise against a real server.
    """

    read_timeout_s: ClassVar[float] = 15.0
    _throttle: ClassVar[LogThrottle]
    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _READING:
            self._arm()  # a no-op if armed: more bytes do not buy more time
        else:
            self._disarm()  # the whole request is in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]
        if idle or self.conn.their_state not in _READING:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout applies
        else:
            self._arm()  # part of a pipelined request, or the rest of a body, is on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._read_deadline is None and not self.transport.is_closing():
            self._read_deadline = self.loop.call_later(self.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _READING:
            return
        partial = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
        if partial and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_timeout_answer(self.read_timeout_s))
        held = self._throttle.allow(time.monotonic())
        if held is not None:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            logger.warning(
                "closed the connection of %s: request not received within %g s%s",
                client,
                self.read_timeout_s,
                held_note(held),
                extra={"event": "http.read_timeout"},
            )
        self.transport.close()


def with_read_deadline(timeout_s: float) -> type[_ReadDeadlineProtocol]:
    """An HTTP protocol class for uvicorn whose requests must arrive within ``timeout_s``."""
    attributes: dict[str, Any] = {"read_timeout_s": timeout_s, "_throttle": LogThrottle()}
    return type("ReadDeadlineProtocol", (_ReadDeadlineProtocol,), attributes)


def server_config(app: FastAPI, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's configuration for ``app``, with the limits from ``app.state.settings``."""
    settings: CorralSettings = app.state.settings
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # JSON logs: uvicorn's records go to Corral's handler, not uvicorn's own text one.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        lifespan="on",
        http=with_read_deadline(settings.api_read_timeout_s),
        timeout_keep_alive=settings.api_keepalive_timeout_s,
        limit_concurrency=settings.api_max_connections,
        h11_max_incomplete_event_size=settings.api_max_header_bytes,
    )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The host program's one shutdown path handles SIGINT/SIGTERM; uvicorn must not.
        yield


class EmbeddedServer:
    """Run uvicorn as a task of the current loop; ``stop()`` shuts it down gracefully."""

    def __init__(self, app: FastAPI, *, host: str, port: int, log_level: str) -> None:
        self.server = _Server(server_config(app, host=host, port=port, log_level=log_level))
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
