"""The scheduled-jobs API against every bad input of a schedule field, on SQLite AND PostgreSQL:
422 naming the field (camelCase), nothing stored; plus the happy path."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from corral.core.executions import MissedTicks, missed_record
from corral.core.schedules import ScheduledJob
from corral.http.app import create_app
from corral.http.names import to_camel
from corral.scheduler import TaskScheduler
from corral.settings import CorralSettings, Secret
from tests.http.test_execution_routes import BAD_PARAMS as EXEC_BAD_PARAMS
from tests.integration.sql_conftest import PG_URL, require_postgres
from tests.integration.test_schedule_validation import BAD_ROWS
from tests.support.waiting import eventually

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


@asynccontextmanager
async def _app_on(
    kind: str, settings: CorralSettings, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app on a fresh database of ``kind`` behind a client, and the app."""
    root = None
    name = f"t_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    else:
        require_postgres()
        root = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with root.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    app = create_app(
        settings.replace(**{"database_url": Secret(url), "admin_token": Secret(TOKEN)})
    )
    app.state.scheduler._handlers = ["tests.support.it_handlers"]
    await app.state.scheduler._rt.migrate()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH
        ) as c:
            yield c, app
    finally:
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()
        if root is not None:
            async with root.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await root.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def client(
    request: pytest.FixtureRequest, settings: CorralSettings, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with _app_on(request.param, settings, tmp_path) as (c, _app):
        yield c


@pytest.fixture(params=["sqlite", "postgresql"])
async def client_app(
    request: pytest.FixtureRequest, settings: CorralSettings, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    async with _app_on(request.param, settings, tmp_path) as pair:
        yield pair


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
    client_app: tuple[httpx.AsyncClient, Any],
) -> None:
    """A skipped range (the row the scheduler writes) in the executions list, its status filter,
    the schedule's executions and the schedule's last run, with how many and from when to when."""
    client, app = client_app
    created = await client.post("/api/admin/scheduled-jobs", json=VALID)
    assert created.status_code == 201, created.text
    schedule_id = uuid.UUID(created.json()["id"])
    first = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    missed = MissedTicks(count=3, first=first, last=first + timedelta(days=2))
    row = missed_record(
        schedule_id, missed, handler_name="record", queue="q", recorded_at=datetime.now(UTC)
    )
    await app.state.scheduler._rt.execution_log().upsert_many([row])

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


# -- concurrent PATCHes (D3) --------------------------------------------------------------------
async def _replicas(app: Any, count: int = 2) -> list[TaskScheduler]:
    """Running schedulers on the app's database and queue."""
    replicas = [TaskScheduler(app.state.scheduler.settings) for _ in range(count)]
    for replica in replicas:
        await replica.initialize()
    return replicas


def _loaded(replica: TaskScheduler, schedule_id: str) -> ScheduledJob | None:
    loop = replica.loop
    assert loop is not None
    entry = loop._entries.get(uuid.UUID(schedule_id))
    return None if entry is None else entry.schedule


async def _all_load(replicas: list[TaskScheduler], row: dict[str, Any]) -> None:
    """Every replica ends with the stored row: loaded as stored if enabled, not loaded if not."""

    async def views() -> list[tuple[str, int] | None]:
        loaded = [_loaded(r, row["id"]) for r in replicas]
        return [None if s is None else (s.cron_expression, int(s.status)) for s in loaded]

    want = (row["cronExpression"], row["status"]) if row["status"] == 1 else None
    await eventually(views, until=lambda got: got == [want] * len(replicas), timeout_s=10)


async def test_concurrent_patches_apply_whole_and_every_scheduler_ends_on_the_last(
    client_app: tuple[httpx.AsyncClient, Any],
) -> None:
    """A status PATCH and a cron PATCH at once: both land whole, none is lost or half-applied,
    ``updatedAt`` never goes back; two PATCHes of the same field: the last write is what the
    database and every scheduler keep."""
    client, app = client_app
    created = await client.post("/api/admin/scheduled-jobs", json={**VALID, "timezone": "UTC"})
    job_id = created.json()["id"]
    url = f"/api/admin/scheduled-jobs/{job_id}"
    replicas = await _replicas(app)
    try:
        previous = created.json()["updatedAt"]
        for n in range(6):
            status = (1, 2)[n % 2]
            cron = f"{n} {n} * * *"
            answers = await asyncio.gather(
                client.patch(url, json={"status": status}),
                client.patch(url, json={"cronExpression": cron}),
                client.patch(url, json={"cronExpression": f"{n} 3 * * *"}),
            )
            assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
            row = (await client.get(url)).json()
            assert row["status"] == status
            assert row["cronExpression"] in (cron, f"{n} 3 * * *")
            assert datetime.fromisoformat(row["updatedAt"]) >= datetime.fromisoformat(previous)
            previous = row["updatedAt"]
            await _all_load(replicas, row)
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_patch_from_a_replica_with_a_slower_clock_reaches_every_scheduler(
    client_app: tuple[httpx.AsyncClient, Any],
) -> None:
    """Two API replicas a few seconds apart in clock: the second PATCH commits last but keeps
    the first one's later ``updatedAt`` (it never goes back). The schedulers must still apply
    it: the cron that fires is the one stored."""
    client, app = client_app
    body = {**VALID, "timezone": "UTC", "cronExpression": "0 0 1 1 *"}  # yearly
    job_id = (await client.post("/api/admin/scheduled-jobs", json=body)).json()["id"]
    url = f"/api/admin/scheduled-jobs/{job_id}"
    replicas = await _replicas(app)
    try:
        await _all_load(replicas, (await client.get(url)).json())
        ahead = await client.patch(url, json={"cronExpression": "0 0 1 6 *"})
        await _all_load(replicas, ahead.json())
        app.state.scheduler.clock = lambda: datetime.now(UTC) - timedelta(seconds=30)
        behind = await client.patch(url, json={"cronExpression": "* * * * * *"})
        assert behind.json()["updatedAt"] == ahead.json()["updatedAt"]
        await _all_load(replicas, behind.json())
        fired = [replica.loop.stats.fired for replica in replicas if replica.loop]

        async def fires() -> int:
            return sum(r.loop.stats.fired for r in replicas if r.loop) - sum(fired)

        await eventually(fires, until=lambda count: count >= 2, timeout_s=5)
    finally:
        for replica in replicas:
            await replica.close()
