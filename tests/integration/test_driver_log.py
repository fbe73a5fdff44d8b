"""The worker's execution log on a driver connection of its own (``adapters.sql.driver_log``):
it writes what ``SqlExecutionLog`` writes, sets its connection up as ``make_engine`` does,
reports failures as StoreUnavailable without secrets, and replaces a connection the server
dropped. On real SQLite AND PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.adapters.sql.driver_log import DriverExecutionLog, schema_at_head
from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.adapters.sql.migrate import upgrade
from corral.core.executions import ExecutionRecord
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery
from corral.errors import StoreUnavailable
from corral.services.execution_log import ExecutionLogWriter
from tests.integration import sql_conftest
from tests.integration.test_execution_log_writes import FIELDS, _stored

driver_log = sql_conftest.driver_log
execution_log = sql_conftest.execution_log
migrated = sql_conftest.migrated
sql_engine = sql_conftest.sql_engine

ACTIVE = ExecutionRecord(execution_id="a", status=JobExecutionStatus.ACTIVE)


@pytest.mark.parametrize("fields", FIELDS)
async def test_it_stores_what_sqlalchemy_stores(
    migrated: AsyncEngine,
    driver_log: DriverExecutionLog,
    execution_log: SqlExecutionLog,
    fields: dict[str, Any],
) -> None:
    await driver_log.upsert_many([ExecutionRecord(execution_id="bulk", **fields)])
    assert await execution_log.insert_missing([ExecutionRecord(execution_id="core", **fields)])
    assert await _stored(migrated, "bulk") == await _stored(migrated, "core")


async def test_its_rows_merge_with_the_engines(
    driver_log: DriverExecutionLog, execution_log: SqlExecutionLog
) -> None:
    """Both write with the same rules: a late ``waiting`` from the scheduler's log does not move
    the worker's finished row back."""
    done = ExecutionRecord(execution_id="j", status=JobExecutionStatus.COMPLETED, result={"n": 1})
    await driver_log.upsert_many([done])
    await execution_log.upsert_many(
        [ExecutionRecord(execution_id="j", status=JobExecutionStatus.WAITING, queue="q")]
    )
    [row], _ = await execution_log.search(ExecutionQuery())
    assert (row.status, row.result, row.queue) == (JobExecutionStatus.COMPLETED, {"n": 1}, "q")


async def _settings(engine: AsyncEngine, conn: Any) -> tuple[list[Any], list[Any]]:
    """The same session settings read on an engine connection and on ``conn`` (the driver's)."""
    if engine.dialect.name == "sqlite":
        names = ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        queries = [f"PRAGMA {name}" for name in names]
    else:
        queries = [
            "SELECT current_setting('application_name')",
            "SELECT current_setting('search_path')",
        ]
    async with engine.connect() as engine_conn:
        expected = [(await engine_conn.exec_driver_sql(q)).scalar_one() for q in queries]
    found = []
    for query in queries:
        if engine.dialect.name == "sqlite":
            async with conn.execute(query) as cursor:
                found.append((await cursor.fetchone())[0])
        else:
            found.append(await conn.fetchval(query))
    return expected, found


async def test_its_connection_is_set_up_as_the_engines(
    migrated: AsyncEngine, driver_log: DriverExecutionLog
) -> None:
    """WAL, busy timeout, synchronous and foreign keys on SQLite; application_name and the
    schema's search_path on PostgreSQL."""
    await driver_log.prepare()
    expected, found = await _settings(migrated, driver_log._conn)
    assert found == expected
    assert expected[0] in ("wal", "corral")


async def test_an_unmigrated_schema_says_to_upgrade(sql_engine: AsyncEngine) -> None:
    url, schema = await sql_conftest.url_and_schema(sql_engine)
    log = DriverExecutionLog(url, schema=schema)
    try:
        assert not await log.at_head()
        with pytest.raises(StoreUnavailable, match=r"run `corral db upgrade`"):
            await log.upsert_many([ACTIVE])
        await upgrade(sql_engine)
        assert await log.at_head()
        await log.upsert_many([ACTIVE])
    finally:
        await log.aclose()
    assert (await SqlExecutionLog(sql_engine).search(ExecutionQuery()))[1] == 1


async def test_a_missing_database_file_is_not_at_head(tmp_path: Any) -> None:
    assert not await schema_at_head(f"sqlite:///{tmp_path / 'new.db'}")


async def test_an_unreachable_server_is_named_without_the_password() -> None:
    log = DriverExecutionLog(
        "postgresql+asyncpg://corral:s3cr%40t-pw@127.0.0.1:1/corral_db", connect_timeout_s=2
    )
    with pytest.raises(StoreUnavailable) as caught:
        await log.upsert_many([ACTIVE])
    message = str(caught.value)
    assert message.startswith("database unavailable (postgresql 127.0.0.1:1/corral_db): ")
    assert "s3cr" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_a_naive_time_is_the_callers_bug(driver_log: DriverExecutionLog) -> None:

    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive datetime"):
        await driver_log.upsert_many(
            [ExecutionRecord(execution_id="n", status="active", started_at=naive)]
        )


async def test_a_terminated_backend_is_replaced(
    migrated: AsyncEngine, driver_log: DriverExecutionLog, execution_log: SqlExecutionLog
) -> None:
    """The server drops the writer's connection (a restart, an administrator): the writer's
    next flush, or at worst the one after, lands on a new connection."""
    if migrated.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: a server that drops connections")
    writer = ExecutionLogWriter(driver_log, queue="corral")
    await driver_log.prepare()
    first = driver_log._conn
    async with migrated.connect() as conn:
        statement = text("SELECT pg_terminate_backend(:pid)")
        assert (await conn.execute(statement, {"pid": first.get_server_pid()})).scalar_one()
    await asyncio.sleep(0)
    writer.job_waiting("after", 1, "report")
    flushed = [await writer.flush() for _ in range(2)]
    assert flushed[-1], flushed
    assert driver_log._conn is not first
    [row], _ = await execution_log.search(ExecutionQuery())
    assert row.execution_id == "after"
