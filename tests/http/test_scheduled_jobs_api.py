"""The scheduled-jobs API against RELIABILITY.md's bad-input table, on SQLite AND PostgreSQL:
422 naming the field (camelCase), nothing stored; plus the happy path."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from corral.core.executions import MissedTicks, missed_record
from corral.http.app import create_app
from corral.http.names import to_camel
from corral.settings import CorralSettings
from tests.http.test_execution_routes import BAD_PARAMS as EXEC_BAD_PARAMS
from tests.integration.sql_conftest import PG_URL, require_postgres
from tests.integration.test_schedule_validation import BAD_ROWS

TOKEN = "api-test-token"  # noqa: S105 - a test value
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VALID: dict[str, Any] = {
    "name": "Daily backup",
    "description": "full backup",
    "handlerName": "record",
    "cronExpression": "0 2 * * *",
    "timezone": "Asia/Shanghai",
    "payload": {"backupType": "full"},
    "retryAttempts": 3,
    "timeout": 300000,
    "domain": "ops",
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def app_on_db(
    request: pytest.FixtureRequest, settings: CorralSettings, tmp_path: Path
) -> AsyncIterator[Any]:
    """The app on a fresh SQLite file or a fresh PostgreSQL database."""
    root = None
    name = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    else:
        require_postgres()
        root = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with root.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    app = create_app(
        settings.model_copy(
            update={"database_url": SecretStr(url), "admin_token": SecretStr(TOKEN)}
        )
    )
    app.state.scheduler._handlers = ["tests.support.it_handlers"]
    await app.state.scheduler._rt.migrate()
    try:
        yield app
    finally:
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()
        if root is not None:
            async with root.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await root.dispose()


@pytest.fixture
async def client(app_on_db: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_on_db), base_url="http://t", headers=AUTH
    ) as c:
        yield c


async def _count(client: httpx.AsyncClient) -> int:
    answer = await client.get("/api/admin/scheduled-jobs")
    assert answer.status_code == 200
    return int(answer.json()["total"])


_JSON_SAFE = [
    (f, v)
    for f, v in BAD_ROWS
    if not (
        isinstance(v, float)
        or (isinstance(v, dict) and any(isinstance(x, float) for x in v.values()))
    )
]


@pytest.mark.parametrize(
    ("field", "value"), _JSON_SAFE, ids=[f"{f}={v!r}"[:50] for f, v in _JSON_SAFE]
)
async def test_bad_field_answers_422_naming_it(
    client: httpx.AsyncClient, field: str, value: Any
) -> None:
    # the Python API's unknown-field rows, as the API's unknown fields: snake_case, typos,
    # read-only fields
    unknown = {
        "handlerName": "handler_name",
        "cronExpresion": "cronExpresion",
        "id": "id",
        "created_at": "createdAt",
    }
    wire = unknown.get(field, to_camel(field))
    body = {**VALID, wire: value}
    # json.dumps escapes lone surrogates as \udXXX, as a hostile client would send them
    answer = await client.post(
        "/api/admin/scheduled-jobs",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"].split(".")[0].split("[")[0] == wire, error
    assert wire in error["message"]
    assert await _count(client) == 0


@pytest.mark.parametrize("raw", [b'{"name": NaN}', b'{"payload": {"x": Infinity}}'])
async def test_nan_and_infinity_are_rejected(client: httpx.AsyncClient, raw: bytes) -> None:
    body = (
        raw.replace(b"{", b'{"handlerName":"record","cronExpression":"* * * * *","domain":"d",', 1)
        if b"payload" in raw
        else raw
    )
    answer = await client.post(
        "/api/admin/scheduled-jobs", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code in (400, 422), answer.text
    assert await _count(client) == 0


async def test_transport_errors(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/admin/scheduled-jobs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    answer = await client.post(
        "/api/admin/scheduled-jobs", content=b"", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == {"field": "body", "message": "body: required"}
    answer = await client.post(
        "/api/admin/scheduled-jobs",
        content=b"x" * (2 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["message"] == (
        f"request body is {2 * 1024 * 1024} bytes; the limit is {1024 * 1024} bytes"
    )
    assert await _count(client) == 0


async def test_create_paused_by_name(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/admin/scheduled-jobs", json={**VALID, "status": "paused"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == 2
    assert created.json()["nextFires"] == []


async def test_create_read_patch_run_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/admin/scheduled-jobs", json=VALID)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["handlerName"] == "record"
    assert job["retryDelay"] == 5000
    assert job["priority"] == 5
    assert len(job["nextFires"]) == 5
    job_id = job["id"]
    got = await client.get(f"/api/admin/scheduled-jobs/{job_id}")
    assert got.json()["name"] == "Daily backup"
    patched = await client.patch(f"/api/admin/scheduled-jobs/{job_id}", json={"status": 2})
    assert patched.status_code == 200
    assert patched.json()["status"] == 2
    assert patched.json()["nextFires"] == []
    for bad in ({}, {"status": None}, {"status": 3}, {"createdAt": "x"}, {"id": job_id}):
        answer = await client.patch(f"/api/admin/scheduled-jobs/{job_id}", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    for name, number in (("enabled", 1), ("paused", 2)):
        named = await client.patch(f"/api/admin/scheduled-jobs/{job_id}", json={"status": name})
        assert named.status_code == 200, named.text
        assert named.json()["status"] == number
    for bad_status in ("sometimes", 1.0, True):
        answer = await client.patch(
            f"/api/admin/scheduled-jobs/{job_id}", json={"status": bad_status}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"] == "status"
        message = answer.json()["error"]["message"]
        assert message.startswith("status: must be"), message
        assert "'paused' (2)" in message, message
    run = await client.post(f"/api/admin/scheduled-jobs/{job_id}/run")
    assert run.status_code == 202
    assert run.json()["executionId"].startswith(f"manual-{job_id}-")
    listed = await client.get("/api/admin/scheduled-jobs", params={"status": 2, "search": "backup"})
    assert listed.json()["total"] == 1
    deleted = await client.delete(f"/api/admin/scheduled-jobs/{job_id}")
    assert deleted.status_code == 204
    assert (await client.get(f"/api/admin/scheduled-jobs/{job_id}")).status_code == 404
    assert (
        await client.patch(f"/api/admin/scheduled-jobs/{job_id}", json={"status": 1})
    ).status_code == 404


@pytest.mark.parametrize("bad_id", ["abc", "1", "..", "00000000-0000-4000-8000-00000000000g"])
async def test_malformed_ids_are_422_and_unknown_ids_404(
    client: httpx.AsyncClient, bad_id: str
) -> None:
    assert (await client.get(f"/api/admin/scheduled-jobs/{bad_id}")).status_code in (404, 422)
    unknown = await client.get(f"/api/admin/scheduled-jobs/{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"].startswith("scheduled job")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": 1000000},
        {"limit": "abc"},
        {"offset": -5},
        {"status": 3},
        {"sort": "password"},
        {"sort": "name;DROP TABLE system_scheduled_jobs"},
        {"order": "sideways"},
    ],
)
async def test_bad_list_params_are_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    answer = await client.get("/api/admin/scheduled-jobs", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == next(iter(params))


async def test_injection_looking_filters_are_plain_values(client: httpx.AsyncClient) -> None:
    await client.post("/api/admin/scheduled-jobs", json=VALID)
    for params in (
        {"domain": "1' OR '1'='1"},
        {"search": "%' UNION SELECT 1 --"},
        {"handlerName": "x'; DROP TABLE system_scheduled_jobs; --"},
    ):
        answer = await client.get("/api/admin/scheduled-jobs", params=params)
        assert answer.status_code == 200
        assert answer.json()["total"] == 0
    assert await _count(client) == 1


async def test_cron_preview(client: httpx.AsyncClient) -> None:
    good = await client.post(
        "/api/admin/cron/preview",
        json={"cronExpression": "0 30 2 * * *", "timezone": "America/New_York", "count": 3},
    )
    assert good.status_code == 200
    assert len(good.json()["nextFires"]) == 3
    for body, field in [
        ({"cronExpression": "*/0 * * * * *"}, "cronExpression"),
        ({"cronExpression": "0-99999999/1 * * * *"}, "cronExpression"),
        ({"cronExpression": "x" * 10_000}, "cronExpression"),
        ({"cronExpression": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"cronExpression": "* * * * *", "count": 0}, "count"),
    ]:
        answer = await client.post("/api/admin/cron/preview", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("params", "field"), EXEC_BAD_PARAMS, ids=[str(p) for p, _ in EXEC_BAD_PARAMS]
)
async def test_execution_log_params_on_both_databases(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await client.get("/api/admin/executions", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


async def test_execution_log_injection_values_are_plain(client: httpx.AsyncClient) -> None:
    for params in (
        {"handlerName": "x'; DROP TABLE system_job_execution_logs; --"},
        {"status": "completed", "handlerName": "' OR '1'='1"},
    ):
        answer = await client.get("/api/admin/executions", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"] == 0
    assert (await client.get("/api/admin/executions")).status_code == 200


async def test_missed_rows_are_listed_with_their_figures(
    app_on_db: Any, client: httpx.AsyncClient
) -> None:
    """A skipped range (the row the scheduler writes) in the executions list, its status filter,
    the schedule's executions and the schedule's last run, with how many and from when to when."""
    created = await client.post("/api/admin/scheduled-jobs", json=VALID)
    assert created.status_code == 201, created.text
    schedule_id = uuid.UUID(created.json()["id"])
    first = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    missed = MissedTicks(count=3, first=first, last=first + timedelta(days=2))
    row = missed_record(
        schedule_id, missed, handler_name="record", queue="q", recorded_at=datetime.now(UTC)
    )
    await app_on_db.state.scheduler._rt.execution_log().upsert_many([row])

    expected = {"ticks": 3, "first": "2026-11-29T18:00:00Z", "last": "2026-12-01T18:00:00Z"}
    listed = await client.get("/api/admin/executions", params={"status": "missed"})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    print("missed row:", items)
    assert [(i["status"], i["missed"]) for i in items] == [("missed", expected)]
    item = items[0]
    assert item["executionId"] == f"missed-{schedule_id}-{int(first.timestamp() * 1000)}"
    assert (item["jobId"], item["trigger"], item["startedAt"]) == (
        str(schedule_id),
        "schedule",
        None,
    )
    own = await client.get(f"/api/admin/scheduled-jobs/{schedule_id}/executions")
    assert [i["missed"] for i in own.json()["items"]] == [expected]
    detail = await client.get(f"/api/admin/scheduled-jobs/{schedule_id}")
    assert detail.json()["lastRun"]["missed"] == expected
    others = await client.get("/api/admin/executions", params={"status": "completed"})
    assert others.json()["total"] == 0
