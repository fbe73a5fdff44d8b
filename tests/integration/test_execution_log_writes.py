"""The execution log's bulk writes (``adapters.sql.execution_upsert``: SQLite ``executemany``,
PostgreSQL ``COPY`` + one merge) and the worker's log writer that feeds them, on real SQLite
AND PostgreSQL (the parametrised ``sql_engine``)."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.adapters.sql.migrate import upgrade
from corral.core.attempts import Attempt
from corral.core.executions import ExecutionRecord
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery
from corral.services.execution_log import ExecutionLogWriter
from tests.integration import sql_conftest

execution_log = sql_conftest.execution_log
migrated = sql_conftest.migrated
sql_engine = sql_conftest.sql_engine

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MS = 1_772_366_400_000
SCHEDULE = uuid.UUID("0b7e4f5c-8d1e-4a53-9c55-3f0c2b1d9e77")
PLUS8 = timezone(timedelta(hours=8))


async def _stored(engine: AsyncEngine, execution_id: str) -> dict[str, Any]:
    """The row as the driver returns it (no SQLAlchemy column types applied)."""
    statement = text("SELECT * FROM system_job_execution_logs WHERE execution_id = :e")
    async with engine.connect() as conn:
        row = (await conn.execute(statement, {"e": execution_id})).mappings().one()
    return {k: v for k, v in row.items() if k not in ("id", "execution_id")}


#: Rows of every kind the bulk paths must store as SQLAlchemy would (also test_driver_log).
FIELDS = [
    pytest.param(
        {
            "status": JobExecutionStatus.FAILED,
            "job_id": SCHEDULE,
            "handler_name": "report",
            "queue": "corral",
            "started_at": T0.astimezone(PLUS8),
            "finished_at": T0.replace(microsecond=0),
            "duration_ms": 877,
            "result": {"ok": False, "names": ["é", "日本"], "n": [1, 2.5]},
            "error_message": "KeyError: 'width'",
            "stacktrace": "Traceback (most recent call last):\n  ...",
            "retry_count": 2,
            "trigger": "schedule",
            "updated_at": T0 + timedelta(seconds=3),
        },
        id="every-column",
    ),
    pytest.param(
        {
            "status": JobExecutionStatus.COMPLETED,
            "handler_name": "x" * 100,
            "result": {"v": float("nan"), "s": "a\x00b", "deep": [float("inf")]},
            "error_message": "bad\x00byte \ud800 end",
            "retry_count": 2**40,
            "duration_ms": -5,
            "updated_at": T0,
        },
        id="hostile-values",
    ),
    pytest.param(
        {"status": JobExecutionStatus.WAITING, "result": 0, "updated_at": T0},
        id="sparse",
    ),
]


@pytest.mark.parametrize("fields", FIELDS)
async def test_the_bulk_path_stores_what_sqlalchemy_stores(
    migrated: AsyncEngine, execution_log: SqlExecutionLog, fields: dict[str, Any]
) -> None:
    """The bulk path formats values itself (times as SQLite text, UUIDs, JSON): the stored row
    must be the one SQLAlchemy's column types make (``insert_missing`` goes through them)."""
    await execution_log.upsert_many([ExecutionRecord(execution_id="bulk", **fields)])
    assert await execution_log.insert_missing([ExecutionRecord(execution_id="core", **fields)])
    assert await _stored(migrated, "bulk") == await _stored(migrated, "core")


async def test_a_batch_is_stored_in_its_order(
    migrated: AsyncEngine, execution_log: SqlExecutionLog
) -> None:
    """Row ids follow the batch (the listing's tie-break and the reconciler's cursor use them),
    also through PostgreSQL's staging table."""
    names = [f"job-{i}" for i in range(317)]  # whole statements and a rest
    random.Random(7).shuffle(names)
    await execution_log.upsert_many(
        [ExecutionRecord(execution_id=n, status=JobExecutionStatus.ACTIVE) for n in names]
    )
    async with migrated.connect() as conn:
        stored = await conn.execute(
            text("SELECT execution_id FROM system_job_execution_logs ORDER BY id")
        )
        assert [r[0] for r in stored] == names


async def test_a_naive_time_is_the_callers_bug(execution_log: SqlExecutionLog) -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive datetime"):
        await execution_log.upsert_many(
            [ExecutionRecord(execution_id="n", status=JobExecutionStatus.ACTIVE, started_at=naive)]
        )
    assert (await execution_log.search(ExecutionQuery()))[1] == 0


async def test_writes_need_no_state_on_the_connection(
    migrated: AsyncEngine, execution_log: SqlExecutionLog
) -> None:
    """PostgreSQL stages rows in a temporary table of the connection: it is empty after every
    write and made again when the connection lost it."""
    record = ExecutionRecord(execution_id="s", status=JobExecutionStatus.ACTIVE)
    await execution_log.prepare()
    await execution_log.upsert_many([record])
    if migrated.dialect.name == "postgresql":
        async with migrated.connect() as conn:
            staged = await conn.execute(text("SELECT count(*) FROM corral_execution_log_stage"))
            assert staged.scalar_one() == 0
            await conn.execute(text("DISCARD TEMP"))
            await conn.commit()
    await execution_log.upsert_many([record, replace(record, execution_id="t")])
    assert (await execution_log.search(ExecutionQuery()))[1] == 2


def _attempt(number: int = 1, job_id: str = "41", started_ms: int = MS + 5) -> Attempt:
    return Attempt(
        job_id=job_id, enqueued_ms=MS, name="report", number=number, started_ms=started_ms
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@pytest.fixture
def writer(execution_log: SqlExecutionLog) -> ExecutionLogWriter:
    """A worker's log writer over the test's database (not started: the test flushes)."""
    return ExecutionLogWriter(execution_log, queue="corral")


async def test_a_job_that_runs_between_two_flushes_is_one_row(
    execution_log: SqlExecutionLog, writer: ExecutionLogWriter
) -> None:
    attempt = _attempt()
    writer.attempt_started(attempt)
    writer.attempt_finished(attempt.completed({"n": 1}, MS + 25))
    assert writer.backlog == 1
    assert await writer.flush()
    assert writer.written == 1
    [row], _ = await execution_log.search(ExecutionQuery())
    assert row.updated_at is not None
    assert row == ExecutionRecord(
        execution_id="41",
        enqueued_ms=MS,
        status=JobExecutionStatus.COMPLETED,
        handler_name="report",
        queue="corral",
        started_at=_at(MS + 5),
        finished_at=_at(MS + 25),
        duration_ms=20,
        result={"n": 1},
        retry_count=0,
        updated_at=row.updated_at,
    )


async def test_each_step_of_a_retried_scheduled_job_lands_on_its_row(
    execution_log: SqlExecutionLog, writer: ExecutionLogWriter
) -> None:
    """Flushed between the attempts, then the second attempt's two steps in one flush."""
    job_id = f"sched-{SCHEDULE}-{MS}"
    first = _attempt(job_id=job_id)
    writer.attempt_started(first)
    writer.attempt_finished(replace(first.failed(KeyError("width"), MS + 10), retrying=True))
    assert await writer.flush()
    [row], _ = await execution_log.search(ExecutionQuery())
    assert (row.status, row.finished_at, row.error_message) == (
        JobExecutionStatus.DELAYED,
        None,
        "KeyError: 'width'",
    )
    second = _attempt(number=2, job_id=job_id, started_ms=MS + 2000)
    writer.attempt_started(second)
    writer.attempt_finished(second.completed(None, MS + 2100))
    assert await writer.flush()
    assert writer.written == 2
    [row], total = await execution_log.search(ExecutionQuery())
    assert total == 1
    assert (row.job_id, row.trigger, row.status, row.retry_count) == (
        SCHEDULE,
        "schedule",
        JobExecutionStatus.COMPLETED,
        1,
    )
    assert (row.started_at, row.finished_at, row.duration_ms) == (
        _at(MS + 2000),
        _at(MS + 2100),
        100,
    )
    # As the upsert has always done: a None keeps the stored text; only a failed row is revived.
    assert row.error_message == "KeyError: 'width'"


async def test_a_job_still_running_at_a_flush_is_written_active(
    execution_log: SqlExecutionLog, writer: ExecutionLogWriter
) -> None:
    attempt = _attempt()
    writer.attempt_started(attempt)
    assert await writer.flush()
    [row], _ = await execution_log.search(ExecutionQuery())
    assert (row.status, row.started_at, row.finished_at, row.handler_name) == (
        JobExecutionStatus.ACTIVE,
        _at(MS + 5),
        None,
        "report",
    )
    writer.attempt_finished(attempt.completed(None, MS + 25))
    assert await writer.flush()
    [row], _ = await execution_log.search(ExecutionQuery())
    assert (row.status, row.started_at, row.finished_at) == (
        JobExecutionStatus.COMPLETED,
        _at(MS + 5),
        _at(MS + 25),
    )
    assert writer.written == 2


async def test_a_start_folds_over_an_earlier_step_of_its_job(
    execution_log: SqlExecutionLog, writer: ExecutionLogWriter
) -> None:
    """A process that enqueues and runs a job reports its waiting step to the same writer."""
    job_id = f"manual-{SCHEDULE}-{MS}"
    writer.job_waiting(job_id, MS, "report")
    writer.attempt_started(_attempt(job_id=job_id))
    assert writer.backlog == 1
    assert await writer.flush()
    [row], _ = await execution_log.search(ExecutionQuery())
    assert (row.status, row.job_id, row.trigger, row.started_at) == (
        JobExecutionStatus.ACTIVE,
        SCHEDULE,
        "manual",
        _at(MS + 5),
    )


async def test_a_failed_flush_keeps_every_step_for_the_next(sql_engine: AsyncEngine) -> None:
    """Written to a database without the table, then to the migrated one: a start buffered
    before the failure and its outcome reported after it end up as one finished row."""
    writer = ExecutionLogWriter(SqlExecutionLog(sql_engine), queue="corral")
    running, done = _attempt(job_id="a"), _attempt(job_id="b")
    writer.attempt_started(running)
    writer.attempt_started(done)
    writer.attempt_finished(done.completed(None, MS + 9))
    assert not await writer.flush()
    assert writer.backlog == 2
    writer.attempt_finished(running.completed({"late": True}, MS + 30))
    await upgrade(sql_engine)
    assert await writer.flush()
    page, total = await SqlExecutionLog(sql_engine).search(ExecutionQuery())
    assert total == 2
    assert sorted((r.execution_id, r.status, r.started_at, r.result) for r in page) == [
        ("a", JobExecutionStatus.COMPLETED, _at(MS + 5), {"late": True}),
        ("b", JobExecutionStatus.COMPLETED, _at(MS + 5), None),
    ]


class _SlowLog(SqlExecutionLog):
    """The real log, whose first write waits until the test lets it go (a slow database)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    async def upsert_rows(self, rows: Any) -> None:
        if not self.release.is_set():
            self.writing.set()
            await self.release.wait()
        await super().upsert_rows(rows)


async def test_closing_during_a_flush_keeps_the_batch_in_flight(
    migrated: AsyncEngine,
) -> None:
    """``close()`` cancels the writer's loop; a flush cancelled mid-write used to drop the
    batch it had taken out of the buffer, so the rows never reached the database."""
    log = _SlowLog(migrated)
    writer = ExecutionLogWriter(log, queue="corral", flush_interval_s=0.01)
    writer.start()
    attempt = _attempt()
    writer.attempt_started(attempt)
    writer.attempt_finished(attempt.completed({"n": 1}, MS + 25))
    await asyncio.wait_for(log.writing.wait(), timeout=5)
    log.release.set()  # close()'s own flush goes through
    await writer.close(timeout_s=5)
    [row], total = await log.search(ExecutionQuery())
    assert total == 1
    assert row.status == JobExecutionStatus.COMPLETED
