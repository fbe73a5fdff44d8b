"""The execution log's batch upsert on each driver's fastest path.

A worker writes a row for every job, so the cost of a row is the budget: SQLAlchemy's
per-row parameter processing alone (a dict per row, a bind processor per column) cost more
than the rest of the log path, all of it on the event loop. Here rows are plain tuples whose
values are already what SQLAlchemy's column types would have sent, and each driver gets them
through its bulk path:

* SQLite: one prepared ``INSERT ... VALUES (?, ...), (?, ...) ... ON CONFLICT ... DO UPDATE``
  of many rows, run by the driver's ``executemany``. Times are sent as the text SQLAlchemy
  stores for them (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), UUIDs as their 32 hex digits, JSON as
  text.
* PostgreSQL: asyncpg's binary ``COPY`` into a temporary table of the connection, then one
  ``INSERT ... SELECT ... ON CONFLICT ... DO UPDATE`` in the same transaction. The table is
  created if the connection does not have it yet (``ON COMMIT DELETE ROWS`` empties it at
  every commit), and its rows are merged in the order they were sent, so row ids follow the
  batch as with one INSERT per row.

Both statements are compiled from one SQLAlchemy definition of the merge (:func:`merge`), so
the two databases apply the same rules (see ``execution_log``'s module docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Column, Integer, MetaData, Table, and_, case, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateTable

from corral.adapters.sql.engine import _dumps, translate_errors, unavailable
from corral.adapters.sql.storable import opt_text, storable_json, text
from corral.adapters.sql.tables import executions
from corral.core.executions import ExecutionRow
from corral.core.jobs import JobExecutionStatus

MAX_ERROR_CHARS: Final = 64 * 1024
#: Every column but the id, in the table's order (the order SQLAlchemy renders an INSERT in).
COLUMNS: Final = tuple(column.name for column in executions.c if column.name != "id")
#: Fields where an incoming None keeps the stored value.
KEEP_IF_NONE: Final = (
    "job_id",
    "handler_name",
    "queue",
    "started_at",
    "finished_at",
    "duration_ms",
    "result",
    "error_message",
    "stacktrace",
    "trigger",
)
_INT_MAX: Final = 2**31 - 1
_STATUSES: Final = {status.value: status.value for status in JobExecutionStatus}


def _length(name: str) -> int:
    length = getattr(executions.c[name].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"column {name} has no length")
    return length


_ID_LEN: Final = _length("execution_id")
_NAME_LEN: Final = _length("handler_name")
_QUEUE_LEN: Final = _length("queue")
_TRIGGER_LEN: Final = _length("trigger")


def merge(statement: Any) -> Any:
    """``statement`` (an INSERT of :data:`COLUMNS`) as an upsert by ``(execution_id,
    enqueued_ms)`` that folds the incoming row over the stored one."""
    incoming = statement.excluded
    changes: dict[str, Any] = {
        name: func.coalesce(incoming[name], executions.c[name]) for name in KEEP_IF_NONE
    }
    # "waiting" is written by the process that enqueued the job (a scheduler), everything
    # later by the worker, from separate batched writers: a late-landing "waiting" must not
    # move a job that already ran back to waiting.
    is_waiting = incoming["status"] == JobExecutionStatus.WAITING.value
    for name in ("status", "retry_count", "updated_at"):
        changes[name] = case((is_waiting, executions.c[name]), else_=incoming[name])
    # A job that completes after its row was failed (a reconciliation verdict that the job
    # was lost, a failed job retried by hand) must not keep the failure's text.
    revived = and_(
        incoming["status"] == JobExecutionStatus.COMPLETED.value,
        executions.c.status == JobExecutionStatus.FAILED.value,
    )
    for name in ("error_message", "stacktrace"):
        changes[name] = case((revived, incoming[name]), else_=changes[name])
    return statement.on_conflict_do_update(
        index_elements=["execution_id", "enqueued_ms"], set_=changes
    )


def _sql(statement: Any, dialect: Dialect) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: Corral stores aware UTC times only")
    return value


#: SQLAlchemy's SQLite DATETIME storage format (UTC: ``UTCDateTime`` converts first); printf
#: style because it is the quickest to fill, three times per row.
_SQLITE_TIME: Final = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores for ``value``."""
    if value.tzinfo is not UTC:
        value = _aware(value).astimezone(UTC)
    return _SQLITE_TIME % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _status(value: str) -> str:
    return _STATUSES.get(value) or str(JobExecutionStatus(value))  # raises for an unknown one


def storable_values(
    rows: Iterable[ExecutionRow],
    now: datetime,
    *,
    when: Callable[[datetime], Any],
    uuid: Callable[[UUID], Any],
) -> list[tuple[Any, ...]]:
    """Each row's values in :data:`COLUMNS` order, made storable (``storable``), with times
    and UUIDs as ``when`` and ``uuid`` make them; ``created_at`` and a missing ``updated_at``
    are ``now``."""
    stamp = when(now)
    values: list[tuple[Any, ...]] = []
    for row in rows:
        (eid, ms, status, job_id, name, queue, started, finished, duration, result, error,
         trace, retries, trigger, updated) = row  # fmt: skip
        at = stamp if updated is None else when(updated)
        values.append(
            (
                None if job_id is None else uuid(job_id),
                text(eid, _ID_LEN),
                int(ms),
                _status(status),
                None if started is None else when(started),
                None if finished is None else when(finished),
                None if duration is None else max(0, min(int(duration), _INT_MAX)),
                None if result is None else _dumps(storable_json(result)),
                opt_text(error, MAX_ERROR_CHARS),
                opt_text(trace, MAX_ERROR_CHARS),
                max(0, min(int(retries), _INT_MAX)),
                opt_text(name, _NAME_LEN),
                opt_text(queue, _QUEUE_LEN),
                opt_text(trigger, _TRIGGER_LEN),
                at,
                at,
            )
        )
    return values


#: Rows per SQLite statement: x 16 values, under the 999 bound parameters SQLite allowed
#: before 3.32 (Python may bring an older SQLite than this machine's).
SQLITE_ROWS: Final = 50


class SqliteUpsert:
    """Upserts of :data:`SQLITE_ROWS` rows per statement, then one row per statement for the
    rest, each run by one ``executemany``.

    The driver releases the GIL around each statement it steps and takes it back after:
    with one row per statement, the log's thread and the event loop traded the GIL for
    every row (about 3 us of CPU per row more than 50 rows per statement). Two statements,
    compiled once: a statement for every size of the rest cost more to compile than it saved.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statements: dict[int, str] = {}

    def _statement(self, rows: int) -> str:
        statement = self._statements.get(rows)
        if statement is None:
            row: dict[str, Any] = {name: literal_column("?") for name in COLUMNS}
            insert = sqlite.insert(executions).values([row] * rows)
            statement = self._statements[rows] = _sql(merge(insert), self._engine.dialect)
        return statement

    async def prepare(self) -> None:
        self._statement(1)
        self._statement(SQLITE_ROWS)
        async with translate_errors(self._engine.url), self._engine.connect():
            pass

    async def write(self, rows: Iterable[ExecutionRow]) -> None:
        values = storable_values(rows, datetime.now(UTC), when=_sqlite_time, uuid=_hex)
        whole = len(values) - len(values) % SQLITE_ROWS
        chunks = [
            tuple(chain.from_iterable(values[start : start + SQLITE_ROWS]))
            for start in range(0, whole, SQLITE_ROWS)
        ]
        async with translate_errors(self._engine.url), self._engine.begin() as conn:
            if chunks:
                await conn.exec_driver_sql(self._statement(SQLITE_ROWS), chunks)
            if whole < len(values):
                await conn.exec_driver_sql(self._statement(1), values[whole:])


def _hex(value: UUID) -> str:
    return value.hex


def _uuid(value: UUID) -> UUID:
    return value


STAGE: Final = "corral_execution_log_stage"
_ORDER: Final = "ord"


class PostgresUpsert:
    """Binary COPY into a per-connection temporary table, then one merging INSERT."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        stage = Table(
            STAGE,
            MetaData(),
            *(Column(name, executions.c[name].type) for name in COLUMNS),
            Column(_ORDER, Integer()),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
        dialect = engine.dialect
        self._create = str(CreateTable(stage, if_not_exists=True).compile(dialect=dialect))
        staged = select(*(stage.c[name] for name in COLUMNS)).order_by(stage.c[_ORDER])
        insert = postgresql.insert(executions).from_select(COLUMNS, staged)
        self._merge = _sql(merge(insert), dialect)
        self._columns = (*COLUMNS, _ORDER)

    async def prepare(self) -> None:
        await self._write([])

    async def write(self, rows: Iterable[ExecutionRow]) -> None:
        values = storable_values(rows, datetime.now(UTC), when=_aware, uuid=_uuid)
        await self._write([(*row, order) for order, row in enumerate(values)])

    async def _write(self, records: Sequence[tuple[Any, ...]]) -> None:
        url = self._engine.url
        async with translate_errors(url), self._engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                # The driver's own transaction: SQLAlchemy sees no statement on this connection.
                async with driver.transaction():
                    # A round trip per batch, and no state to keep about which pooled
                    # connection has the table.
                    await driver.execute(self._create)
                    if records:
                        await driver.copy_records_to_table(
                            STAGE, records=records, columns=self._columns
                        )
                        await driver.execute(self._merge)
            except Exception as exc:  # whatever asyncpg raises: the database failed the write
                raise unavailable(url, exc) from None


def upsert_for(engine: AsyncEngine) -> SqliteUpsert | PostgresUpsert:
    return PostgresUpsert(engine) if engine.dialect.name == "postgresql" else SqliteUpsert(engine)
