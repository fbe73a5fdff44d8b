"""A database outage (docs/reliability.md), worker side: the execution-log database goes down
under a live worker. Jobs must keep completing (they never wait for the log), the rows wait in
the writer's memory, and once PostgreSQL is back every execution has exactly one row with its
final status.

Each test runs its own PostgreSQL cluster (``tests.support.postgres``), never the shared one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest

from corral import JobExecutionStatus, JobQueueManager
from corral.adapters.sql.engine import make_engine
from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.core.executions import ExecutionRecord
from corral.core.queries import ExecutionQuery
from corral.services.execution_log import ExecutionLogWriter
from corral.settings import load_settings
from tests.support.postgres import PostgresServer, postgres_server, require_postgres_binaries
from tests.support.waiting import eventually

BEFORE = 20  # jobs logged while the database is up
DURING = 30  # jobs run while it is down
# The writer's retry backoff is capped at 30 s: rows must be back within that plus slack.
RECOVERY_TIMEOUT_S = 40.0

COMPLETED = JobExecutionStatus.COMPLETED
FAILED = JobExecutionStatus.FAILED


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    """A private, started PostgreSQL cluster; stopped and removed afterwards."""
    require_postgres_binaries()
    with postgres_server() as server:
        yield server


@pytest.fixture
async def pg_qm(
    pg: PostgresServer, redis_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[JobQueueManager]:
    """Like the ``qm`` fixture, with the private cluster as DATABASE_URL."""
    monkeypatch.setenv("REDIS_URL", redis_url)  # the test handlers' ledger reads it
    monkeypatch.setenv("DATABASE_URL", pg.url)
    settings = load_settings(
        queue=queue_name,
        prefix="corraltest",
        handlers="tests.support.it_handlers",
        redis_url=redis_url,
        database_url=pg.url,
        lock_duration_ms=2000,
        stalled_interval_ms=500,
    )
    manager = JobQueueManager(settings)
    await manager._rt.migrate()
    yield manager
    await manager.graceful_shutdown(2000)


@pytest.fixture
async def reader(pg: PostgresServer) -> AsyncIterator[SqlExecutionLog]:
    """The execution log read through an engine of its own (not the writer's pool)."""
    engine = make_engine(pg.url)
    try:
        yield SqlExecutionLog(engine)
    finally:
        await engine.dispose()


# -- helpers ----------------------------------------------------------------------------------
async def _rows(reader: SqlExecutionLog) -> list[ExecutionRecord]:
    # Not ``total``: search() reads the page and the count in two statements (READ COMMITTED),
    # so a flush committing in between makes them disagree.
    rows, _total = await reader.search(ExecutionQuery(limit=500))
    assert len(rows) < 500
    return rows


async def _total(reader: SqlExecutionLog) -> int:
    return (await reader.search(ExecutionQuery(limit=1)))[1]


def _settled(rows: Iterable[ExecutionRecord], expected: dict[str, JobExecutionStatus]) -> bool:
    by_id = {row.execution_id: row.status for row in rows}
    return all(by_id.get(job_id) == status for job_id, status in expected.items())


async def _states(qm: JobQueueManager, ids: list[str]) -> list[str]:
    jobs = await asyncio.gather(*(qm.get_job(job_id) for job_id in ids))
    return [job.state for job in jobs]


def _writer(qm: JobQueueManager) -> ExecutionLogWriter:
    writer = qm._rt._writer
    assert writer is not None, "start_worker(execution_log=True) made no execution-log writer"
    return writer


def _assert_worker_alive(qm: JobQueueManager, writer: ExecutionLogWriter) -> None:
    assert qm._rt.consumers, "the worker is gone"
    assert all(consumer.running for consumer in qm._rt.consumers), "the worker loop ended"
    task = writer._task
    assert task is not None
    assert not task.done(), f"the execution-log writer task ended: {task!r}"


async def _wait_for_failed_flushes(writer: ExecutionLogWriter, count: int) -> int:
    """Until the writer has failed ``count`` flushes in a row (its backoff doubles each time,
    from 0.5 s: 1, 2, 4, ... up to 30 s)."""

    async def failures() -> int:
        return writer.failures

    return await eventually(failures, until=lambda n: n >= count, timeout_s=20)


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def _ledger_counts(entries: list[dict[str, Any]], event: str) -> Counter[str]:
    return Counter(str(e["job_id"]) for e in entries if e["event"] == event)


async def _stop(pg: PostgresServer) -> float:
    # stop() blocks until the postmaster exits (fast shutdown, well under a second); run it off
    # the loop so the in-process worker keeps running meanwhile.
    await asyncio.to_thread(pg.stop)
    return time.monotonic()


async def _start(pg: PostgresServer) -> float:
    await asyncio.to_thread(pg.start)
    return time.monotonic()


# -- tests ------------------------------------------------------------------------------------
async def _restart_and_settle(
    pg: PostgresServer,
    reader: SqlExecutionLog,
    down_at: float,
    expected: dict[str, JobExecutionStatus],
) -> tuple[list[ExecutionRecord], float, float]:
    """Start PostgreSQL again and wait for the rows to land as ``expected``: exactly one row per
    job, none lost. The rows, the outage's length and how long the rows took after it, in s."""
    up_at = await _start(pg)
    rows = await eventually(
        lambda: _rows(reader),
        until=lambda rows: _settled(rows, expected),
        timeout_s=RECOVERY_TIMEOUT_S,
        every_s=0.1,
    )
    recovered_in_s = time.monotonic() - up_at
    ids = [row.execution_id for row in rows]
    assert len(ids) == len(set(ids)) == BEFORE + DURING, "exactly one row per job, none lost"
    assert await _total(reader) == BEFORE + DURING
    assert set(ids) == set(expected)
    return rows, up_at - down_at, recovered_in_s


async def test_jobs_complete_while_db_is_down_and_every_row_lands_after(
    pg: PostgresServer,
    pg_qm: JobQueueManager,
    reader: SqlExecutionLog,
    ledger: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    qm = pg_qm
    caplog.set_level(logging.INFO, logger="corral")
    await qm.start_worker(execution_log=True)
    writer = _writer(qm)

    tags: dict[str, str] = {}

    async def add_record(tag: str) -> str:
        job_id = await qm.add_job("record", {"ledger": ledger.name, "tag": tag})
        tags[job_id] = tag
        return job_id

    before = [await add_record(f"before-{i}") for i in range(BEFORE)]
    await eventually(
        lambda: _rows(reader),
        until=lambda rows: _settled(rows, dict.fromkeys(before, COMPLETED)),
        timeout_s=15,
    )

    down_at = await _stop(pg)
    during = [await add_record(f"during-{i}") for i in range(DURING)]
    # Jobs never wait for the log: all of them complete in Redis while the database is down.
    await eventually(
        lambda: _states(qm, during),
        until=lambda states: all(s == "completed" for s in states),
        timeout_s=15,
    )
    completed_in_s = time.monotonic() - down_at
    assert not pg.running
    # Keep the database down through several retries (backoff 1 s, 2 s, then 4 s), so the
    # held rows are put back more than once and recovery waits on a grown backoff.
    failed_flushes = await _wait_for_failed_flushes(writer, 3)
    held = writer.backlog
    assert held == DURING, "the rows of the jobs run during the outage are held"
    _assert_worker_alive(qm, writer)

    expected = dict.fromkeys(before + during, COMPLETED)
    rows, outage_s, recovered_in_s = await _restart_and_settle(pg, reader, down_at, expected)
    for row in rows:
        assert row.status == COMPLETED
        assert row.retry_count == 0
        assert row.handler_name == "record"
        assert row.started_at is not None
        assert row.finished_at is not None
        assert row.error_message is None
        assert isinstance(row.result, dict)
        assert row.result["tag"] == tags[row.execution_id]
    assert writer.backlog == 0
    # Each job ran exactly once: the outage caused no re-execution.
    entries = ledger.entries()
    assert _ledger_counts(entries, "start") == Counter(list(expected))
    assert _ledger_counts(entries, "finish") == Counter(list(expected))

    # The worker survived: still running, and a job run after recovery is logged as usual.
    _assert_worker_alive(qm, writer)
    after = await add_record("after")
    await eventually(
        lambda: _rows(reader),
        until=lambda rows: _settled(rows, {after: COMPLETED}),
        timeout_s=10,
    )
    assert await _total(reader) == BEFORE + DURING + 1
    assert _events(caplog, "execlog.write_failed"), "the outage was not logged"
    assert _events(caplog, "execlog.recovered"), "the recovery was not logged"

    print(
        f"\n[db-outage/completed] outage {outage_s:.2f} s; {DURING} jobs completed "
        f"{completed_in_s:.2f} s after the stop; {failed_flushes}+ failed flushes "
        f"({held} rows held); all "
        f"{BEFORE + DURING} rows present {recovered_in_s:.2f} s after PostgreSQL accepted "
        f"connections again"
    )


async def test_retrying_failures_during_db_outage_end_with_one_failed_row_each(
    pg: PostgresServer,
    pg_qm: JobQueueManager,
    reader: SqlExecutionLog,
    ledger: Any,
) -> None:
    qm = pg_qm
    await qm.start_worker(execution_log=True)
    writer = _writer(qm)

    before = [
        await qm.add_job("record", {"ledger": ledger.name, "tag": f"before-{i}"})
        for i in range(BEFORE)
    ]
    await eventually(
        lambda: _rows(reader),
        until=lambda rows: _settled(rows, dict.fromkeys(before, COMPLETED)),
        timeout_s=15,
    )

    failing: list[str] = []

    async def add_failing(count: int, spacing_s: float = 0.0) -> None:
        for _ in range(count):
            tag = f"fail-{len(failing)}"
            failing.append(
                await qm.add_job(
                    "fail", {"ledger": ledger.name, "tag": tag}, attempts=2, backoff=100
                )
            )
            await asyncio.sleep(spacing_s)

    # A stream of failing jobs: the first ones are logged before the stop, the next ones are
    # between attempts when it comes, the rest fail (and retry) while the database is down.
    await add_failing(10, spacing_s=0.03)
    await eventually(
        lambda: _rows(reader),
        until=lambda rows: any(row.execution_id in failing for row in rows),
        timeout_s=10,
    )
    logged_before_stop = {
        row.execution_id: row.status for row in await _rows(reader) if row.execution_id in failing
    }
    await add_failing(5)
    states_at_stop = Counter(await _states(qm, failing))
    down_at = await _stop(pg)
    added_during = DURING - len(failing)
    await add_failing(added_during, spacing_s=0.03)

    await eventually(
        lambda: _states(qm, failing),
        until=lambda states: all(s == "failed" for s in states),
        timeout_s=15,
    )
    infos = await asyncio.gather(*(qm.get_job(job_id) for job_id in failing))
    assert all(info.attempts_made == 2 for info in infos)
    failed_in_s = time.monotonic() - down_at
    assert not pg.running
    failed_flushes = await _wait_for_failed_flushes(writer, 1)
    held = writer.backlog
    # Held: every job added during the outage, plus those whose last state was not yet written
    # when it began.
    assert (
        added_during
        <= held
        <= DURING - sum(status == FAILED for status in logged_before_stop.values())
    ), "the rows of the jobs run during the outage are held"
    _assert_worker_alive(qm, writer)

    expected = dict.fromkeys(before, COMPLETED) | dict.fromkeys(failing, FAILED)
    rows, outage_s, recovered_in_s = await _restart_and_settle(pg, reader, down_at, expected)
    by_id = {row.execution_id: row for row in rows}
    for job_id in failing:
        row = by_id[job_id]
        assert row.status == FAILED, row
        assert row.retry_count == 1, row  # the second (last) attempt
        assert row.handler_name == "fail"
        assert "boom on attempt 2" in (row.error_message or ""), row
        assert row.started_at is not None
        assert row.finished_at is not None
    for job_id in before:
        assert by_id[job_id].status == COMPLETED
        assert by_id[job_id].retry_count == 0
    assert writer.backlog == 0
    starts = _ledger_counts(ledger.entries(), "start")
    assert {job_id: starts[job_id] for job_id in failing} == dict.fromkeys(failing, 2)
    _assert_worker_alive(qm, writer)

    logged = dict(Counter(map(str, logged_before_stop.values())))
    print(
        f"\n[db-outage/retries] outage {outage_s:.2f} s; at the stop the first "
        f"{sum(states_at_stop.values())} failing jobs were {dict(states_at_stop)} in Redis, "
        f"{len(logged_before_stop)} had a row ({logged}); "
        f"all {DURING} failed {failed_in_s:.2f} s after the stop; {failed_flushes}+ failed "
        f"flushes, {held} rows held; all {BEFORE + DURING} rows final "
        f"{recovered_in_s:.2f} s after PostgreSQL accepted connections again"
    )
