"""Queue and job routes end to end: add through the API, run a real worker in-process, look,
retry, delete, pause / resume / clean; and every bad input is a 422 (or 404) that changes
nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from corral import JobQueueManager
from corral.http.app import create_app
from corral.settings import CorralSettings
from tests.http.conftest import AUTH, admin_settings
from tests.support.waiting import eventually


async def _job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    answer = await api.get(f"/api/admin/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _in_state(api: httpx.AsyncClient, job_id: str, state: str, **extra: Any) -> Any:
    return await eventually(
        lambda: _job(api, job_id),
        until=lambda j: j["state"] == state and all(j[k] == v for k, v in extra.items()),
    )


async def test_add_run_inspect_retry_delete(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str, ledger: Any
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    ok = {
        "name": "record",
        "data": {"tag": "a", "ledger": ledger.name},
        "options": {"priority": 10, "jobId": "job-a", "attempts": 1, "removeOnComplete": False},
    }
    bad = {
        "name": "fail",
        "data": {"ledger": ledger.name},
        "options": {"jobId": "job-f", "attempts": 1, "backoff": {"type": "fixed", "delay": 0}},
    }
    for body, expected in ((ok, "job-a"), (bad, "job-f")):
        answer = await api.post(f"{base}/jobs", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"id": expected}

    waiting = await api.get(f"{base}/jobs", params={"state": "prioritized"})
    assert waiting.status_code == 200, waiting.text
    page = waiting.json()
    assert page["total"] == 2
    assert {j["id"] for j in page["items"]} == {"job-a", "job-f"}
    job = await _job(api, "job-a")
    assert job["priority"] == 10
    assert job["options"]["priority"] == 10  # Corral's scale, not BullMQ's inverted one
    assert job["data"]["tag"] == "a"
    assert job["maxAttempts"] == 1

    await qm.start_worker(execution_log=False)
    done = await _in_state(api, "job-a", "completed")
    assert done["result"]["tag"] == "a"
    assert done["finishedAt"] is not None
    failed = await _in_state(api, "job-f", "failed")
    assert "boom on attempt 1" in failed["failedReason"]

    completed = (await api.get(f"{base}/jobs", params={"state": "completed"})).json()
    assert [j["id"] for j in completed["items"]] == ["job-a"]

    # Only a failed job can be retried; a completed one is a conflict and stays as it is.
    answer = await api.post("/api/admin/jobs/job-a/retry")
    assert answer.status_code == 409
    assert "only failed jobs" in answer.json()["error"]["message"]
    assert (await _job(api, "job-a"))["state"] == "completed"

    answer = await api.post("/api/admin/jobs/job-f/retry")
    assert answer.status_code == 200, answer.text
    await _in_state(api, "job-f", "failed", attemptsMade=2)
    starts = [e for e in ledger.entries() if e["job_id"] == "job-f" and e["event"] == "start"]
    assert len(starts) == 2

    status = (await api.get(base)).json()
    assert status["name"] == queue_name
    assert len(status["workers"]) == 1
    assert status["counts"]["failed"] == 1

    assert (await api.delete("/api/admin/jobs/job-f")).status_code == 204
    missing = await api.get("/api/admin/jobs/job-f")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"]
    assert (await api.delete("/api/admin/jobs/job-f")).status_code == 404
    assert (await api.post("/api/admin/jobs/job-f/retry")).status_code == 404


async def test_pause_resume_clean(api: httpx.AsyncClient, queue_name: str) -> None:
    base = f"/api/admin/queues/{queue_name}"
    answer = await api.post(f"{base}/pause")
    assert answer.status_code == 200
    assert answer.json() == {"name": queue_name, "paused": True}
    assert (await api.get(base)).json()["paused"] is True
    for n in range(3):
        added = await api.post(f"{base}/jobs", json={"name": "noop", "data": {"n": n}})
        assert added.status_code == 201, added.text
    answer = await api.post(f"{base}/resume")
    assert answer.json() == {"name": queue_name, "paused": False}
    status = (await api.get(base)).json()
    assert status["paused"] is False
    assert status["counts"]["prioritized"] == 3

    cleaned = await api.post(
        f"{base}/clean", json={"graceMs": 0, "limit": 0, "status": "completed"}
    )
    assert cleaned.status_code == 200, cleaned.text
    assert cleaned.json() == {"removed": 0}
    assert (await api.get(base)).json()["counts"]["prioritized"] == 3


async def test_clean_removes_finished_jobs(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    for n in range(3):
        body = {"name": "noop", "data": {"n": n}, "options": {"removeOnComplete": False}}
        assert (await api.post(f"{base}/jobs", json=body)).status_code == 201
    await qm.start_worker(execution_log=False)
    await eventually(lambda: api.get(base), until=lambda r: r.json()["counts"]["completed"] == 3)
    # Jobs that finished a moment ago are younger than a one-hour grace: nothing goes.
    young = await api.post(f"{base}/clean", json={"graceMs": 3_600_000})
    assert young.json() == {"removed": 0}
    cleaned = await api.post(f"{base}/clean", json={"graceMs": 0, "limit": 2})
    assert cleaned.json() == {"removed": 2}
    assert (await api.get(base)).json()["counts"]["completed"] == 1


async def test_unknown_queue_is_404_and_adds_nothing(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any
) -> None:
    before = queue_keys()
    for method, path, body in [
        ("GET", "/api/admin/queues/nope", None),
        ("POST", "/api/admin/queues/nope/pause", None),
        ("POST", "/api/admin/queues/nope/resume", None),
        ("POST", "/api/admin/queues/nope/clean", {"graceMs": 0}),
        ("GET", "/api/admin/queues/nope/jobs", None),
        ("POST", "/api/admin/queues/nope/jobs", {"name": "noop"}),
    ]:
        answer = await api.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        assert "not found" in answer.json()["error"]["message"]
    assert queue_keys() == before
    assert (await api.get(f"/api/admin/queues/{queue_name}")).json()["paused"] is False


BAD_JOBS: list[tuple[Any, str]] = [
    ({"name": "record", "options": {"priority": 0}}, "options.priority"),
    ({"name": "record", "options": {"priority": 21}}, "options.priority"),
    ({"name": "record", "options": {"priority": 1.5}}, "options.priority"),
    ({"name": "record", "options": {"timeout": 0}}, "options.timeout"),
    ({"name": "record", "options": {"delay": -1}}, "options.delay"),
    ({"name": "record", "options": {"attempts": 0}}, "options.attempts"),
    ({"name": "record", "options": {"prio": 1}}, "options.prio"),
    ({"name": "record", "options": {"job_id": "x1"}}, "options.job_id"),
    ({"name": "record", "options": {"jobId": "123"}}, "options.jobId"),
    ({"name": "record", "options": {"jobId": "a:b"}}, "options.jobId"),
    ({"name": "record", "options": {"jobId": "wait"}}, "options.jobId"),
    ({"name": "record", "options": {"jobId": "meta"}}, "options.jobId"),
    ({"name": "record", "options": {"jobId": "stalled-check"}}, "options.jobId"),
    ({"name": "record", "options": {"category": ""}}, "options.category"),
    ({"name": "record", "options": {"category": "bill\u202eing"}}, "options.category"),
    ({"name": "record", "options": {"backoff": {"type": "linear"}}}, "options.backoff.type"),
    (
        {"name": "record", "options": {"removeOnComplete": {"count": -1}}},
        "options.removeOnComplete.count",
    ),
    ({"name": "os.system"}, "name"),
    ({"name": ""}, "name"),
    ({"name": 123}, "name"),
    ({"data": {}}, "name"),
    ({"name": "record", "data": [1]}, "data"),
    ({"name": "record", "data": {"s": "a\u0000b"}}, "data.s"),
    ({"name": "record", "data": {"deep": {"x": "y" * 600_000}}}, "data"),
    ({"name": "record", "extra": 1}, "extra"),
    ({"name": "record", "options": []}, "options"),
]


@pytest.mark.parametrize(("body", "field"), BAD_JOBS)
async def test_bad_job_is_422_naming_the_field_and_nothing_is_enqueued(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any, body: Any, field: str
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    before = queue_keys()
    answer = await api.post(f"{base}/jobs", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert error["message"].startswith(field) or field in error["message"]
    assert queue_keys() == before


async def test_the_job_data_limit_is_the_setting(
    settings: CorralSettings, queue_name: str, queue_keys: Any
) -> None:
    app = create_app(admin_settings(settings, max_job_data_bytes=2048))
    await app.state.scheduler._rt.migrate()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as api:
            base = f"/api/admin/queues/{queue_name}/jobs"
            fits = {"blob": "x" * 2000}
            assert (await api.post(base, json={"name": "noop", "data": fits})).status_code == 201
            before = queue_keys()
            data = {"blob": "x" * 3000}
            answer = await api.post(base, json={"name": "noop", "data": data})
            assert answer.status_code == 422, answer.text
            size = len(json.dumps(data, separators=(",", ":")))
            assert answer.json()["error"] == {
                "field": "data",
                "message": f"data: is {size} bytes serialized; the limit is 2048 bytes",
            }
            schedule = {
                "name": "big",
                "handlerName": "noop",
                "cronExpression": "0 0 2 * * *",
                "domain": "ops",
                "payload": data,
            }
            answer = await api.post("/api/admin/scheduled-jobs", json=schedule)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == "payload"
            assert "the limit is 2048 bytes" in answer.json()["error"]["message"]
            assert queue_keys() == before
    finally:
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()


async def test_nan_in_data_is_422(api: httpx.AsyncClient, queue_name: str) -> None:
    answer = await api.post(
        f"/api/admin/queues/{queue_name}/jobs",
        content=b'{"name": "record", "data": {"x": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "data.x"


@pytest.mark.parametrize(
    "job_id",
    [
        "x" * 129,
        "a%01b",
        "a%7Fb",
        "a:b",
        "x:events",
        "%C2%A0",
        "a%E2%80%AEb",
        "meta",
        "id",
        "events",
        "stalled-check",
        "wait",
        "paused",
        "prioritized",
        "corral",
    ],
    ids=repr,
)
async def test_a_job_id_that_can_never_exist_is_404_and_touches_nothing(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any, job_id: str
) -> None:
    assert (
        await api.post(f"/api/admin/queues/{queue_name}/jobs", json={"name": "noop"})
    ).is_success
    before = queue_keys()
    for method, path in [
        ("GET", f"/api/admin/jobs/{job_id}"),
        ("POST", f"/api/admin/jobs/{job_id}/retry"),
        ("DELETE", f"/api/admin/jobs/{job_id}"),
    ]:
        answer = await api.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "not found" in answer.json()["error"]["message"]
    assert queue_keys() == before


async def test_deleting_job_meta_leaves_a_paused_queue_paused(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    assert (await api.post(f"{base}/jobs", json={"name": "noop"})).status_code == 201
    assert (await api.post(f"{base}/pause")).json()["paused"] is True
    before = queue_keys()
    assert (await api.delete("/api/admin/jobs/meta")).status_code == 404
    added = await api.post(f"{base}/jobs", json={"name": "noop", "options": {"jobId": "meta"}})
    assert added.status_code == 422
    assert (await api.get(base)).json()["paused"] is True
    assert queue_keys() == before


async def test_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/admin/jobs/no-such-job"),
        ("POST", "/api/admin/jobs/no-such-job/retry"),
        ("DELETE", "/api/admin/jobs/no-such-job"),
        ("GET", "/api/admin/jobs/999999"),
    ]:
        answer = await api.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["message"] == "job 'no-such-job' not found" or (
            "not found" in answer.json()["error"]["message"]
        )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "done"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
async def test_bad_job_listing_params_are_422(
    api: httpx.AsyncClient, queue_name: str, query: dict[str, str], field: str
) -> None:
    answer = await api.get(f"/api/admin/queues/{queue_name}/jobs", params=query)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "graceMs"),
        ({"graceMs": -1}, "graceMs"),
        ({"graceMs": "1"}, "graceMs"),
        ({"graceMs": 0, "limit": -1}, "limit"),
        ({"graceMs": 0, "limit": 10**12}, "limit"),
        ({"graceMs": 0, "status": "done"}, "status"),
        # an execution-log state with no queue jobs behind it
        ({"graceMs": 0, "status": "missed"}, "status"),
        ({"graceMs": 0, "grace": 1}, "grace"),
    ],
)
async def test_bad_clean_body_is_422_and_removes_nothing(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any, body: Any, field: str
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    assert (await api.post(f"{base}/jobs", json={"name": "noop"})).status_code == 201
    before = queue_keys()
    answer = await api.post(f"{base}/clean", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert queue_keys() == before


async def test_throughput_counts_finished_jobs_per_minute(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    empty = await api.get(f"{base}/throughput")
    assert empty.status_code == 200, empty.text
    body = empty.json()
    assert body["queue"] == queue_name
    assert body["intervalSeconds"] == 60
    assert len(body["points"]) == 60
    assert all(p["completed"] == 0 and p["failed"] == 0 for p in body["points"])
    starts = [datetime.fromisoformat(p["at"]) for p in body["points"]]
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + timedelta(minutes=1, seconds=5)

    for n in range(3):
        assert (await api.post(f"{base}/jobs", json={"name": "noop", "data": {"n": n}})).is_success
    for n in range(2):
        job = {"name": "fail", "data": {"n": n}, "options": {"attempts": 2, "backoff": 0}}
        assert (await api.post(f"{base}/jobs", json=job)).is_success
    await qm.start_worker(execution_log=False)

    def totals(answer: httpx.Response) -> tuple[int, int]:
        points = answer.json()["points"]
        return sum(p["completed"] for p in points), sum(p["failed"] for p in points)

    # A retried attempt is not a failure: each fail job counts once, when it fails for good.
    answer = await eventually(
        lambda: api.get(f"{base}/throughput", params={"minutes": 5}),
        until=lambda r: totals(r) == (3, 2),
    )
    assert len(answer.json()["points"]) == 5
    await asyncio.sleep(1.5)  # another flush or two: nothing is counted twice
    assert totals(await api.get(f"{base}/throughput", params={"minutes": 5})) == (3, 2)
    assert (await qm.get_metrics()).completed_jobs == 3


@pytest.mark.parametrize("minutes", ["0", "1441", "-1", "x", "1.5"])
async def test_bad_throughput_window_is_422(
    api: httpx.AsyncClient, queue_name: str, minutes: str
) -> None:
    answer = await api.get(
        f"/api/admin/queues/{queue_name}/throughput", params={"minutes": minutes}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "minutes"


async def test_job_detail_shows_the_newest_log_lines(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    for job_id, lines in (("many", 120), ("none", 0)):
        body = {"name": "chatty", "data": {"lines": lines}, "options": {"jobId": job_id}}
        assert (await api.post(f"{base}/jobs", json=body)).is_success
    await qm.start_worker(execution_log=False)
    many = await _in_state(api, "many", "completed")
    assert many["logCount"] == 120
    assert many["logs"] == [f"line {n}" for n in range(20, 120)]
    none = await _in_state(api, "none", "completed")
    assert (none["logs"], none["logCount"]) == ([], 0)
    listed = (await api.get(f"{base}/jobs", params={"state": "completed"})).json()["items"]
    assert listed
    assert all("logs" not in j for j in listed)


async def test_a_failure_names_its_exception_and_keeps_the_traceback(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``KeyError('width')`` reads as ``KeyError: 'width'``, not ``'width'``; the traceback is
    in the job, in the execution log row and in the worker's log line."""
    body = {"name": "key_error", "data": {}, "options": {"jobId": "kw", "attempts": 1}}
    assert (await api.post(f"/api/admin/queues/{queue_name}/jobs", json=body)).is_success
    with caplog.at_level("WARNING", logger="corral"):
        await qm.start_worker(execution_log=True)
        job = await _in_state(api, "kw", "failed")
    assert job["failedReason"] == "KeyError: 'width'"
    (trace,) = job["stacktrace"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'sizes["height"] = sizes["width"] * 2' in trace
    assert trace.rstrip().endswith("KeyError: 'width'")

    rows = await eventually(
        lambda: api.get("/api/admin/executions", params={"status": "failed"}),
        until=lambda r: r.json()["total"] == 1,
    )
    (row,) = rows.json()["items"]
    assert row["executionId"] == "kw"
    assert row["errorMessage"] == "KeyError: 'width'"
    assert 'sizes["width"]' in row["stacktrace"]
    assert row["enqueuedAt"] is not None

    (line,) = [r for r in caplog.records if getattr(r, "event", None) == "job.failed"]
    assert line.getMessage().endswith("failed: KeyError: 'width'")
    assert line.exc_info is not None
    assert line.exc_info[0] is KeyError


async def test_clean_waiting_removes_prioritized_jobs(
    api: httpx.AsyncClient, queue_name: str
) -> None:
    """Corral jobs always have a priority, so 'waiting' ones live in BullMQ's prioritized set."""
    base = f"/api/admin/queues/{queue_name}"
    for n in range(5):
        assert (await api.post(f"{base}/jobs", json={"name": "noop", "data": {"n": n}})).is_success
    cleaned = await api.post(f"{base}/clean", json={"graceMs": 0, "limit": 2, "status": "waiting"})
    assert cleaned.json() == {"removed": 2}
    cleaned = await api.post(f"{base}/clean", json={"graceMs": 0, "limit": 0, "status": "waiting"})
    assert cleaned.json() == {"removed": 3}
    counts = (await api.get(base)).json()["counts"]
    assert counts["prioritized"] == 0
    assert counts["waiting"] == 0


async def test_a_job_list_leaves_out_large_data_and_results_and_says_so(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str
) -> None:
    base = f"/api/admin/queues/{queue_name}"
    big = {"blob": "x" * 100_000}
    for n in range(8):
        body = {"name": "echo", "data": big, "options": {"jobId": f"big-{n}"}}
        assert (await api.post(f"{base}/jobs", json=body)).status_code == 201
    small = {"name": "echo", "data": {"tag": "s"}, "options": {"jobId": "small"}}
    assert (await api.post(f"{base}/jobs", json=small)).status_code == 201

    listed = await api.get(f"{base}/jobs", params={"state": "prioritized", "limit": 50})
    assert listed.status_code == 200, listed.text
    assert len(listed.content) < 9 * 8 * 1024  # not 8 x 100 KB
    items = {job["id"]: job for job in listed.json()["items"]}
    assert len(items) == 9
    for n in range(8):
        assert items[f"big-{n}"]["data"] is None
        assert items[f"big-{n}"]["truncated"] == ["data"]
    assert items["small"]["data"] == {"tag": "s"}
    assert items["small"]["truncated"] == []

    whole = await _job(api, "big-0")
    assert whole["data"] == big
    assert whole["truncated"] == []

    await qm.start_worker(execution_log=False)
    await eventually(lambda: api.get(base), until=lambda a: a.json()["counts"]["completed"] == 9)
    done = await api.get(f"{base}/jobs", params={"state": "completed"})
    assert len(done.content) < 9 * 8 * 1024
    finished = {job["id"]: job for job in done.json()["items"]}
    assert finished["big-3"]["result"] is None
    assert finished["big-3"]["truncated"] == ["data", "result"]
    assert finished["small"]["result"] == {"tag": "s"}
    assert (await _job(api, "big-3"))["result"] == big


def test_a_list_item_cuts_a_long_failure_reason_and_leaves_out_large_progress() -> None:
    from corral.http.routes.queues import LIST_TEXT_MAX_CHARS, list_item
    from corral.http.schemas import JobOut

    job = JobOut(
        id="j",
        name="fail",
        data={"a": 1},
        state="failed",
        priority=5,
        progress={"steps": ["x" * 100] * 100},
        attempts_made=1,
        max_attempts=1,
        failed_reason="E" * 50_000,
        result=None,
        created_at=datetime.now(UTC),
        processed_at=None,
        finished_at=None,
        options={},
    )
    item = list_item(job)
    assert item.truncated == ["progress", "failedReason"]
    assert item.progress is None
    assert item.failed_reason == "E" * LIST_TEXT_MAX_CHARS + "…"
    assert item.data == {"a": 1}
