"""``SqlExecutionLog``: the ``ExecutionLog`` port over ``system_job_execution_logs``.

Upserts are by ``(execution_id, enqueued_ms)`` (see ``tables.py`` for why not the id alone), in
one transaction per batch, on each driver's bulk path (``execution_write``, the code the
worker's own connection writes with too; the rules are defined in ``execution_upsert``). An incoming
``None`` keeps the stored value (``COALESCE(excluded.x, x)``); ``status``, ``retry_count`` and
``updated_at`` always take the incoming value (a record is the latest known state), except that
a late ``waiting`` never moves a row back, and a ``completed`` over a ``failed`` row clears the
failure's text; ``created_at`` is set once. The reconciliation with Redis
(``services.reconcile``) writes only with conditions (:meth:`SqlExecutionLog.insert_missing`,
:meth:`SqlExecutionLog.settle`), so it never overwrites a status a worker wrote after it looked.

Values are made storable on both databases before they are sent (``storable``: NULs, lone
surrogates, NaN in a result, over-long strings), and ``error_message`` and ``stacktrace`` are
capped at :data:`MAX_ERROR_CHARS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from corral.adapters.sql import execution_write
from corral.adapters.sql.engine import describe, translate_errors
from corral.adapters.sql.execution_write import MAX_ERROR_CHARS
from corral.adapters.sql.failures import driver_failure
from corral.adapters.sql.schedule_store import check_page
from corral.adapters.sql.storable import opt_text, storable_json, text
from corral.adapters.sql.tables import executions
from corral.core.executions import ExecutionRecord, ExecutionRow, as_row
from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery, ExecutionSort

CHUNK_ROWS: Final = 1000  # ids per IN (...): below SQLite's and asyncpg's parameter limits
_SORT_COLUMNS: Final = {
    ExecutionSort.STARTED_AT: executions.c.started_at,
    ExecutionSort.FINISHED_AT: executions.c.finished_at,
    ExecutionSort.UPDATED_AT: executions.c.updated_at,
    ExecutionSort.DURATION_MS: executions.c.duration_ms,
}


def _to_row(record: ExecutionRecord, now: datetime) -> dict[str, Any]:
    updated_at = record.updated_at or now
    duration = record.duration_ms
    return {
        "execution_id": text(record.execution_id, 255),
        "enqueued_ms": int(record.enqueued_ms),
        "status": str(JobExecutionStatus(record.status)),
        "job_id": record.job_id,
        "handler_name": opt_text(record.handler_name, 64),
        "queue": opt_text(record.queue, 64),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_ms": None if duration is None else max(0, min(int(duration), 2**31 - 1)),
        "result": None if record.result is None else storable_json(record.result),
        "error_message": opt_text(record.error_message, MAX_ERROR_CHARS),
        "stacktrace": opt_text(record.stacktrace, MAX_ERROR_CHARS),
        "retry_count": max(0, min(int(record.retry_count), 2**31 - 1)),
        "trigger": opt_text(record.trigger, 16),
        "created_at": updated_at,
        "updated_at": updated_at,
    }


def _to_record(row: Row[Any]) -> ExecutionRecord:
    m = row._mapping
    return ExecutionRecord(
        execution_id=m["execution_id"],
        enqueued_ms=m["enqueued_ms"],
        status=JobExecutionStatus(m["status"]),
        job_id=m["job_id"],
        handler_name=m["handler_name"],
        queue=m["queue"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        duration_ms=m["duration_ms"],
        result=m["result"],
        error_message=m["error_message"],
        stacktrace=m["stacktrace"],
        retry_count=m["retry_count"],
        trigger=m["trigger"],
        updated_at=m["updated_at"],
    )


class SqlExecutionLog:
    """The execution history in SQL. Raises StoreUnavailable when the database fails; the
    caller (the batching log writer) keeps the records and retries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._url = engine.url
        self._backend = engine.dialect.name
        self._insert = postgresql.insert if self._backend == "postgresql" else sqlite.insert

    async def prepare(self) -> None:
        """Open a connection and make it ready for writes, so the first batch does not pay for
        it while jobs run."""
        await self._write([])

    async def upsert_many(self, records: Sequence[ExecutionRecord]) -> None:
        await self.upsert_rows([as_row(record) for record in records])

    async def upsert_rows(self, rows: Sequence[ExecutionRow]) -> None:
        """Upsert rows (``core.executions.ExecutionRow``), later ones of a key over earlier."""
        values = execution_write.batch(self._backend, rows)  # a bad value raises as itself
        if values:
            await self._write(values)

    async def _write(self, values: Sequence[tuple[Any, ...]]) -> None:
        async with translate_errors(self._url), self._engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            try:
                # Straight on the driver: SQLAlchemy sees no statement on this connection.
                await execution_write.write(self._backend, driver, values)
            except Exception as exc:
                password = None if self._url.password is None else str(self._url.password)
                raise driver_failure(describe(self._url), password, exc) from None

    async def search(self, query: ExecutionQuery) -> tuple[list[ExecutionRecord], int]:
        """One page and the total. ``since``/``until`` bound ``updated_at`` (since <= t <
        until); rows whose sort key is NULL come last in either direction, on both
        databases; ties are broken by id, so pages neither overlap nor skip rows."""
        check_page(query.limit, query.offset)
        conditions: list[ColumnElement[bool]] = []
        if query.status is not None:
            conditions.append(executions.c.status == str(JobExecutionStatus(query.status)))
        if query.job_id is not None:
            conditions.append(executions.c.job_id == query.job_id)
        if query.handler_name is not None:
            conditions.append(executions.c.handler_name == query.handler_name)
        if query.since is not None:
            conditions.append(executions.c.updated_at >= query.since)
        if query.until is not None:
            conditions.append(executions.c.updated_at < query.until)
        column = _SORT_COLUMNS[ExecutionSort(query.sort)]
        key = column.desc() if query.descending else column.asc()
        tie = executions.c.id.desc() if query.descending else executions.c.id.asc()
        page = (
            select(executions)
            .where(*conditions)
            .order_by(key.nulls_last(), tie)
            .limit(query.limit)
            .offset(query.offset)
        )
        count = select(func.count()).select_from(executions).where(*conditions)
        async with translate_errors(self._url), self._engine.connect() as conn:
            rows = (await conn.execute(page)).all()
            total = (await conn.execute(count)).scalar_one()
        return [_to_record(row) for row in rows], int(total)

    # -- reconciliation with Redis (services.reconcile) ----------------------------------------
    async def unsettled(
        self,
        queue: str,
        *,
        statuses: Sequence[str],
        updated_before: datetime,
        after_row: int,
        limit: int,
    ) -> list[tuple[int, ExecutionRecord]]:
        """Up to ``limit`` rows of ``queue`` in ``statuses`` last updated before
        ``updated_before``, with their row ids, in id order after ``after_row`` (a cursor that
        lets successive calls walk every such row)."""
        statement = (
            select(executions)
            .where(
                executions.c.queue == queue,
                executions.c.status.in_(list(statuses)),
                executions.c.updated_at < updated_before,
                executions.c.id > after_row,
            )
            .order_by(executions.c.id.asc())
            .limit(limit)
        )
        async with translate_errors(self._url), self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [(int(row._mapping["id"]), _to_record(row)) for row in rows]

    async def present(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of the ``(execution_id, enqueued_ms)`` keys have a row."""
        wanted = {(text(execution_id, 255), int(ms)) for execution_id, ms in keys}
        if not wanted:
            return set()
        ids = sorted({execution_id for execution_id, _ in wanted})
        found: set[tuple[str, int]] = set()
        async with translate_errors(self._url), self._engine.connect() as conn:
            for start in range(0, len(ids), CHUNK_ROWS):
                statement = select(executions.c.execution_id, executions.c.enqueued_ms).where(
                    executions.c.execution_id.in_(ids[start : start + CHUNK_ROWS])
                )
                found.update((r[0], int(r[1])) for r in (await conn.execute(statement)).all())
        return found & wanted

    async def insert_missing(self, records: Sequence[ExecutionRecord]) -> int:
        """Insert the rows that do not exist yet (never touching one that does: a worker may
        have written it since it was found missing); return how many were inserted."""
        if not records:
            return 0
        now = datetime.now(UTC)
        statement = (
            self._insert(executions)
            .on_conflict_do_nothing(index_elements=["execution_id", "enqueued_ms"])
            .returning(executions.c.id)
        )
        inserted = 0
        async with translate_errors(self._url), self._engine.begin() as conn:
            for record in records:
                row = _to_row(record, now)
                inserted += len((await conn.execute(statement, row)).all())
        return inserted

    async def settle(
        self, record: ExecutionRecord, *, seen_status: str, seen_updated_at: datetime
    ) -> bool:
        """Write ``record``'s non-None fields over its row only if the row still has the
        status and ``updated_at`` it was read with (a write since then wins); True if it did."""
        values = {
            name: value
            for name, value in _to_row(record, datetime.now(UTC)).items()
            if value is not None and name not in ("execution_id", "enqueued_ms", "created_at")
        }
        statement = (
            update(executions)
            .where(
                executions.c.execution_id == text(record.execution_id, 255),
                executions.c.enqueued_ms == int(record.enqueued_ms),
                executions.c.status == seen_status,
                executions.c.updated_at == seen_updated_at,
            )
            .values(**values)
        )
        async with translate_errors(self._url), self._engine.begin() as conn:
            return int((await conn.execute(statement)).rowcount) == 1

    async def prune(self, older_than: datetime) -> int:
        """Delete rows last updated before ``older_than``; return how many went."""
        statement = delete(executions).where(executions.c.updated_at < older_than)
        async with translate_errors(self._url), self._engine.begin() as conn:
            return int((await conn.execute(statement)).rowcount)
