"""The long-running and database commands as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CORRAL = str(Path(sys.executable).parent / "corral")
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "CORRAL_QUEUE": f"cli{os.getpid()}{time.monotonic_ns()}",
            "CORRAL_PREFIX": "corraltest",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path, redis_url: str) -> None:
    env = _env(tmp_path, redis_url)
    for _ in range(2):
        done = subprocess.run(
            [CORRAL, "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "is up to date" in done.stdout
    assert (tmp_path / "cli.db").exists()


def test_db_upgrade_bad_url_is_one_line_naming_database_url(tmp_path: Path, redis_url: str) -> None:
    env = _env(tmp_path, redis_url, DATABASE_URL="mysql://u:CANARY-9b1c@h/x")
    done = subprocess.run(
        [CORRAL, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("corral: DATABASE_URL")
    assert "CANARY" not in done.stderr + done.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_scheduler_stops_cleanly_on_signal(tmp_path: Path, redis_url: str, sig: int) -> None:
    env = _env(tmp_path, redis_url)
    proc = subprocess.Popen(
        [CORRAL, "scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until it has loaded its schedules
            if "scheduler loaded" in line or time.monotonic() > deadline:
                break
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
