"""A wrong Redis password is a configuration error, not an outage: every command that talks to
Redis says which server refused it (never the password) and exits at start-up, instead of
retrying forever under "Redis not reachable"."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, RedisServer, free_port

CORRAL = str(Path(sys.executable).parent / "corral")
PASSWORD = "right-horse-battery"  # noqa: S105 - the private server's password
CANARY = "CANARY-wrong-5d1e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path_factory.mktemp("redis-auth"), password=PASSWORD)
    redis.start()
    yield redis
    redis.shutdown()


def _run(tmp_path: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        CORRAL_HANDLERS="corral.examples.handlers",
        CORRAL_ADMIN_TOKEN="auth-test-token",  # noqa: S106 - a test value
        CORRAL_API_PORT=str(free_port()),
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [CORRAL, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _assert_refused(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 1, result
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"corral: Redis refused the password for 127.0.0.1:{port}", result.stderr
    assert "Retrying" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert CANARY not in result.stderr + result.stdout
    assert PASSWORD not in result.stderr + result.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["worker", "scheduler", "api", "dev"])
def test_a_wrong_password_stops_the_command_at_start_up(
    tmp_path: Path, server: RedisServer, command: str
) -> None:
    wrong = f"redis://:{CANARY}@127.0.0.1:{server.port}/0"
    _assert_refused(_run(tmp_path, wrong, command), server.port)


@pytest.mark.timeout(60)
def test_no_password_for_a_server_that_needs_one(tmp_path: Path, server: RedisServer) -> None:
    _assert_refused(_run(tmp_path, f"redis://127.0.0.1:{server.port}/0", "worker"), server.port)
