"""The execution log's writes on a connection of their own, straight through the driver
(aiosqlite or asyncpg): what a worker (or a scheduler) writes its log with.

A worker only ever upserts its jobs' rows, and SQLAlchemy and Alembic were most of its memory
and start-up time (about 20 MiB and 0.13 s for SQLAlchemy alone) for one statement. So this
module loads neither: the URL is read by ``dsn`` as SQLAlchemy reads it, the connection is
made as ``engine.make_engine`` makes one (the same PRAGMAs and busy timeout on SQLite; the same
connect timeout, ``application_name`` and ``search_path`` on PostgreSQL), the rows are written
by ``execution_write`` (the code ``SqlExecutionLog`` writes with), and errors become
StoreUnavailable as ``engine.translate_errors`` makes them.

One connection, made at the first use and replaced after any failure on it: a database that
restarted costs the batch in flight one failed attempt, which the log writer retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from corral.adapters.sql import execution_write
from corral.adapters.sql.dsn import (
    BUSY_TIMEOUT_MS,
    SQLITE_PRAGMAS,
    check_schema,
    is_locked,
    locked_retry_delays,
    parse_database_url,
    postgres_connect_args,
    server_settings,
    sqlite_connect_args,
)
from corral.adapters.sql.execution_sql import HEAD_REVISION
from corral.adapters.sql.failures import driver_failure
from corral.core.executions import ExecutionRecord, ExecutionRow, as_row


class DriverExecutionLog:
    """The write half of the ``ExecutionLog`` port (``prepare``, ``upsert_rows``,
    ``upsert_many``) on one driver connection. Raises StoreUnavailable when the database
    fails; the caller (the batching log writer) keeps the rows and retries."""

    def __init__(
        self, url: str, *, schema: str | None = None, connect_timeout_s: float = 5.0
    ) -> None:
        self._url = parse_database_url(url)
        check_schema(schema, self._url)
        self._backend = self._url.backend
        self._schema = schema
        self._connect_timeout_s = connect_timeout_s
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> Any:
        if self._backend == "sqlite":
            import aiosqlite

            filename, options = sqlite_connect_args(self._url)
            # As make_engine: the busy timeout, and transactions begun by the writer only.
            options.update(timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            connecting = aiosqlite.connect(filename, **options)
            # The driver's thread must not keep a process that forgot to close it alive.
            connecting._thread.daemon = True
            conn = await connecting
            try:
                for pragma in SQLITE_PRAGMAS:
                    for delay in locked_retry_delays():
                        try:
                            await conn.execute(pragma)
                            break
                        except Exception as exc:
                            if not is_locked(exc):
                                raise
                        await asyncio.sleep(delay)
                    else:
                        await conn.execute(pragma)  # the last try: its error is the caller's
            except BaseException:
                await conn.close()
                raise
            return conn
        import asyncpg  # type: ignore[import-untyped]

        args = postgres_connect_args(self._url)
        args.update(timeout=self._connect_timeout_s, server_settings=server_settings(self._schema))
        return await asyncpg.connect(**args)

    def _usable(self, conn: Any) -> bool:
        # asyncpg notices a socket the server closed (a restart, a terminated backend) as
        # soon as the loop reads it: replace that connection before it fails a batch.
        return self._backend == "sqlite" or not conn.is_closed()

    @asynccontextmanager
    async def _using(self) -> AsyncIterator[Any]:
        """The connection, opened if need be; dropped after a failure on it, and any failure
        raised as StoreUnavailable."""
        async with self._lock:
            try:
                if self._conn is None or not self._usable(self._conn):
                    await self._drop()
                    self._conn = await self._connect()
                yield self._conn
            except Exception as exc:
                await self._drop()
                raise driver_failure(self._url.describe(), self._url.password, exc) from None

    async def _drop(self, *, graceful: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if self._backend == "sqlite":
                await conn.close()
            elif graceful:
                await asyncio.wait_for(conn.close(), self._connect_timeout_s)
            else:
                conn.terminate()  # after a failure: no goodbye to a server that may be gone
        if self._backend != "sqlite" and not conn.is_closed():
            conn.terminate()

    async def prepare(self) -> None:
        """Connect (and on PostgreSQL make the staging table), so the first batch does not pay
        for it while jobs run."""
        async with self._using() as conn:
            await execution_write.write(self._backend, conn, [])

    async def upsert_many(self, records: Sequence[ExecutionRecord]) -> None:
        await self.upsert_rows([as_row(record) for record in records])

    async def upsert_rows(self, rows: Sequence[ExecutionRow]) -> None:
        """Upsert rows (``core.executions.ExecutionRow``), later ones of a key over earlier."""
        values = execution_write.batch(self._backend, rows)  # a bad value raises as itself
        if not values:
            return
        async with self._using() as conn:
            await execution_write.write(self._backend, conn, values)

    async def at_head(self) -> bool:
        """True if the schema is at this Corral's newest revision (no migration due)."""
        async with self._using() as conn:
            versions = await execution_write.read_versions(self._backend, conn)
        return versions == [HEAD_REVISION]

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop(graceful=True)


async def schema_at_head(url: str) -> bool:
    """True if ``url``'s schema needs no migration, checked without SQLAlchemy or Alembic."""
    log = DriverExecutionLog(url)
    try:
        return await log.at_head()
    finally:
        await log.aclose()
