"""The execution log's batch upsert, on a driver connection (aiosqlite or asyncpg): the one
write path of the log, used by the worker's own connection (``driver_log``) and by
``SqlExecutionLog`` on a connection of its SQLAlchemy pool. No SQLAlchemy here.

A worker writes a row for every job, so the cost of a row is the budget: SQLAlchemy's
per-row parameter processing alone (a dict per row, a bind processor per column) cost more
than the rest of the log path, all of it on the event loop. Here rows are plain tuples whose
values are already what SQLAlchemy's column types would have sent, and each driver gets them
through its bulk path:

* SQLite: one prepared ``INSERT ... VALUES (?, ...), (?, ...) ... ON CONFLICT ... DO UPDATE``
  of many rows, run by the driver's ``executemany``. Times are sent as the text SQLAlchemy
  stores for them (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), UUIDs as their 32 hex digits, JSON as
  text. The driver releases the GIL around each statement it steps: with one row per
  statement, its thread and the event loop traded the GIL for every row (about 3 us of CPU
  per row more than 50 rows per statement).
* PostgreSQL: asyncpg's binary ``COPY`` into a temporary table of the connection, then one
  ``INSERT ... SELECT ... ON CONFLICT ... DO UPDATE`` in the same transaction. The table is
  created if the connection does not have it yet (a round trip per batch, and no state to
  keep about which connection has it; ``ON COMMIT DELETE ROWS`` empties it at every commit),
  and its rows are merged in the order they were sent, so row ids follow the batch as with
  one INSERT per row.

The statements are ``execution_sql``'s constants (see there for how they keep one source).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Final
from uuid import UUID

from corral.adapters.sql.execution_sql import (
    PG_CREATE_STAGE,
    PG_MERGE,
    SELECT_VERSION,
    SQLITE_ROWS,
    SQLITE_UPSERT_MANY,
    SQLITE_UPSERT_ONE,
    STAGE,
    STAGE_COLUMNS,
)
from corral.adapters.sql.storable import json_text, opt_text, storable_json, text
from corral.core.executions import ExecutionRow, Moment, fold
from corral.core.jobs import JobExecutionStatus

MAX_ERROR_CHARS: Final = 64 * 1024
#: Column lengths of ``tables.executions`` (a test holds them equal).
ID_LEN: Final = 255
NAME_LEN: Final = 64
QUEUE_LEN: Final = 64
TRIGGER_LEN: Final = 16
_INT_MAX: Final = 2**31 - 1
_STATUSES: Final = {status.value: status.value for status in JobExecutionStatus}


def merge_rows(rows: Iterable[ExecutionRow]) -> list[ExecutionRow]:
    """One row per stored key, later rows folded over earlier ones: ``ON CONFLICT`` may touch
    each row only once per statement."""
    merged: dict[tuple[str, int], ExecutionRow] = {}
    for row in rows:
        key = (text(row[0], ID_LEN), int(row[1]))
        earlier = merged.get(key)
        merged[key] = row if earlier is None else fold(row, earlier)
    return list(merged.values())


def _aware(value: Moment) -> datetime:
    """``value`` as the aware datetime PostgreSQL gets."""
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(value / 1000, UTC)
    if value.tzinfo is None:
        raise ValueError("naive datetime: Corral stores aware UTC times only")
    return value


#: SQLAlchemy's SQLite DATETIME storage format (UTC: ``UTCDateTime`` converts first); printf
#: style because it is the quickest to fill, three times per row.
_SQLITE_SECOND: Final = "%04d-%02d-%02d %02d:%02d:%02d"
_SQLITE_TIME: Final = _SQLITE_SECOND + ".%06d"
#: The text of each whole second met lately: a worker's rows of one second share it.
_SECONDS: dict[float, str] = {}
_MAX_SECONDS: Final = 4096


def _sqlite_time(value: Moment) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores for ``value``."""
    if not isinstance(value, datetime):
        return _sqlite_ms_time(value)
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


def _sqlite_ms_time(ms: float) -> str:
    """``_sqlite_time(datetime.fromtimestamp(ms / 1000, UTC))`` without the datetime: its
    microseconds are rounded as ``fromtimestamp`` rounds them (half to even), and the text up
    to the second is kept per second."""
    fraction, whole = math.modf(ms / 1000)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        micro -= 1_000_000
        whole += 1
    elif micro < 0:  # before 1970
        micro += 1_000_000
        whole -= 1
    second = _SECONDS.get(whole)
    if second is None:
        if len(_SECONDS) >= _MAX_SECONDS:
            _SECONDS.clear()
        second = _SECONDS[whole] = _SQLITE_SECOND % time.gmtime(whole)[:6]
    return f"{second}.{micro:06d}"


def _status(value: str) -> str:
    return _STATUSES.get(value) or str(JobExecutionStatus(value))  # raises for an unknown one


def storable_values(
    rows: Iterable[ExecutionRow],
    now: datetime,
    *,
    when: Callable[[Moment], Any],
    uuid: Callable[[UUID], Any],
) -> list[tuple[Any, ...]]:
    """Each row's values in ``COLUMNS`` order, made storable (``storable``), with times and
    UUIDs as ``when`` and ``uuid`` make them; ``created_at`` and a missing ``updated_at`` are
    ``now``. Raises ValueError for a value no database should get (a naive time)."""
    stamp = when(now)
    values: list[tuple[Any, ...]] = []
    for row in rows:
        (eid, ms, status, job_id, name, queue, started, finished, duration, result, error,
         trace, retries, trigger, updated) = row  # fmt: skip
        at = stamp if updated is None else when(updated)
        values.append(
            (
                None if job_id is None else uuid(job_id),
                text(eid, ID_LEN),
                int(ms),
                _status(status),
                None if started is None else when(started),
                None if finished is None else when(finished),
                None if duration is None else max(0, min(int(duration), _INT_MAX)),
                None if result is None else json_text(storable_json(result)),
                opt_text(error, MAX_ERROR_CHARS),
                opt_text(trace, MAX_ERROR_CHARS),
                max(0, min(int(retries), _INT_MAX)),
                opt_text(name, NAME_LEN),
                opt_text(queue, QUEUE_LEN),
                opt_text(trigger, TRIGGER_LEN),
                at,
                at,
            )
        )
    return values


def _hex(value: UUID) -> str:
    return value.hex


def _uuid(value: UUID) -> UUID:
    return value


def batch(backend: str, rows: Sequence[ExecutionRow]) -> list[tuple[Any, ...]]:
    """What :func:`write` sends for ``rows`` on ``backend`` (``sqlite``/``postgresql``):
    merged by key and made storable, before any connection is taken."""
    merged = merge_rows(rows)
    now = datetime.now(UTC)
    if backend == "sqlite":
        return storable_values(merged, now, when=_sqlite_time, uuid=_hex)
    values = storable_values(merged, now, when=_aware, uuid=_uuid)
    return [(*row, order) for order, row in enumerate(values)]


async def write(backend: str, conn: Any, values: Sequence[tuple[Any, ...]]) -> None:
    """Upsert :func:`batch`'s ``values`` in one transaction of ``conn`` (an aiosqlite
    connection that leaves transactions to its caller, or an asyncpg connection). With no
    values, make the connection ready for writes."""
    if backend == "sqlite":
        await _write_sqlite(conn, values)
    else:
        await _write_postgres(conn, values)


async def _write_sqlite(conn: Any, values: Sequence[tuple[Any, ...]]) -> None:
    if not values:
        return
    whole = len(values) - len(values) % SQLITE_ROWS
    chunks = [
        tuple(chain.from_iterable(values[start : start + SQLITE_ROWS]))
        for start in range(0, whole, SQLITE_ROWS)
    ]
    await conn.execute("BEGIN")
    try:
        if chunks:
            await conn.executemany(SQLITE_UPSERT_MANY, chunks)
        if whole < len(values):
            await conn.executemany(SQLITE_UPSERT_ONE, values[whole:])
        await conn.execute("COMMIT")
    except BaseException:
        # Also when cancelled: the connection must not keep the write lock. (A ROLLBACK that
        # fails has nothing to undo; the first error is the one to report.)
        with contextlib.suppress(Exception):
            await conn.execute("ROLLBACK")
        raise


async def _write_postgres(conn: Any, records: Sequence[tuple[Any, ...]]) -> None:
    async with conn.transaction():
        await conn.execute(PG_CREATE_STAGE)
        if records:
            await conn.copy_records_to_table(STAGE, records=records, columns=STAGE_COLUMNS)
            await conn.execute(PG_MERGE)


async def read_versions(backend: str, conn: Any) -> list[str] | None:
    """The migration version table's rows; None when there is no version table."""
    try:
        if backend == "sqlite":
            async with conn.execute(SELECT_VERSION) as cursor:
                rows = await cursor.fetchall()
        else:
            rows = await conn.fetch(SELECT_VERSION)
    except Exception as exc:
        if is_missing_table(exc):
            return None
        raise
    return [str(row[0]) for row in rows]


def is_missing_table(exc: BaseException) -> bool:
    """True for the drivers' "no such table" (SQLite) and undefined table (PostgreSQL)."""
    return getattr(exc, "sqlstate", None) == "42P01" or "no such table" in str(exc)
