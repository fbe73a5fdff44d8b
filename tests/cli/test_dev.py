"""`corral dev` from a clean folder with no REDIS_URL: a private Redis, the API with a printed
token, the example schedules and jobs; Ctrl-C stops everything, leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from corral.settings import MIN_TOKEN_CHARS
from tests.support.processes import free_port

CORRAL = str(Path(sys.executable).parent / "corral")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.timeout(120)
def test_dev_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "REDIS_URL",
            "DATABASE_URL",
            "CORRAL_QUEUE",
            "CORRAL_PREFIX",
            "CORRAL_ADMIN_TOKEN",
            "CORRAL_HANDLERS",
        )
    }
    env["CORRAL_API_PORT"] = str(port)
    proc = subprocess.Popen(
        [CORRAL, "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        token = None
        while time.monotonic() < deadline and token is None:
            for line in list(lines):
                match = re.search(r"admin token: (\S+)", line)
                if match:
                    token = match.group(1)
            time.sleep(0.1)
        assert token, "".join(lines)
        assert len(token) >= MIN_TOKEN_CHARS  # the generated token would pass outside development
        redis_children = [
            p
            for p in _children(proc.pid)
            if "redis-server" in Path(f"/proc/{p}/cmdline").read_text()
        ]
        assert len(redis_children) == 1
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/admin/scheduled-jobs").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        schedules = httpx.get(f"{base}/api/admin/scheduled-jobs", headers=auth).json()
        names = {s["name"] for s in schedules["items"]}
        assert {"Demo: every minute", "Daily backup"} <= names
        demo = next(s for s in schedules["items"] if s["name"] == "Demo: every minute")
        run = httpx.post(f"{base}/api/admin/scheduled-jobs/{demo['id']}/run", headers=auth)
        assert run.status_code == 202
        manual = run.json()["executionId"]
        while time.monotonic() < deadline and not any(f"completed {manual}" in x for x in lines):
            time.sleep(0.1)
        assert any(f"completed {manual}" in x for x in lines), "".join(lines)
        assert sum("  completed " in x for x in lines) >= 13  # 12 seed jobs + the manual run
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        reader.join(timeout=5)
        assert "corral dev: stopped" in "".join(lines)
        for pid in redis_children:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            )
        assert (tmp_path / "corral.db").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
