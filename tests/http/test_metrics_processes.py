"""/metrics counts what two separate worker processes ran (cluster-wide, not per process)."""

from __future__ import annotations

import signal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from corral import JobQueueManager
from tests.support.processes import corral_env, worker_process
from tests.support.waiting import eventually


def _samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name
            if sample.labels.get("state"):
                key += "{" + sample.labels["state"] + "}"
            found[key] = sample.value
    return found


async def test_metrics_count_both_worker_processes(
    api: httpx.AsyncClient,
    qm: JobQueueManager,
    redis_url: str,
    queue_name: str,
    database_url: str,
) -> None:
    env = corral_env(redis_url, queue_name, database_url)
    with (
        worker_process(env, "--concurrency", "4") as w1,
        worker_process(env, "--concurrency", "4") as w2,
    ):
        await eventually(qm.get_queue_status, until=lambda s: len(s["workers"]) == 2, timeout_s=20)
        alive = _samples((await api.get("/metrics")).text)
        assert alive["corral_workers_alive"] == 2
        await qm.add_bulk_jobs([{"name": "noop"} for _ in range(120)])
        await qm.add_bulk_jobs([{"name": "fail", "options": {"attempts": 1}} for _ in range(7)])

        async def scrape() -> dict[str, float]:
            answer = await api.get("/metrics")
            assert answer.status_code == 200
            return _samples(answer.text)

        figures = await eventually(
            scrape,
            until=lambda f: (
                f.get("corral_jobs_completed_total") == 120
                and f.get("corral_jobs_failed_total") == 7
            ),
            timeout_s=30,
        )
        for proc in (w1, w2):
            proc.send_signal(signal.SIGTERM)
        for proc in (w1, w2):
            assert proc.wait(timeout=20) == 0
    assert figures["corral_queue_jobs{completed}"] == 120
    assert figures["corral_queue_jobs{failed}"] == 7
    assert figures["corral_job_processing_seconds_count"] == 127
