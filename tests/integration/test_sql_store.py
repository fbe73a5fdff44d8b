"""SqlScheduleStore and SqlExecutionLog on real SQLite and PostgreSQL (no mocks). Every test
runs once per database through the parametrized ``sql_engine`` fixture."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.adapters.sql.schedule_store import SqlScheduleStore
from corral.adapters.sql.tables import executions, schedules
from corral.core.executions import ExecutionRecord, MissedTicks, missed_record, missed_ticks
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery, ExecutionSort, ScheduleQuery, ScheduleSort
from corral.core.schedules import ScheduledJob, ScheduleStatus, validate_changes
from corral.errors import ScheduleNotFound, ValidationError
from tests.integration import sql_conftest
from tests.integration.sql_conftest import make_job, row_count

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
INJECTIONS = ["1' OR '1'='1", "name;DROP TABLE system_scheduled_jobs", "' UNION SELECT 1 --"]


# The shared fixtures, bound here so pytest finds them in this module.
execution_log = sql_conftest.execution_log
migrated = sql_conftest.migrated
sql_engine = sql_conftest.sql_engine
store = sql_conftest.store

# -- schedules: CRUD -------------------------------------------------------------------------


async def test_round_trip_of_every_column(store: SqlScheduleStore) -> None:
    payload = {"备份": "完整", "emoji": "🦀", "nested": {"list": [1, 2.5, None, True, {"k": "v"}]}}
    job = make_job(
        T0,
        name="Daily backup 每日",
        description="line one\nline two <b>html</b>",
        timezone="America/New_York",
        status=2,
        payload=payload,
        retry_attempts=7,
        retry_delay=1234,
        timeout=300_000,
        priority=20,
        catch_up_ms=60_000,
    )
    created = await store.create(job)
    assert created == job
    fetched = await store.get(job.id)
    assert fetched == job
    assert fetched.payload == payload
    assert fetched.status is ScheduleStatus.PAUSED
    assert fetched.created_at.tzinfo is UTC
    assert fetched.updated_at == T0


async def test_core_defaults_are_stored(store: SqlScheduleStore) -> None:
    job = await store.create(make_job(T0))
    fetched = await store.get(job.id)
    assert (fetched.timezone, fetched.status, fetched.payload) == (
        "Asia/Shanghai",
        ScheduleStatus.ENABLED,
        {},
    )
    assert (fetched.retry_attempts, fetched.retry_delay, fetched.timeout, fetched.priority) == (
        3,
        5000,
        30_000,
        5,
    )
    assert fetched.description is None
    assert fetched.catch_up_ms is None


async def test_database_defaults_apply_to_a_bare_insert(
    migrated: AsyncEngine, store: SqlScheduleStore
) -> None:
    """A row inserted by hand with only the required columns gets the documented defaults."""
    schedule_id = uuid.uuid4()
    async with migrated.begin() as conn:
        await conn.execute(
            insert(schedules).values(
                id=schedule_id,
                name="raw",
                handler_name="h",
                cron_expression="* * * * *",
                domain="d",
            )
        )
    job = await store.get(schedule_id)
    assert job.timezone == "Asia/Shanghai"
    assert job.status is ScheduleStatus.ENABLED
    assert job.payload == {}
    assert (job.retry_attempts, job.retry_delay, job.timeout, job.priority) == (3, 5000, 30_000, 5)
    assert job.created_at.tzinfo is UTC
    assert abs(job.created_at - datetime.now(UTC)) < timedelta(minutes=5)


async def test_times_come_back_as_aware_utc(store: SqlScheduleStore) -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 3, 1, 20, 0, 0, 500, tzinfo=shanghai)
    job = await store.create(make_job(local))
    fetched = await store.get(job.id)
    assert fetched.created_at == local
    assert fetched.created_at.tzinfo is UTC
    assert fetched.created_at.hour == 12


async def test_update_applies_fields_in_one_statement(store: SqlScheduleStore) -> None:
    job = await store.create(make_job(T0))
    later = T0 + timedelta(seconds=5)
    fields = validate_changes({"status": 0, "cron_expression": "0 0 9 * * 1-5"}, creating=False)
    updated = await store.update(job.id, fields, later)
    assert updated.status is ScheduleStatus.DISABLED
    assert updated.cron_expression == "0 0 9 * * 1-5"
    assert updated.updated_at == later
    assert updated.created_at == T0
    assert await store.get(job.id) == updated


async def test_updated_at_never_moves_back(store: SqlScheduleStore) -> None:
    job = await store.create(make_job(T0))
    updated = await store.update(job.id, {"priority": 10}, T0 - timedelta(hours=1))
    assert updated.priority == 10
    assert updated.updated_at == T0


async def test_concurrent_updates_last_write_wins_without_half_rows(
    store: SqlScheduleStore,
) -> None:
    job = await store.create(make_job(T0))
    a = {"status": 0, "cron_expression": "0 0 1 * * *", "priority": 1}
    b = {"status": 2, "cron_expression": "0 0 2 * * *", "priority": 20}
    await asyncio.gather(
        *(store.update(job.id, fields, T0 + timedelta(seconds=1)) for fields in (a, b) * 5)
    )
    final = await store.get(job.id)
    observed = {
        "status": int(final.status),
        "cron_expression": final.cron_expression,
        "priority": final.priority,
    }
    assert observed in (a, b)


async def test_unknown_id_raises_schedule_not_found(store: SqlScheduleStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(ScheduleNotFound):
        await store.get(missing)
    with pytest.raises(ScheduleNotFound):
        await store.update(missing, {"status": 0}, T0)
    with pytest.raises(ScheduleNotFound):
        await store.delete(missing)


async def test_delete_removes_the_row(migrated: AsyncEngine, store: SqlScheduleStore) -> None:
    job = await store.create(make_job(T0))
    await store.delete(job.id)
    with pytest.raises(ScheduleNotFound):
        await store.get(job.id)
    with pytest.raises(ScheduleNotFound):
        await store.delete(job.id)
    assert await row_count(migrated) == 0


async def test_update_refuses_read_only_fields(store: SqlScheduleStore) -> None:
    job = await store.create(make_job(T0))
    with pytest.raises(ValueError, match="not writable: created_at, id"):
        await store.update(job.id, {"id": uuid.uuid4(), "created_at": T0}, T0)


# -- schedules: search -----------------------------------------------------------------------


async def _seed(store: SqlScheduleStore) -> list[ScheduledJob]:
    specs: list[dict[str, Any]] = [
        {"name": "alpha report", "domain": "ops", "handler_name": "report", "priority": 5},
        {"name": "Beta backup", "domain": "ops", "handler_name": "backup", "status": 0},
        {"name": "gamma report", "domain": "sales", "handler_name": "report", "priority": 20},
        {"name": "delta sync", "domain": "sales", "handler_name": "sync", "status": 2},
        {"name": "epsilon report", "domain": "ops", "handler_name": "report", "priority": 1},
    ]
    return [
        await store.create(make_job(T0 + timedelta(minutes=i), **spec))
        for i, spec in enumerate(specs)
    ]


async def test_search_filters(store: SqlScheduleStore) -> None:
    await _seed(store)

    async def names(**kw: Any) -> tuple[list[str], int]:
        page, total = await store.search(ScheduleQuery(**kw))
        return [job.name for job in page], total

    assert await names(status=ScheduleStatus.DISABLED) == (["Beta backup"], 1)
    assert await names(domain="sales") == (["gamma report", "delta sync"], 2)
    assert await names(handler_name="report", domain="ops") == (
        ["alpha report", "epsilon report"],
        2,
    )
    assert await names(name_contains="REPORT") == (
        ["alpha report", "gamma report", "epsilon report"],
        3,
    )
    assert await names(name_contains="beta") == (["Beta backup"], 1)
    assert await names(domain="nowhere") == ([], 0)


async def test_search_sorts_by_each_key_and_pages(store: SqlScheduleStore) -> None:
    jobs = await _seed(store)
    page, total = await store.search(ScheduleQuery(sort=ScheduleSort.PRIORITY, descending=True))
    assert [j.priority for j in page] == [20, 5, 5, 5, 1]
    assert total == 5
    page, _ = await store.search(ScheduleQuery(sort=ScheduleSort.NAME))
    assert [j.name for j in page] == sorted(j.name for j in jobs)  # byte order on both DBs
    page, _ = await store.search(ScheduleQuery(sort=ScheduleSort.HANDLER_NAME))
    assert [j.handler_name for j in page] == sorted(j.handler_name for j in jobs)
    page, _ = await store.search(ScheduleQuery(sort=ScheduleSort.UPDATED_AT, descending=True))
    assert [j.id for j in page] == [j.id for j in reversed(jobs)]

    seen: list[uuid.UUID] = []
    for offset in range(0, 6, 2):
        page, total = await store.search(
            ScheduleQuery(sort=ScheduleSort.PRIORITY, limit=2, offset=offset)
        )
        assert total == 5
        seen += [j.id for j in page]
    assert sorted(seen) == sorted(j.id for j in jobs)  # no overlap, no gap despite equal keys


async def test_name_search_treats_wildcards_literally(store: SqlScheduleStore) -> None:
    for name in ("100% done", "1000 done", "snake_case", "snakeXcase", "a/b", "ab"):
        await store.create(make_job(T0, name=name))
    for needle, expected in (("%", ["100% done"]), ("_", ["snake_case"]), ("/", ["a/b"])):
        page, total = await store.search(ScheduleQuery(name_contains=needle))
        assert [j.name for j in page] == expected
        assert total == 1


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (-1, 0), (501, 0), (10, -5)])
async def test_search_refuses_unbounded_pages(
    store: SqlScheduleStore, execution_log: SqlExecutionLog, limit: int, offset: int
) -> None:
    with pytest.raises(ValueError, match=r"limit|offset"):
        await store.search(ScheduleQuery(limit=limit, offset=offset))
    with pytest.raises(ValueError, match=r"limit|offset"):
        await execution_log.search(ExecutionQuery(limit=limit, offset=offset))


async def test_injection_looking_values_are_plain_data(
    migrated: AsyncEngine, store: SqlScheduleStore, execution_log: SqlExecutionLog
) -> None:
    await _seed(store)
    await execution_log.upsert_many([_record("e1", "completed")])
    for value in INJECTIONS:
        for query in (
            ScheduleQuery(domain=value),
            ScheduleQuery(handler_name=value),
            ScheduleQuery(name_contains=value),
        ):
            assert await store.search(query) == ([], 0)
        assert await execution_log.search(ExecutionQuery(handler_name=value)) == ([], 0)
    assert await row_count(migrated) == 5
    assert await row_count(migrated, executions) == 1
    # Stored as a name, the same text is data too: found verbatim, nothing dropped.
    hostile = await store.create(make_job(T0, name=INJECTIONS[1]))
    page, total = await store.search(ScheduleQuery(name_contains=INJECTIONS[1]))
    assert [j.id for j in page] == [hostile.id]
    assert total == 1
    assert await row_count(migrated) == 6


async def test_list_enabled(store: SqlScheduleStore) -> None:
    jobs = await _seed(store)
    enabled = await store.list_enabled()
    assert [j.id for j in enabled] == [j.id for j in jobs if j.status is ScheduleStatus.ENABLED]
    assert len(enabled) == 3


# -- schedules: change marker ----------------------------------------------------------------


async def test_change_marker_moves_on_every_store_write(store: SqlScheduleStore) -> None:
    markers = [await store.change_marker()]
    job = await store.create(make_job(T0))
    markers.append(await store.change_marker())
    await store.update(job.id, {"status": 0}, T0)  # updated_at unchanged (monotonic): still seen
    markers.append(await store.change_marker())
    await store.delete(job.id)
    markers.append(await store.change_marker())
    assert len(set(markers)) == 4
    assert await store.change_marker() == markers[-1]  # stable while nothing changes


async def test_change_marker_sees_direct_sql(
    migrated: AsyncEngine, store: SqlScheduleStore
) -> None:
    job = await store.create(make_job(T0))
    before = await store.change_marker()
    async with migrated.begin() as conn:  # updated_at untouched, count unchanged
        await conn.execute(
            update(schedules).where(schedules.c.id == job.id).values(cron_expression="0 5 * * *")
        )
    after_update = await store.change_marker()
    assert after_update != before
    async with migrated.begin() as conn:
        await conn.execute(
            insert(schedules).values(
                id=uuid.uuid4(), name="x", handler_name="h", cron_expression="* * * * *", domain="d"
            )
        )
    after_insert = await store.change_marker()
    assert after_insert != after_update
    async with migrated.begin() as conn:
        await conn.execute(delete(schedules).where(schedules.c.id == job.id))
    assert await store.change_marker() not in (before, after_update, after_insert)


# -- validation happens before the store -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payload": {"x": math.nan}}, "payload.x: "),
        ({"payload": {"x": math.inf}}, "payload.x: "),
        ({"name": "a\x00b"}, "name: must not contain NUL characters"),
        ({"payload": {"x": "a\x00b"}}, "payload.x: "),
    ],
)
async def test_validation_rejects_before_anything_is_stored(
    migrated: AsyncEngine, store: SqlScheduleStore, changes: dict[str, Any], message: str
) -> None:
    """Postgres would refuse these (500) while SQLite stored them: core validation gives one
    answer on both, and nothing reaches either database."""
    fields: dict[str, Any] = {
        "name": "n",
        "handler_name": "h",
        "cron_expression": "* * * * *",
        "domain": "d",
        **changes,
    }
    with pytest.raises(ValidationError) as caught:
        validate_changes(fields, creating=True)
    assert str(caught.value).startswith(message)
    job = await store.create(make_job(T0))
    with pytest.raises(ValidationError) as caught_update:
        validate_changes(changes, creating=False)
    assert str(caught_update.value) == str(caught.value)
    assert await row_count(migrated) == 1
    assert await store.get(job.id) == job


# -- execution log ---------------------------------------------------------------------------


def _record(execution_id: str, status: str = "waiting", **fields: Any) -> ExecutionRecord:
    return ExecutionRecord(execution_id=execution_id, status=JobExecutionStatus(status), **fields)


async def test_upsert_insert_then_update_keeps_unset_fields(
    execution_log: SqlExecutionLog,
) -> None:
    schedule_id = uuid.uuid4()
    started = T0 + timedelta(seconds=1)
    await execution_log.upsert_many(
        [
            _record(
                "job-1",
                "active",
                job_id=schedule_id,
                handler_name="report",
                queue="corral",
                started_at=started,
                trigger="schedule",
                updated_at=started,
            )
        ]
    )
    finished = T0 + timedelta(seconds=3)
    await execution_log.upsert_many(
        [
            _record(
                "job-1",
                "completed",
                finished_at=finished,
                duration_ms=2000,
                result={"ok": True, "n": [1, 2]},
                retry_count=1,
                updated_at=finished,
            )
        ]
    )
    page, total = await execution_log.search(ExecutionQuery())
    assert total == 1
    assert page[0] == _record(
        "job-1",
        "completed",
        job_id=schedule_id,
        handler_name="report",
        queue="corral",
        started_at=started,
        finished_at=finished,
        duration_ms=2000,
        result={"ok": True, "n": [1, 2]},
        retry_count=1,
        trigger="schedule",
        updated_at=finished,
    )


async def test_upsert_a_batch_of_1000_in_one_call(
    migrated: AsyncEngine, execution_log: SqlExecutionLog
) -> None:
    batch = [
        _record(f"bulk-{i}", "completed", duration_ms=i, result={"i": i}, updated_at=T0)
        for i in range(1000)
    ]
    batch += [_record("bulk-7", "failed", error_message="boom", updated_at=T0)]  # same id twice
    await execution_log.upsert_many(batch)
    assert await row_count(migrated, executions) == 1000
    page, total = await execution_log.search(ExecutionQuery(status=JobExecutionStatus.FAILED))
    assert total == 1
    assert (page[0].execution_id, page[0].duration_ms, page[0].result) == ("bulk-7", 7, {"i": 7})
    assert page[0].error_message == "boom"
    await execution_log.upsert_many(batch)  # replaying a batch changes nothing
    assert await row_count(migrated, executions) == 1000


async def test_execution_search_filters_sorts_and_pages(execution_log: SqlExecutionLog) -> None:
    schedule_id = uuid.uuid4()
    await execution_log.upsert_many(
        [
            _record("a", "completed", job_id=schedule_id, handler_name="report", duration_ms=30,
                    updated_at=T0),
            _record("b", "failed", job_id=schedule_id, handler_name="report", duration_ms=10,
                    updated_at=T0 + timedelta(minutes=1)),
            _record("c", "completed", handler_name="sync", duration_ms=20,
                    updated_at=T0 + timedelta(minutes=2)),
            _record("d", "waiting", handler_name="sync", updated_at=T0 + timedelta(minutes=3)),
        ]
    )  # fmt: skip

    async def ids(**kw: Any) -> tuple[list[str], int]:
        page, total = await execution_log.search(ExecutionQuery(**kw))
        return [r.execution_id for r in page], total

    assert await ids() == (["d", "c", "b", "a"], 4)  # newest first by default
    assert await ids(status=JobExecutionStatus.COMPLETED) == (["c", "a"], 2)
    assert await ids(job_id=schedule_id) == (["b", "a"], 2)
    assert await ids(handler_name="sync") == (["d", "c"], 2)
    assert await ids(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)) == (
        ["c", "b"],
        2,
    )
    # NULL durations last in both directions, on both databases.
    assert await ids(sort=ExecutionSort.DURATION_MS, descending=False) == (["b", "c", "a", "d"], 4)
    assert await ids(sort=ExecutionSort.DURATION_MS, descending=True) == (["a", "c", "b", "d"], 4)
    assert await ids(limit=2, offset=1) == (["c", "b"], 4)
    assert await ids(job_id=uuid.uuid4()) == ([], 0)


async def test_prune_deletes_rows_older_than_the_cutoff(
    migrated: AsyncEngine, execution_log: SqlExecutionLog
) -> None:
    await execution_log.upsert_many(
        [_record(f"p{i}", "completed", updated_at=T0 + timedelta(days=i)) for i in range(5)]
    )
    assert await execution_log.prune(T0 + timedelta(days=2)) == 2
    assert await execution_log.prune(T0 + timedelta(days=2)) == 0
    page, total = await execution_log.search(ExecutionQuery(descending=False))
    assert [r.execution_id for r in page] == ["p2", "p3", "p4"]
    assert total == 3


async def test_log_keeps_rows_of_deleted_and_unknown_schedules(
    store: SqlScheduleStore, execution_log: SqlExecutionLog
) -> None:
    """No foreign key: history outlives its schedule, and a replayed batch is never refused."""
    job = await store.create(make_job(T0))
    await execution_log.upsert_many([_record("x1", "completed", job_id=job.id)])
    await store.delete(job.id)
    await execution_log.upsert_many([_record("x2", "completed", job_id=job.id)])
    page, total = await execution_log.search(ExecutionQuery(job_id=job.id))
    assert total == 2
    assert {r.job_id for r in page} == {job.id}


async def test_hostile_log_values_are_stored_not_refused(execution_log: SqlExecutionLog) -> None:
    """Handler output is not validated upstream: NUL, NaN, lone surrogates and over-long
    names would make PostgreSQL refuse the whole batch; they are made storable instead."""
    await execution_log.upsert_many(
        [
            _record(
                "h1",
                "failed",
                handler_name="x" * 100,
                error_message="bad\x00byte \ud800 end",
                result={"v": math.nan, "s": "a\x00b", "deep": [math.inf]},
            ),
            _record("h2", "completed"),
        ]
    )
    page, total = await execution_log.search(ExecutionQuery(handler_name="x" * 64))
    assert total == 1
    record = page[0]
    assert record.error_message == "bad\ufffdbyte ? end"
    assert record.result == {"v": "nan", "s": "a\ufffdb", "deep": ["inf"]}
    assert (await execution_log.search(ExecutionQuery()))[1] == 2


async def test_naive_datetimes_are_the_callers_bug_not_an_outage(
    store: SqlScheduleStore, execution_log: SqlExecutionLog
) -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive datetime"):
        await store.create(make_job(naive))
    with pytest.raises(ValueError, match="naive datetime"):
        await execution_log.prune(naive)
    assert await store.search(ScheduleQuery()) == ([], 0)


async def test_a_late_waiting_row_never_moves_a_run_back(execution_log: SqlExecutionLog) -> None:
    """The scheduler's "waiting" and the worker's "completed" come from separate writers; the
    waiting one may land last and must not win."""
    await execution_log.upsert_many(
        [_record("race-1", "completed", retry_count=0, duration_ms=5, updated_at=T0)]
    )
    await execution_log.upsert_many(
        [_record("race-1", "waiting", handler_name="noop", updated_at=T0 + timedelta(seconds=1))]
    )
    page, _ = await execution_log.search(ExecutionQuery())
    assert [(r.execution_id, r.status, r.handler_name) for r in page] == [
        ("race-1", JobExecutionStatus.COMPLETED, "noop")
    ]
    assert page[0].updated_at == T0


async def test_a_missed_row_round_trips_and_filters_by_status(
    execution_log: SqlExecutionLog,
) -> None:
    """The scheduler's row for skipped ticks: its figures come back intact, the status filter
    finds it, and writing the same range again (a retried batch) is the same row."""
    schedule_id = uuid.uuid4()
    first, last = T0.replace(microsecond=0), T0.replace(microsecond=0) + timedelta(seconds=28)
    missed = MissedTicks(count=29, first=first, last=last)
    record = missed_record(
        schedule_id,
        missed,
        handler_name="report",
        queue="q",
        recorded_at=T0 + timedelta(seconds=30),
    )
    await execution_log.upsert_many([record, _record("run", "completed", job_id=schedule_id)])
    await execution_log.upsert_many([record])
    page, total = await execution_log.search(ExecutionQuery(status=JobExecutionStatus.MISSED))
    print("missed rows:", [(r.execution_id, r.enqueued_ms, r.result) for r in page])
    assert total == 1
    row = page[0]
    assert row.execution_id == f"missed-{schedule_id}-{int(first.timestamp() * 1000)}"
    assert row.enqueued_ms == int(first.timestamp() * 1000)
    assert (row.job_id, row.trigger, row.handler_name) == (schedule_id, "schedule", "report")
    assert (row.started_at, row.finished_at, row.duration_ms) == (None, None, None)
    assert missed_ticks(row) == missed
    assert (await execution_log.search(ExecutionQuery(job_id=schedule_id)))[1] == 2
