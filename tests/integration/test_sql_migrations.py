"""Migrations and the engine on real SQLite and PostgreSQL: upgrade, idempotence, atomicity,
schema == tables.py, DATABASE_URL handling and errors that never show a password."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.adapters.sql.engine import make_engine, normalize_url, ping
from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.adapters.sql.migrate import (
    HEAD_REVISION,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from corral.adapters.sql.schedule_store import SqlScheduleStore
from corral.adapters.sql.tables import metadata
from corral.core.executions import ExecutionRecord
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery
from corral.errors import ConfigurationError, StoreUnavailable
from tests.integration import sql_conftest
from tests.integration.sql_conftest import PG_URL, make_job, require_postgres, sqlite_url

TABLES = {"system_scheduled_jobs", "system_job_execution_logs", "corral_meta", VERSION_TABLE}
CANARY = "CANARY-9b1c"


# The shared fixtures, bound here so pytest finds them in this module.
sql_engine = sql_conftest.sql_engine


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


# -- migrations ------------------------------------------------------------------------------


async def test_upgrade_creates_the_schema_on_an_empty_database(sql_engine: AsyncEngine) -> None:
    assert await current_revision(sql_engine) is None
    assert await _tables(sql_engine) == set()
    await upgrade(sql_engine)
    assert await current_revision(sql_engine) == head_revision() == "0002"
    assert await _tables(sql_engine) == TABLES

    def indexes(c: Connection) -> dict[str, set[str]]:
        found = inspect(c)
        return {t: {i["name"] or "" for i in found.get_indexes(t)} for t in TABLES}

    async with sql_engine.connect() as conn:
        found = await conn.run_sync(indexes)
    assert {
        "ix_system_scheduled_jobs_status",
        "ix_system_scheduled_jobs_domain",
        "ix_system_scheduled_jobs_handler_name",
    } <= found["system_scheduled_jobs"]
    assert {
        "ix_system_job_execution_logs_job_id",
        "ix_system_job_execution_logs_status",
        "ix_system_job_execution_logs_updated_at",
    } <= found["system_job_execution_logs"]


async def test_second_upgrade_is_a_no_op_and_keeps_data(sql_engine: AsyncEngine) -> None:
    await upgrade(sql_engine)
    store = SqlScheduleStore(sql_engine)
    job = await store.create(make_job())
    marker = await store.change_marker()
    await upgrade(sql_engine)
    assert await current_revision(sql_engine) == head_revision()
    assert await store.get(job.id) == job
    assert await store.change_marker() == marker


async def test_concurrent_upgrades_both_succeed(sql_engine: AsyncEngine) -> None:
    """A scheduler and a worker starting together: one migrates, the other waits, finds the
    schema current and does nothing (advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite)."""
    schema: dict[str, Any] = {}
    if sql_engine.dialect.name == "postgresql":
        async with sql_engine.connect() as conn:
            schema["schema"] = (await conn.execute(select(func.current_schema()))).scalar_one()
    other = make_engine(sql_engine.url.render_as_string(hide_password=False), **schema)
    try:
        await asyncio.gather(upgrade(sql_engine), upgrade(other), upgrade(sql_engine))
    finally:
        await other.dispose()
    assert await current_revision(sql_engine) == head_revision()
    assert await _tables(sql_engine) == TABLES


async def test_failed_upgrade_leaves_no_half_migrated_schema(sql_engine: AsyncEngine) -> None:
    """corral_meta is created after both main tables: a clash there must roll them back."""
    async with sql_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE corral_meta (clash INTEGER)"))
    with pytest.raises(StoreUnavailable, match="corral_meta"):
        await upgrade(sql_engine)
    assert await _tables(sql_engine) == {"corral_meta"}
    assert await current_revision(sql_engine) is None
    async with sql_engine.begin() as conn:
        await conn.execute(text("DROP TABLE corral_meta"))
    await upgrade(sql_engine)
    assert await _tables(sql_engine) == TABLES


async def test_migrated_schema_matches_tables_py(sql_engine: AsyncEngine) -> None:
    await upgrade(sql_engine)

    def diff(c: Connection) -> list[Any]:
        context = MigrationContext.configure(c, opts={"compare_type": True})
        return [
            d
            for d in compare_metadata(context, metadata)
            if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
        ]

    async with sql_engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_to_base_removes_everything(sql_engine: AsyncEngine) -> None:
    await upgrade(sql_engine)
    async with sql_engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
    assert await _tables(sql_engine) == {VERSION_TABLE}
    assert await current_revision(sql_engine) is None
    await upgrade(sql_engine)
    assert await current_revision(sql_engine) == head_revision()


async def test_rows_from_before_the_execution_key_keep_their_history(
    sql_engine: AsyncEngine,
) -> None:
    """0001 -> 0002: an old row keeps its data under enqueued_ms 0, and a new job that reuses
    its id (Redis started again) gets a row of its own instead of overwriting it."""
    async with sql_engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
        await conn.execute(
            text(
                "INSERT INTO system_job_execution_logs (execution_id, status, handler_name) "
                "VALUES ('2', 'completed', 'dataProcessingJob')"
            )
        )
    await upgrade(sql_engine)
    log = SqlExecutionLog(sql_engine)
    await log.upsert_many(
        [
            ExecutionRecord(
                execution_id="2",
                enqueued_ms=1_764_500_000_000,
                status=JobExecutionStatus.COMPLETED,
                handler_name="example-task",
                error_message="KeyError: 'width'",
                stacktrace="Traceback (most recent call last):\nKeyError: 'width'",
            )
        ]
    )
    rows, total = await log.search(ExecutionQuery(limit=10))
    assert total == 2
    by_key = {(r.execution_id, r.enqueued_ms): r for r in rows}
    assert by_key[("2", 0)].handler_name == "dataProcessingJob"
    assert by_key[("2", 1_764_500_000_000)].handler_name == "example-task"
    assert (by_key[("2", 1_764_500_000_000)].stacktrace or "").endswith("KeyError: 'width'")


def test_head_revision_constant_is_the_head_of_the_scripts() -> None:
    """upgrade() skips Alembic when the database is at HEAD_REVISION: a new revision must
    move it, or databases would never get that revision."""
    assert head_revision() == HEAD_REVISION


async def test_upgrading_a_current_schema_does_not_load_alembic(tmp_path: Path) -> None:
    """Every worker and scheduler upgrades at start; Alembic is for actual upgrades only."""
    url = sqlite_url(tmp_path)
    await upgrade(url)
    code = (
        "import asyncio, sys\n"
        "from corral.adapters.sql.migrate import upgrade\n"
        f"asyncio.run(upgrade({url!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"


async def test_a_schema_from_a_newer_corral_is_refused(sql_engine: AsyncEngine) -> None:
    await upgrade(sql_engine)
    async with sql_engine.begin() as conn:
        await conn.execute(text("UPDATE corral_alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigurationError, match="DATABASE_URL: cannot migrate"):
        await upgrade(sql_engine)
    assert await current_revision(sql_engine) == "9999"


async def test_upgrade_from_a_url_string(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await upgrade(url)
    await upgrade(url)
    assert await current_revision(url) == head_revision()


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        await engine.dispose()
    assert pragmas == ["wal", 1, 5000]


# -- DATABASE_URL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///./corral.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///./corral.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite"),
        ("postgresql://u:p@db:5432/corral", "postgresql+asyncpg"),
        ("postgres://u:p@db/corral", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@db/corral", "postgresql+asyncpg"),
    ],
)
def test_accepted_urls_get_the_async_driver(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (f"mysql://u:{CANARY}@db/x", "unsupported database 'mysql'"),
        (f"postgresql+psycopg2://u:{CANARY}@db/x", "unsupported database"),
        ("garbage", "malformed URL"),
        (f"postgresql://u:{CANARY}@db:notaport/x", "malformed URL"),
        ("sqlite:///no/such/dir/x.db", "directory 'no/such/dir'"),
    ],
)
def test_bad_urls_are_configuration_errors_naming_database_url(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_engine(url)
    message = str(caught.value)
    assert message.startswith("DATABASE_URL: ")
    assert problem in message
    assert CANARY not in message
    assert "\n" not in message


def _all_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), str(exc.args)]
    seen: BaseException | None = exc.__cause__ or (
        None if exc.__suppress_context__ else exc.__context__
    )
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__
    return " ".join(parts)


async def test_unreachable_postgres_is_store_unavailable_without_password() -> None:
    url = f"postgresql+asyncpg://u:{CANARY}@127.0.0.1:1/x"
    engine = make_engine(url, connect_timeout_s=2)
    store, log = SqlScheduleStore(engine), SqlExecutionLog(engine)
    calls = [
        ping(engine),
        upgrade(url),
        current_revision(url),
        store.get(uuid.uuid4()),
        store.change_marker(),
        log.upsert_many([ExecutionRecord(execution_id="e", status=JobExecutionStatus.ACTIVE)]),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailable) as caught:
                await call
            text_seen = _all_text(caught.value)
            assert CANARY not in text_seen
            assert "127.0.0.1:1/x" in str(caught.value)
            assert caught.value.__cause__ is None
            assert caught.value.__suppress_context__
    finally:
        await engine.dispose()


async def test_wrong_credentials_are_store_unavailable_without_password() -> None:
    require_postgres()
    base = make_engine(PG_URL)
    url = base.url.set(username=f"nobody_{uuid.uuid4().hex[:8]}", password=CANARY)
    await base.dispose()
    rendered = url.render_as_string(hide_password=False)
    with pytest.raises(StoreUnavailable) as caught:
        await upgrade(rendered)
    assert CANARY not in _all_text(caught.value)
    assert "database unavailable" in str(caught.value)


async def test_missing_tables_are_store_unavailable(sql_engine: AsyncEngine) -> None:
    """Not migrated: a clear StoreUnavailable, not a raw driver error."""
    with pytest.raises(StoreUnavailable, match="system_scheduled_jobs"):
        await SqlScheduleStore(sql_engine).list_enabled()
