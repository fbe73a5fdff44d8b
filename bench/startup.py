"""How quickly a ``corral worker`` starts and how big it is at its first job, with the execution
log on (SQLite, the default) and off.

Run from the repository root::

    .venv/bin/python bench/startup.py [--repeat 5] [--no-uvloop]
    /other/checkout/.venv/bin/python bench/startup.py     # the same for that checkout's Corral

Each start: one job is queued on a fresh queue, then ``corral worker`` (run by this Python, as
the console script does) is spawned with a one-handler package written to a temporary folder.
At its first job the handler records ``time.time()``, the process's CPU time (``os.times()``),
VmRSS and the number of modules loaded; then the worker gets SIGTERM. Reported per mode, as
median (min-max): spawn -> first job (wall), the worker's CPU until then, RSS at the first job,
modules. Also the wall and CPU time of importing what ``corral worker`` imports before it
connects. One untimed start per mode comes first (it also migrates the log's schema).

Keys live under the prefix ``startup-<pid>`` and are deleted at the end (SCAN + DEL). Where
PYTHONDONTWRITEBYTECODE is set and Corral runs from a checkout, compile it first
(``python -m compileall -q src``): otherwise every start compiles Corral's sources again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from corral import JobQueueManager
from corral.settings import load_settings

#: What the ``corral`` console script runs, on this Python (a copied venv's script may not).
CORRAL = [sys.executable, "-c", "from corral.cli.main import main; main()"]
HANDLERS = """
import asyncio, json, os, sys, time

from corral import Job, job_handler


@job_handler("startup-probe")
async def probe(job: Job) -> None:
    now = time.time()
    cpu = os.times()
    with open("/proc/self/status") as status:
        memory = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status)
                  if k in ("VmRSS", "VmHWM")}
    report = {"t": now, "cpu_s": cpu.user + cpu.system, "rss_kib": memory["VmRSS"],
              "modules": len(sys.modules), "loop": type(asyncio.get_running_loop()).__module__}
    with open(job.data["out"] + ".part", "w") as out:
        json.dump(report, out)
    os.replace(job.data["out"] + ".part", job.data["out"])
"""
IMPORTS = (
    "import os, time\n"
    "t = time.perf_counter()\n"
    "import corral.cli.main, corral.worker\n"
    "from corral.settings import load_settings\n"
    "load_settings()\n"
    "c = os.times()\n"
    "print(time.perf_counter() - t, c.user + c.system)\n"
)


async def _enqueue(redis_url: str, prefix: str, queue: str, out: Path) -> None:
    qm = JobQueueManager(
        load_settings(redis_url=redis_url, prefix=prefix, queue=queue, execution_log=False)
    )
    try:
        await qm.add_job("startup-probe", {"out": str(out)})
    finally:
        await qm.graceful_shutdown(1000)


def one_start(folder: Path, env: dict[str, str], queue: str, timeout_s: float) -> dict[str, float]:
    out = folder / f"{queue}.json"
    asyncio.run(_enqueue(env["REDIS_URL"], env["CORRAL_PREFIX"], queue, out))
    log = folder / f"{queue}.log"
    with log.open("wb") as output:
        spawned = time.time()
        proc = subprocess.Popen(
            [*CORRAL, "worker", "--handlers", "startup_probe", "--queue", queue],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            while not out.exists():
                if proc.poll() is not None or time.time() - spawned > timeout_s:
                    raise RuntimeError(f"worker gave no report: {log.read_text()[-2000:]}")
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    report = json.loads(out.read_text())
    return {
        "first_job_s": report["t"] - spawned,
        "cpu_s": report["cpu_s"],
        "rss_mib": report["rss_kib"] / 1024,
        "modules": report["modules"],
    }


def import_cost() -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True
    ).stdout
    wall, cpu = map(float, out.split())
    return {"wall_s": wall, "cpu_s": cpu}


def cell(values: list[float], digits: int) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--no-uvloop", action="store_true", help="CORRAL_UVLOOP=false")
    parser.add_argument("--timeout", type=float, default=60.0, help="per start, s")
    args = parser.parse_args()
    prefix = f"startup-{os.getpid()}"
    results: dict[str, list[dict[str, float]]] = {"log off": [], "log on": [], "imports": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "startup_probe").mkdir()
        (folder / "startup_probe" / "__init__.py").write_text(HANDLERS)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        base.update(REDIS_URL=args.redis_url, CORRAL_PREFIX=prefix, LOG_LEVEL="warning")
        if args.no_uvloop:
            base["CORRAL_UVLOOP"] = "false"
        modes = {
            "log off": {**base, "CORRAL_EXECUTION_LOG": "false"},
            "log on": {**base, "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'corral.db'}"},
        }
        try:
            for mode, env in modes.items():  # warm-up, not counted: migrates the log's schema
                one_start(folder, env, f"warm-{mode.replace(' ', '-')}", args.timeout)
            for i in range(args.repeat):
                results["imports"].append(import_cost())
                for mode, env in modes.items():
                    queue = f"q{i}-{mode.replace(' ', '-')}"
                    results[mode].append(one_start(folder, env, queue, args.timeout))
        finally:
            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()
    print(f"corral at {Path(sys.modules['corral'].__file__ or '').parent}, {args.repeat} starts")
    imports = results["imports"]
    print(
        f"imports of `corral worker` + settings: wall {cell([r['wall_s'] for r in imports], 3)} s, "
        f"CPU {cell([r['cpu_s'] for r in imports], 2)} s"
    )
    for mode in ("log off", "log on"):
        rows = results[mode]
        print(
            f"{mode}: spawn -> first job {cell([r['first_job_s'] for r in rows], 3)} s, "
            f"CPU {cell([r['cpu_s'] for r in rows], 2)} s, "
            f"RSS {cell([r['rss_mib'] for r in rows], 1)} MiB, "
            f"modules {cell([r['modules'] for r in rows], 0)}"
        )


if __name__ == "__main__":
    main()
