"""What a ``corral worker`` process loads: never the API server, the dashboard, Alembic or
rich; never SQLAlchemy (the execution log is written through the driver) and no SQL driver at
all without the execution log. And the loop it runs on: uvloop when it is
installed, asyncio's own with CORRAL_UVLOOP=false.

Structural checks (module names), not timings: loading less is what makes a worker small and
quick to start, and one stray import at module level would undo it."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from corral import JobQueueManager
from tests.support.processes import joining_env, worker_in
from tests.support.waiting import eventually

#: Never in a worker: HTTP server and framework, dashboard rendering, migrations, metrics export,
#: and pydantic (with pydantic-settings it cost a worker ~11 MiB and ~45 ms to read its settings).
NEVER = {
    "fastapi",
    "starlette",
    "uvicorn",
    "alembic",
    "mako",
    "rich",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "dotenv",
}
#: Never in a worker either: its execution log writes through the driver alone.
ENGINE = {"sqlalchemy"}
#: Only in a worker that writes the execution log.
SQL = {"aiosqlite", "asyncpg"}
#: Modules (full names) a worker has no use for: the scheduler's cron and fire code (about
#: 12 ms of its start-up).
UNUSED_MODULES = {"corral.core.schedules", "corral.core.cron", "corral.adapters.bullmq.fires"}

PROBE = """
import asyncio
import json
import os
import sys

from corral import Job, job_handler


@job_handler("report-process")
async def report(job: Job) -> None:
    loop = type(asyncio.get_running_loop())
    with open(job.data["path"] + ".part", "w") as out:
        json.dump({"modules": sorted(sys.modules), "loop": loop.__module__}, out)
    os.replace(job.data["path"] + ".part", job.data["path"])
"""


def _loaded(modules: list[str], tops: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules} & tops


def test_the_worker_command_imports_no_server_migration_or_sql_code() -> None:
    """What ``corral worker`` imports before it connects: the console script, the worker, the
    handler API and the settings."""
    code = (
        "import json, sys\n"
        "import corral.cli.main, corral.worker\n"
        "from corral import Job, job_handler\n"
        "from corral.settings import load_settings\n"
        "load_settings()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "LOG_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert _loaded(json.loads(out), NEVER | ENGINE | SQL) == set()
    assert UNUSED_MODULES.isdisjoint(json.loads(out))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("execution_log", [False, True], ids=["log-off", "log-on"])
async def test_a_running_worker_loads_only_what_it_runs(
    tmp_path: Path, qm: JobQueueManager, execution_log: bool
) -> None:
    """The log-on worker finds the schema current (the fixture migrated it), so it must load
    neither Alembic nor SQLAlchemy, only SQLite's driver; it runs with CORRAL_UVLOOP=false,
    the other with the default."""
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "__init__.py").write_text("")
    (tmp_path / "probe" / "tasks.py").write_text(PROBE)
    report = tmp_path / "report.json"
    env = joining_env(qm, CORRAL_EXECUTION_LOG=str(execution_log).lower())
    if execution_log:
        env["CORRAL_UVLOOP"] = "false"
    else:
        env.pop("CORRAL_UVLOOP", None)
    await qm.add_job("report-process", {"path": str(report)})
    proc = worker_in(tmp_path, env, "probe")

    async def reported_or_exited() -> bool:
        return report.exists() or proc.poll() is not None

    try:
        await eventually(reported_or_exited, until=bool, timeout_s=30)
        assert proc.poll() is None, proc.communicate()[0].decode()
        found = json.loads(report.read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 0, output
    modules = found["modules"]
    assert UNUSED_MODULES.isdisjoint(modules)
    if execution_log:
        assert _loaded(modules, NEVER | ENGINE) == set()
        assert "aiosqlite" in modules  # the execution-log path did run
        assert found["loop"].startswith("asyncio")
    else:
        assert _loaded(modules, NEVER | ENGINE | SQL) == set()
        uvloop = importlib.util.find_spec("uvloop") is not None
        assert found["loop"].startswith("uvloop" if uvloop else "asyncio")
