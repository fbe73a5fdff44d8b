"""A private Redis for ``corral dev``: a ``redis-server`` child bound to loopback with a random
password, data under a project-local folder, gone when the parent exits (even on SIGKILL, via
``PR_SET_PDEATHSIG`` on Linux).

Its data outlives it (append-only file, fsync each second, flushed on a clean stop), and its
password and port are kept in a 0600 state file: a restarted ``corral dev`` finds its jobs, job
ids and the scheduler's watermarks again, so no cron tick fires twice, and a second shell's
REDIS_URL usually stays valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

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


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _read_state(path: Path) -> tuple[str | None, int]:
    """(password, port) from an earlier run; (None, 0) if there is none or it is unreadable
    (a new password is harmless: Redis keeps no password with its data)."""
    try:
        state = json.loads(path.read_text())
        password, port = state["password"], state["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, 0
    if not isinstance(password, str) or len(password) < 16 or not isinstance(port, int):
        return None, 0
    return password, port if 1024 <= port <= 65535 else 0


def _write_state(path: Path, password: str, port: int) -> None:
    """Owner-only from the first byte (O_CREAT with 0600), replaced atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"password": password, "port": port}, out)
    os.replace(tmp, path)


class EmbeddedRedis:
    """``async with EmbeddedRedis(folder, state=file) as redis: redis.url`` (the URL holds the
    password). ``state`` keeps the password and port across runs."""

    def __init__(self, folder: Path, *, state: Path) -> None:
        self.folder = folder.resolve()
        self.state = state.resolve()
        self.password = ""
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigurationError(INSTALL_HINT)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        password, port = _read_state(self.state)
        self.password = password or secrets.token_urlsafe(24)
        self.port = port if port and _port_is_free(port) else _free_port()
        _write_state(self.state, self.password, self.port)
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "protected-mode": "yes",
            "requirepass": self.password,
            "dir": str(self.folder),
            "save": "",
            "appendonly": "yes",
            "appendfsync": "everysec",
            "daemonize": "no",
            "maxmemory-policy": "noeviction",
            "logfile": str(self.folder / "redis.log"),
        }
        args = [binary, *(arg for name, value in options.items() for arg in (f"--{name}", value))]
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

    async def __aexit__(self, *exc_info: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
