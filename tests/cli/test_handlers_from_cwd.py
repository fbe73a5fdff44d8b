"""``corral worker --handlers shop`` run from the folder that holds ``shop/`` finds it without
PYTHONPATH, as Celery, RQ and arq do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral import JobQueueManager
from tests.support.waiting import eventually

CORRAL = str(Path(sys.executable).parent / "corral")

SHOP = """
from corral import Job, job_handler


@job_handler("shop-checkout")
def checkout(job: Job) -> dict[str, object]:
    return {"paid": job.data["cart"]}
"""


def make_shop(folder: Path) -> None:
    """A tiny handlers package, ``shop``, in ``folder``."""
    (folder / "shop").mkdir()
    (folder / "shop" / "__init__.py").write_text("")
    (folder / "shop" / "tasks.py").write_text(SHOP)


@pytest.mark.timeout(60)
async def test_worker_finds_a_handlers_package_in_the_current_folder(
    tmp_path: Path, qm: JobQueueManager
) -> None:
    make_shop(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        REDIS_URL=qm.settings.redis_url.get_secret_value(),
        DATABASE_URL=qm.settings.database_url.get_secret_value(),
        CORRAL_QUEUE=qm.queue_name,
        CORRAL_PREFIX=qm.settings.prefix,
    )
    job_id = await qm.add_job("shop-checkout", {"cart": 3})
    proc = subprocess.Popen(
        [CORRAL, "worker", "--handlers", "shop"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        job = await eventually(
            lambda: qm.get_job(job_id),
            until=lambda j: j.state in ("completed", "failed") or proc.poll() is not None,
            timeout_s=30,
        )
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert job.state == "completed", job
        assert job.result == {"paid": 3}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
