"""Fixtures for the SQL adapter tests: every test runs on SQLite (a file in tmp_path) AND on
PostgreSQL (a fresh schema per test, dropped afterwards). Import the fixtures you use into the
test module. PostgreSQL down -> skip locally, FAIL in CI (CI=true)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema

from corral.adapters.sql.driver_log import DriverExecutionLog
from corral.adapters.sql.engine import make_engine
from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.adapters.sql.migrate import upgrade
from corral.adapters.sql.schedule_store import SqlScheduleStore
from corral.adapters.sql.tables import schedules
from corral.core.schedules import ScheduledJob, new_schedule, validate_changes

PG_URL = os.environ.get("CORRAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
_pg_checked: dict[str, str | None] = {}


def _pg_problem() -> str | None:
    """Why PostgreSQL cannot be used (None if it can); checked once per session."""
    if "problem" not in _pg_checked:
        url = make_url(PG_URL)
        try:
            with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), 2):
                _pg_checked["problem"] = None
        except OSError as exc:
            _pg_checked["problem"] = f"PostgreSQL not reachable at {url.host}:{url.port}: {exc}"
    return _pg_checked["problem"]


def require_postgres() -> None:
    problem = _pg_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true: tests that need PostgreSQL must not be skipped)")
        pytest.skip(problem)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'corral.db'}"


async def _admin(statement: Any) -> None:
    admin = create_async_engine(PG_URL, poolclass=NullPool)
    try:
        async with admin.begin() as conn:
            await conn.execute(statement)
    finally:
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database (not migrated) of each kind."""
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path))
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex}"
    await _admin(CreateSchema(schema))
    engine = make_engine(PG_URL, schema=schema)
    try:
        yield engine
    finally:
        await engine.dispose()
        await _admin(DropSchema(schema, cascade=True))


@pytest.fixture
async def migrated(sql_engine: AsyncEngine) -> AsyncEngine:
    await upgrade(sql_engine)
    return sql_engine


@pytest.fixture
def store(migrated: AsyncEngine) -> SqlScheduleStore:
    return SqlScheduleStore(migrated)


@pytest.fixture
def execution_log(migrated: AsyncEngine) -> SqlExecutionLog:
    return SqlExecutionLog(migrated)


def make_job(now: datetime | None = None, **fields: Any) -> ScheduledJob:
    """A validated schedule; ``fields`` override the required ones or add optional ones."""
    changes: dict[str, Any] = {
        "name": "nightly",
        "handler_name": "dataBackupJob",
        "cron_expression": "0 2 * * *",
        "domain": "ops",
    }
    changes.update(fields)
    clean = validate_changes(changes, creating=True)
    return new_schedule(uuid.uuid4(), clean, now or datetime.now(UTC))


async def row_count(engine: AsyncEngine, table: Any = schedules) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def url_and_schema(engine: AsyncEngine) -> tuple[str, str | None]:
    """The ``DATABASE_URL`` and schema ``engine`` was made with (its search_path)."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name != "postgresql":
        return url, None
    async with engine.connect() as conn:
        return url, str((await conn.execute(select(func.current_schema()))).scalar_one())


@pytest.fixture
async def driver_log(migrated: AsyncEngine) -> AsyncIterator[DriverExecutionLog]:
    """The worker's execution log (writes on a driver connection of its own) on the migrated
    database of each kind."""
    url, schema = await url_and_schema(migrated)
    log = DriverExecutionLog(url, schema=schema)
    try:
        yield log
    finally:
        await log.aclose()
