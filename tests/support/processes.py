"""Run Corral commands and private redis-servers as real OS processes for tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from corral import JobQueueManager
from corral.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CORRAL = str(Path(sys.executable).parent / "corral")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def corral_env(redis_url: str, queue: str, database_url: str = "", **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url or os.environ.get("DATABASE_URL", ""),
            "CORRAL_QUEUE": queue,
            "CORRAL_PREFIX": "corraltest",
            "CORRAL_HANDLERS": "tests.support.it_handlers",
            "CORRAL_LOCK_DURATION_MS": "2000",
            "CORRAL_STALLED_INTERVAL_MS": "500",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            "LOG_LEVEL": "info",
        }
    )
    env.update(extra)
    return env


def api_env(
    redis_url: str, queue: str, database_url: str, *, token: str, port: int, **extra: str
) -> dict[str, str]:
    """``corral_env`` for a ``corral api`` on 127.0.0.1:``port`` with admin token ``token``."""
    return corral_env(
        redis_url,
        queue,
        database_url,
        CORRAL_EXECUTION_LOG="false",
        CORRAL_ADMIN_TOKEN=token,
        CORRAL_API_HOST="127.0.0.1",
        CORRAL_API_PORT=str(port),
        **extra,
    )


def joining_env(qm: JobQueueManager, **extra: str) -> dict[str, str]:
    """The environment of a ``corral`` process on ``qm``'s Redis, database, queue and prefix,
    without PYTHONPATH (its handlers come from the folder it runs in)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        REDIS_URL=qm.settings.redis_url.get_secret_value(),
        DATABASE_URL=qm.settings.database_url.get_secret_value(),
        CORRAL_QUEUE=qm.queue_name,
        CORRAL_PREFIX=qm.settings.prefix,
        **extra,
    )
    return env


def worker_in(folder: Path, env: dict[str, str], handlers: str) -> subprocess.Popen[bytes]:
    """``corral worker --handlers <handlers>`` started in ``folder``, output to a pipe."""
    return subprocess.Popen(
        [CORRAL, "worker", "--handlers", handlers],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def producer_for(redis_url: str, queue: str, **settings: object) -> JobQueueManager:
    """A JobQueueManager in the test process for ``queue`` on a private Redis."""
    return JobQueueManager(
        load_settings(queue=queue, prefix="corraltest", redis_url=redis_url, **settings)
    )


@contextmanager
def corral_process(
    command: str, env: dict[str, str], *args: str, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``corral <command> <args>``, output to ``log`` (or a pipe); killed if still running."""
    out = log.open("wb") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        [CORRAL, command, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        if log is not None and not isinstance(out, int):
            out.close()


def worker_process(
    env: dict[str, str], *args: str
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return corral_process("worker", env, *args)


class RedisServer:
    """A private redis-server on a free port that a test may kill and restart."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str | None = None,
        appendfsync: str | None = None,
        maxmemory: str | None = None,
        maxmemory_policy: str = "noeviction",
    ) -> None:
        """``appendfsync`` ("always", "everysec") turns the AOF on, so data survives restarts;
        ``maxmemory`` ("50mb") caps the memory Redis may use."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.appendfsync = appendfsync
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendfsync else "no",
                "--appendfsync",
                self.appendfsync or "everysec",
                *(["--requirepass", self.password] if self.password else []),
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--maxmemory-policy",
                self.maxmemory_policy,
                *(["--maxmemory", self.maxmemory] if self.maxmemory else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def shutdown(self) -> None:
        """A clean stop (SIGTERM: Redis flushes its AOF first)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def scheduler_process(env: dict[str, str]) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return corral_process("scheduler", env)
