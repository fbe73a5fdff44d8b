"""A handler that does not stop when shutdown's deadline cuts it off: the shutdown still ends.

Not a Redis fault, but slow (the worker gives a cut-off attempt its 15 s socket timeout, and
bullmq's own close then waits for the handler), so it runs with the fault tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from corral import JobQueueManager
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault


async def _entries(ledger: Any) -> list[dict[str, Any]]:
    return list(ledger.entries())


@pytest.mark.timeout(120)
async def test_the_shutdown_deadline_holds_against_a_handler_that_will_not_stop(
    qm: JobQueueManager, ledger: Any
) -> None:
    """Cut off at the deadline, the handler spends 25 s cleaning up before it gives in. The
    lock renewals wait for running jobs only until the deadline, so the shutdown ends without
    it (it hung for as long as the handler ran when they waited for every job), and the job is
    back in the queue."""
    job_id = await qm.add_job("stubborn", {"ledger": ledger.name, "cleanup": 25})
    await qm.start_worker()
    await eventually(lambda: _entries(ledger), until=lambda e: len(e) == 1)
    assert await asyncio.wait_for(qm.graceful_shutdown(500), 22) is False
    other = JobQueueManager(qm.settings)
    try:
        assert (await other.get_job(job_id)).state in ("waiting", "prioritized")
    finally:
        await other.graceful_shutdown(0)
