"""`corral dev` from a clean folder with no REDIS_URL: a private Redis, the API with a printed
token, the example schedules and jobs; Ctrl-C stops everything, leaving no process behind.
Its state lives under ``.corral/``: a restart keeps jobs, job ids, ticks and execution rows."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from corral.settings import MIN_TOKEN_CHARS
from tests.cli.test_handlers_from_cwd import make_shop
from tests.support.processes import free_port

CORRAL = str(Path(sys.executable).parent / "corral")
TOKEN = "dev-test-token"  # noqa: S105 - a test value


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _env(port: int, **extra: str) -> dict[str, str]:
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
            "PYTHONPATH",
        )
    }
    env["CORRAL_API_PORT"] = str(port)
    env.update(extra)
    return env


class Dev:
    """``corral dev`` in ``folder``, its output collected line by line."""

    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [CORRAL, "dev", *args],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(self.proc.stdout or ()), daemon=True
        )
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.output}")

    def completed(self) -> list[str]:
        return [m.group(1) for m in re.finditer(r"  completed (\S+):", self.output)]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        return code

    def __enter__(self) -> Dev:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.mark.timeout(120)
def test_dev_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    with Dev(tmp_path, _env(port)) as dev:
        token = dev.wait_for(r"admin token: (\S+)").group(1)
        assert len(token) >= MIN_TOKEN_CHARS  # the generated token would pass outside development
        redis_children = [
            p
            for p in _children(dev.proc.pid)
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
        dev.wait_for(f"completed {manual}")
        assert len(dev.completed()) >= 13  # 12 seed jobs + the manual run
        assert dev.stop() == 0
        assert "corral dev: stopped" in dev.output
        for pid in redis_children:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            )
    state = tmp_path / ".corral"
    assert (state / "corral.db").exists()
    assert not (tmp_path / "corral.db").exists()
    secret = state / "redis.json"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


@pytest.mark.timeout(120)
def test_a_restart_keeps_jobs_ids_ticks_and_rows(tmp_path: Path) -> None:
    """Stop and start `corral dev` in the same folder: no tick fires twice, job ids go on
    counting, and the jobs and execution rows of the first run are still there."""
    port = free_port()
    env = _env(port, CORRAL_ADMIN_TOKEN=TOKEN)
    base = f"http://127.0.0.1:{port}/api/admin"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Dev(tmp_path, env) as first:
        first.wait_for("admin token")
        created = httpx.post(
            f"{base}/scheduled-jobs",
            headers=auth,
            json={
                "name": "every two seconds",
                "handlerName": "example-task",
                "cronExpression": "*/2 * * * * *",
                "timezone": "UTC",
                "payload": {"message": "tick"},
                "domain": "test",
            },
        )
        assert created.status_code == 201, created.text
        schedule = created.json()["id"]
        first.wait_for(f"completed (sched-{schedule}-\\d+)")
        assert first.stop() == 0
    before = first.completed()
    seed = [job_id for job_id in before if not job_id.startswith("sched-")]
    with Dev(tmp_path, env) as second:
        second.wait_for("admin token")
        # A tick after the restart has fired: the scheduler has settled the schedule.
        later = max(int(i.rsplit("-", 1)[1]) for i in before if i.startswith("sched-"))
        deadline = time.monotonic() + 30
        while not any(
            i.startswith(f"sched-{schedule}-") and int(i.rsplit("-", 1)[1]) > later
            for i in second.completed()
        ):
            assert time.monotonic() < deadline, second.output
            time.sleep(0.05)
        old_job = httpx.get(f"{base}/jobs/{seed[0]}", headers=auth)
        assert old_job.status_code == 200, old_job.text
        assert old_job.json()["state"] == "completed"
        rows = httpx.get(
            f"{base}/executions", headers=auth, params={"scheduleId": schedule, "limit": 500}
        ).json()["items"]
        # This schedule's ticks only: the example schedule fires at each minute too.
        first_ticks = {i for i in before if i.startswith(f"sched-{schedule}-")}
        assert first_ticks
        assert first_ticks <= {row["executionId"] for row in rows}
        assert second.stop() == 0
    twice = [i for i, n in Counter(before + second.completed()).items() if n > 1]
    assert not twice, f"ran twice: {twice}\n{first.output}\n{second.output}"


@pytest.mark.timeout(120)
def test_dev_with_your_handlers_and_a_second_worker(tmp_path: Path) -> None:
    """`corral dev --handlers shop --no-examples` from the folder holding shop/, no
    PYTHONPATH; a second `corral worker` joins with the printed REDIS_URL and runs jobs."""
    make_shop(tmp_path)
    (tmp_path / "shop" / "who.py").write_text(
        "import os, time\n"
        "from corral import Job, job_handler\n\n\n"
        "@job_handler('whoami')\n"
        "def whoami(job: Job) -> int:\n"
        "    time.sleep(0.3)\n"
        "    return os.getpid()\n"
    )
    port = free_port()
    env = _env(free_port(), CORRAL_ADMIN_TOKEN=TOKEN, CORRAL_CONCURRENCY="1")
    base = f"http://127.0.0.1:{port}/api/admin"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Dev(tmp_path, env, "--handlers", "shop", "--no-examples", "--port", str(port)) as dev:
        redis_url = dev.wait_for(r"REDIS_URL=(redis://\S+)").group(1)
        dev.wait_for("admin token")
        assert "example jobs" not in dev.output
        schedules = httpx.get(f"{base}/scheduled-jobs", headers=auth).json()
        assert schedules["total"] == 0
        jobs = f"{base}/queues/corral/jobs"
        job = httpx.post(jobs, headers=auth, json={"name": "shop-checkout", "data": {"cart": 2}})
        assert job.status_code == 201, job.text
        dev.wait_for(f"completed {job.json()['id']}: .*paid")
        worker_env = {**env, "REDIS_URL": redis_url}
        second = subprocess.Popen(
            [CORRAL, "worker", "--handlers", "shop"],
            cwd=tmp_path,
            env=worker_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            pids: set[str] = set()
            while str(second.pid) not in pids:
                assert time.monotonic() < deadline, dev.output
                assert second.poll() is None
                for _ in range(2):
                    added = httpx.post(jobs, headers=auth, json={"name": "whoami", "data": {}})
                    assert added.status_code == 201, added.text
                time.sleep(0.5)
                pids = {m.group(1) for m in re.finditer(r"completed \S+: (\d+)", dev.output)}
        finally:
            second.terminate()
            second.wait(timeout=30)
        assert "  failed " not in dev.output, dev.output
        assert dev.stop() == 0
