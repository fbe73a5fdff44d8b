"""A private Redis for ``corral dev``: a ``redis-server`` child bound to loopback with a random
password, data under a project-local folder, gone when the parent exits (even on SIGKILL, via
``PR_SET_PDEATHSIG`` on Linux)."""

from __future__ import annotations

import asyncio
import ctypes
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from corral.errors import ConfigurationError

INSTALL_HINT = (
    "no redis-server found on PATH: install it (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis) or set REDIS_URL to a running Redis"
)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """``async with EmbeddedRedis(folder) as redis: redis.url`` (the URL holds the password)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigurationError(INSTALL_HINT)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            "--requirepass",
            self.password,
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self._proc = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed binary; Popen does not block
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Own session: a Ctrl-C in the terminal reaches Corral, which drains and then stops
            # Redis itself, instead of killing Redis under the draining workers.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        for _ in range(200):
            if self._proc.poll() is not None:
                raise ConfigurationError(
                    f"redis-server exited at start; see {self.folder / 'redis.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return self
            except OSError:
                await asyncio.sleep(0.02)
        raise ConfigurationError("redis-server did not start within 4 s")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
