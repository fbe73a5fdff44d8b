"""``GET /api/admin/executions``: real executions written by an in-process worker, filtered,
sorted and paged; every bad query parameter is a 422 naming it, and nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from corral import JobQueueManager
from tests.support.waiting import eventually

URL = "/api/admin/executions"


async def _page(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await api.get(URL, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_executions_filter_sort_and_page(
    api: httpx.AsyncClient, qm: JobQueueManager, queue_name: str
) -> None:
    await qm.start_worker()  # with the execution log (SQLite of this test)
    base = f"/api/admin/queues/{queue_name}/jobs"
    for body in (
        {"name": "record", "data": {"tag": "one"}, "options": {"jobId": "r1"}},
        {"name": "record", "data": {"tag": "two", "sleep": 0.05}, "options": {"jobId": "r2"}},
        {"name": "fail", "options": {"jobId": "f1", "attempts": 1}},
    ):
        assert (await api.post(base, json=body)).status_code == 201
    schedule = await api.post(
        "/api/admin/scheduled-jobs",
        json={
            "name": "every day",
            "handlerName": "noop",
            "cronExpression": "0 0 3 * * *",
            "domain": "tests",
        },
    )
    assert schedule.status_code == 201, schedule.text
    schedule_id = schedule.json()["id"]
    run = await api.post(f"/api/admin/scheduled-jobs/{schedule_id}/run")
    assert run.status_code == 202, run.text

    everything = await eventually(
        lambda: _page(api),
        until=lambda p: (
            p["total"] == 4 and all(r["status"] in ("completed", "failed") for r in p["items"])
        ),
    )
    assert {r["executionId"] for r in everything["items"]} >= {"r1", "r2", "f1"}

    failed = await _page(api, status="failed")
    assert [r["executionId"] for r in failed["items"]] == ["f1"]
    assert "boom" in failed["items"][0]["errorMessage"]

    recorded = await _page(api, handlerName="record", sort="durationMs", order="asc")
    assert [r["executionId"] for r in recorded["items"]] == ["r1", "r2"]

    scheduled = await _page(api, scheduleId=schedule_id)
    assert scheduled["total"] == 1
    assert scheduled["items"][0]["jobId"] == schedule_id
    assert scheduled["items"][0]["trigger"] == "manual"

    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
    assert (await _page(api, **window))["total"] == 4
    assert (await _page(api, to="2000-01-01"))["total"] == 0
    assert (await _page(api, **{"from": "2000-01-01T00:00:00+08:00"}))["total"] == 4

    first = await _page(api, limit=2, offset=0, sort="startedAt")
    second = await _page(api, limit=2, offset=2, sort="startedAt")
    assert first["total"] == second["total"] == 4
    assert first["limit"] == 2
    assert second["offset"] == 2
    ids = [r["executionId"] for r in first["items"] + second["items"]]
    assert len(set(ids)) == 4


BAD_PARAMS: list[tuple[dict[str, str], str]] = [
    ({"limit": "0"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "1000000"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"offset": "-5"}, "offset"),
    ({"status": "done"}, "status"),
    ({"status": "1' OR '1'='1"}, "status"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2025-13-01"}, "to"),
    ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
    ({"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
    ({"sort": "password"}, "sort"),
    ({"sort": "name;DROP TABLE system_job_execution_logs"}, "sort"),
    ({"order": "sideways"}, "order"),
    ({"scheduleId": "abc"}, "scheduleId"),
    ({"handlerName": "x" * 65}, "handlerName"),
    ({"handlerName": "a\u0000b"}, "handlerName"),
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
async def test_bad_query_parameter_is_422_naming_it(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    before = await _page(api)
    answer = await api.get(URL, params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert field in error["message"]
    assert await _page(api) == before
