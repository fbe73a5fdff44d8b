"""Running the Node BullMQ producer and consumer of ``tests/interop/node`` from the tests.

``node_modules`` is installed with ``npm ci`` from the committed lock file, when it is missing
or older than the lock file, with no package's install script run (none is needed: the one
there, msgpackr-extract's, only builds an optional native speed-up that ships prebuilt).
Without Node.js (20 or newer) and npm the interop tests FAIL, naming what is missing, unless
CORRAL_SKIP_NODE=1 says to skip them: a machine that cannot run them must say so, never pass
them silently.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
MIN_NODE_MAJOR = 20
#: npm's own record of what it installed; newer than the lock file = installed from it.
_INSTALLED = NODE_DIR / "node_modules" / ".package-lock.json"


def _node_or_fail() -> tuple[str, str]:
    if os.environ.get("CORRAL_SKIP_NODE") == "1":
        pytest.skip("CORRAL_SKIP_NODE=1: the Node BullMQ interop tests are skipped")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        pytest.fail(
            f"{missing} not found: the Node BullMQ interop tests (tests/interop) need Node.js "
            f"{MIN_NODE_MAJOR}+ with npm; install them, or set CORRAL_SKIP_NODE=1 to skip these "
            "tests on this machine"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < MIN_NODE_MAJOR:
        pytest.fail(
            f"Node.js {version.stdout.strip()} found; the interop tests need {MIN_NODE_MAJOR}+"
        )
    return node, npm


def install() -> str:
    """The ``node`` binary, with the project's ``node_modules`` installed from its lock file."""
    node, npm = _node_or_fail()
    lock = NODE_DIR / "package-lock.json"
    if _INSTALLED.is_file() and _INSTALLED.stat().st_mtime >= lock.stat().st_mtime:
        return node
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {NODE_DIR} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return node


def _connection(redis_url: str, queue: str, prefix: str | None) -> list[str]:
    """The arguments both scripts take; no prefix leaves BullMQ's own default."""
    args = ["--url", redis_url, "--queue", queue]
    return args if prefix is None else [*args, "--prefix", prefix]


class NodeBullmq:
    """The Node side of a test: BullMQ's own ``Queue`` and ``Worker``, in Node processes."""

    def __init__(self, node: str, redis_url: str, logs: Path) -> None:
        self.node = node
        self.redis_url = redis_url
        self.logs = logs

    async def produce(
        self,
        queue: str,
        jobs: Sequence[dict[str, Any]],
        *,
        prefix: str | None,
        bulk: bool = False,
    ) -> list[str]:
        """Add ``jobs`` ({"name", "data", "opts"} in BullMQ's terms) with a Node ``Queue``;
        their ids, in order."""
        proc = await asyncio.create_subprocess_exec(
            self.node,
            "producer.mjs",
            *_connection(self.redis_url, queue, prefix),
            "--bulk",
            "yes" if bulk else "no",
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(jobs).encode()), 30)
        assert proc.returncode == 0, f"producer.mjs failed ({proc.returncode}): {err.decode()}"
        ids: list[str] = json.loads(out)
        return ids

    async def lua_scripts(self) -> dict[str, str]:
        """The Lua scripts of the installed npm bullmq, by Python bullmq's file stem."""
        proc = await asyncio.create_subprocess_exec(
            self.node,
            "lua.mjs",
            cwd=NODE_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, f"lua.mjs failed ({proc.returncode}): {err.decode()}"
        scripts: dict[str, str] = json.loads(out)
        return scripts

    @asynccontextmanager
    async def consumer(
        self,
        queue: str,
        ledger: str,
        *,
        prefix: str | None,
        count: int = 0,
        concurrency: int = 1,
    ) -> AsyncIterator[NodeConsumer]:
        """A Node ``Worker`` on ``queue``, connected when this enters; stopped (SIGTERM, the
        running jobs finish) when it exits, unless it already exited after ``count`` jobs."""
        log = self.logs / f"consumer-{queue}-{os.urandom(3).hex()}.log"
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                self.node,
                "consumer.mjs",
                *_connection(self.redis_url, queue, prefix),
                "--ledger",
                ledger,
                "--count",
                str(count),
                "--concurrency",
                str(concurrency),
                cwd=NODE_DIR,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        consumer = NodeConsumer(proc, log)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line == b"ready\n", f"consumer.mjs did not start: {log.read_text()}"
            yield consumer
        finally:
            await consumer.stop()


class NodeConsumer:
    """A running ``consumer.mjs``; its stderr goes to ``log``."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    async def finished(self, timeout_s: float = 20) -> None:
        """Wait for a consumer started with ``count`` to exit after its jobs, cleanly."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"consumer.mjs still running: {self.log.read_text()}") from None
        assert code == 0, f"consumer.mjs exited {code}: {self.log.read_text()}"

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
