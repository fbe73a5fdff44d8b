"""A private PostgreSQL cluster for fault tests: ``initdb`` into a temporary dir, started on a
free port bound to 127.0.0.1 (its unix socket inside that dir), stopped, killed and restarted
at will. It never touches the shared server on 5432.

PostgreSQL refuses to run as root, so under root the cluster runs as the ``postgres`` OS user
(``CORRAL_TEST_PG_USER`` to pick another): its dir is created outside pytest's 0700 tmp tree and
chowned to that user, and ``initdb``/``postgres`` are started with that uid (``subprocess``'s
``user=``; no ``runuser``/``su`` in between, so the process we hold is the postmaster itself).

Binaries: ``CORRAL_TEST_PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``, else
``pg_config --bindir``, else ``initdb`` on ``PATH``. Tests call :func:`require_postgres_binaries`
first: missing binaries skip locally and FAIL in CI (``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from tests.support.processes import free_port

_DEBIAN_BINDIRS = "/usr/lib/postgresql"
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Throwaway data: durability off, so start, stop and every commit are quick.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "50",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
}


class PostgresUnavailable(RuntimeError):
    """The binaries or an unprivileged OS user to run them as are missing."""


def find_bindir() -> Path | None:
    """Where ``initdb``, ``postgres`` and ``pg_isready`` live, or None."""
    wanted = os.environ.get("CORRAL_TEST_PG_BINDIR")
    if wanted:
        return Path(wanted) if (Path(wanted) / "initdb").is_file() else None
    candidates = [
        path
        for path in Path(_DEBIAN_BINDIRS).glob("*/bin")
        if (path / "initdb").is_file() and path.parent.name.isdigit()
    ]
    if candidates:
        return max(candidates, key=lambda path: int(path.parent.name))
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and (Path(out) / "initdb").is_file():
                return Path(out)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb is not None else None


def _run_as() -> pwd.struct_passwd | None:
    """The OS user to run PostgreSQL as: None to stay who we are (not root)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("CORRAL_TEST_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no OS user {name!r} to run PostgreSQL as"
        ) from None


def postgres_problem() -> str | None:
    """Why a private cluster cannot be made here (None if it can)."""
    bindir = find_bindir()
    if bindir is None:
        return "PostgreSQL server binaries (initdb) not found; set CORRAL_TEST_PG_BINDIR"
    for tool in ("initdb", "postgres", "pg_isready"):
        if not os.access(bindir / tool, os.X_OK):
            return f"{bindir / tool} is missing or not executable"
    try:
        _run_as()
    except PostgresUnavailable as exc:
        return str(exc)
    return None


def require_postgres_binaries() -> None:
    """Skip the calling test locally, FAIL it in CI, if no private cluster can be made."""
    import pytest

    problem = postgres_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true: tests that need PostgreSQL must not be skipped)")
        pytest.skip(problem)


class PostgresServer:
    """One throwaway cluster. ``init()`` once, then ``start()``/``stop()``/``kill()`` as often
    as the test wants (the port stays the same, so the URL does too); ``cleanup()`` stops it
    and removes the dir. Also a context manager (init + start, cleanup)."""

    def __init__(self, *, bindir: Path | None = None, base_dir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb) not found")
        self.bindir = found
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="corral-pg-", dir=base_dir))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self.socket_dir.mkdir()
        if self.user is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.root, 0o700)

    # -- addresses ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PG") and key not in ("HOME", "LANG", "LANGUAGE")
        }
        env.update({"LC_ALL": "C", "HOME": str(self.root), "TZ": "UTC"})
        return env

    @property
    def _uid(self) -> int | None:
        return None if self.user is None else self.user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self.user is None else self.user.pw_gid

    @property
    def _groups(self) -> list[int] | None:
        return None if self.user is None else []  # drop root's supplementary groups

    def init(self) -> None:
        """Create the cluster (trust auth, superuser ``postgres``, no fsync: ~1 s)."""
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self._env(),
            cwd=self.root,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the postmaster and return once it accepts connections."""
        if self.running:
            return
        attempts = 1 if self._started_once else 3  # a fresh port may be taken: try another
        for attempt in range(attempts):
            try:
                self._start_once(timeout_s)
                self._started_once = True
                return
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RuntimeError(f"no free port for PostgreSQL ({self.log_tail()})") from None
                self.port = free_port()

    def _start_once(self, timeout_s: float) -> None:
        command = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for name, value in _SERVER_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the backends too
                env=self._env(),
                cwd=self.root,
                user=self._uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self._log_since(log_start)
                self.proc = None
                if re.search(r"could not (bind|create listen)|Address already in use", text):
                    raise _PortTaken
                raise RuntimeError(f"postgres exited while starting: {text[-2000:]}")
            if self._accepting():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"postgres did not accept connections in {timeout_s} s")

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        # The port opens before recovery ends; pg_isready says 0 only once logins work.
        ready = subprocess.run(
            [
                str(self.bindir / "pg_isready"),
                *("-q", "-h", "127.0.0.1", "-p", str(self.port)),
                *("-U", "postgres", "-d", "postgres", "-t", "2"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
        return ready.returncode == 0

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, a clean checkpoint is written)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (its process group): a crash."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # SIGKILL to the group cannot be caught: no backend survives to keep the old shared
        # memory attached, so a restart runs crash recovery and comes up.
        proc.wait(timeout=30)
        self.proc = None

    def cleanup(self) -> None:
        try:
            self.stop(timeout_s=15)
        finally:
            if self.proc is not None:
                self.kill()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- diagnostics --------------------------------------------------------------------------
    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 2000) -> str:
        return self._log_since(0)[-chars:]

    # -- context manager ----------------------------------------------------------------------
    def __enter__(self) -> PostgresServer:
        try:
            self.init()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class _PortTaken(Exception):
    pass


@contextlib.contextmanager
def postgres_server(base_dir: Path | None = None) -> Iterator[PostgresServer]:
    """A started private cluster, stopped and removed afterwards."""
    with PostgresServer(base_dir=base_dir) as server:
        yield server
