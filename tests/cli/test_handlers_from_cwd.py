"""``corral worker --handlers shop`` run from the folder that holds ``shop/`` finds it without
PYTHONPATH, as Celery, RQ and arq do."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import JobQueueManager
from tests.support.processes import joining_env, worker_in
from tests.support.waiting import eventually

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
    job_id = await qm.add_job("shop-checkout", {"cart": 3})
    proc = worker_in(tmp_path, joining_env(qm), "shop")
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
