"""The async SQLAlchemy engine for ``DATABASE_URL``, and the one place database errors are
turned into Corral's errors.

* Accepted URLs: ``sqlite+aiosqlite://`` and ``postgresql+asyncpg://``; the sync spellings
  ``sqlite://``, ``postgresql://`` and ``postgres://`` are rewritten to those drivers. Anything
  else is a :class:`~corral.errors.ConfigurationError` naming ``DATABASE_URL``, password
  redacted. Nothing connects when the engine is made: a wrong password or an unreachable server
  shows up on first use as :class:`~corral.errors.StoreUnavailable`.
* SQLite: WAL, foreign keys and a busy timeout on every connection; and SQLAlchemy, not the
  ``sqlite3`` module, emits ``BEGIN`` (the recipe from SQLAlchemy's SQLite docs) so DDL is
  transactional and a failed migration rolls back whole. A connection given the execution
  option ``sqlite_begin="immediate"`` starts with ``BEGIN IMMEDIATE`` (used by migrations, so
  two processes upgrading at once queue on the write lock instead of failing).
* Errors: :func:`translate_errors` wraps every driver or SQLAlchemy error into
  ``StoreUnavailable`` whose message holds the driver's one-line reason run through
  ``redact_text`` (and with the URL's password removed verbatim), never the DSN, never the
  SQL's bound values, and with no chained exception that could carry either.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, literal, select
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from corral.adapters.sql import dsn
from corral.adapters.sql.dsn import (
    BUSY_TIMEOUT_MS,
    SQLITE_PRAGMAS,
    check_schema,
    is_locked,
    locked_retry_delays,
    parse_database_url,
    server_settings,
)
from corral.adapters.sql.failures import first_line, store_unavailable
from corral.adapters.sql.storable import json_text
from corral.errors import ConfigurationError, StoreUnavailable


def normalize_url(url: str) -> URL:
    """Parse ``DATABASE_URL`` and pick the async driver; raise ConfigurationError otherwise
    (the checks are ``dsn.parse_database_url``'s, which the worker's log writer uses)."""
    parsed = parse_database_url(url)
    try:
        return make_url(url.strip()).set(drivername=parsed.driver)
    except (ArgumentError, ValueError):  # pragma: no cover - parse_database_url refused it
        raise ConfigurationError(f"DATABASE_URL: malformed URL {parsed.shown!r}") from None


def describe(url: URL) -> str:
    """Where the database is, for messages: ``postgresql 127.0.0.1:5432/db`` or
    ``sqlite ./corral.db``. Never user or password."""
    return dsn.describe(url.get_backend_name(), url.host, url.port, url.database)


def make_engine(
    url: str,
    *,
    schema: str | None = None,
    connect_timeout_s: float = 5.0,
    pool_size: int = 5,
) -> AsyncEngine:
    """An async engine for ``url`` (see the module docstring). Does not connect.

    ``schema`` (PostgreSQL only) sets the connection's ``search_path``, so every table,
    trigger and the migration version table live in that schema.
    """
    parsed = normalize_url(url)
    check_schema(schema, parse_database_url(url))
    json_args: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": json.loads}
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **json_args
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    return create_async_engine(
        parsed,
        connect_args={"timeout": connect_timeout_s, "server_settings": server_settings(schema)},
        pool_pre_ping=True,  # a server restart costs one failed checkout, not a failed call
        pool_size=pool_size,
        **json_args,
    )


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the sqlite3 module (it never begins before DDL); see _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            for delay in locked_retry_delays():
                try:
                    cursor.execute(pragma)
                    break
                except Exception as exc:
                    if not is_locked(exc):
                        raise
                # The hook runs in SQLAlchemy's greenlet on the event loop: pause without
                # blocking the loop.
                await_only(asyncio.sleep(delay))
            else:
                cursor.execute(pragma)  # the last try: its error is the caller's
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("sqlite_begin")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")


def unavailable(url: URL, exc: BaseException) -> StoreUnavailable:
    """A StoreUnavailable for ``exc`` that names where the database is, with no secret."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    text = first_line(cause)
    # Never the statement or its parameters (SQLAlchemy appends them to its own messages).
    if isinstance(exc, SQLAlchemyError) and cause is exc:
        text = text.split(" [SQL:", 1)[0]
    refused = isinstance(exc, IntegrityError | DataError | ProgrammingError) or (
        isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
    )
    # The asyncio adapters wrap the driver's exception: name the driver's (more telling) class.
    kind = type(cause.__cause__ or cause).__name__
    password = None if url.password is None else str(url.password)
    return store_unavailable(describe(url), password, text, kind, refused=refused)


@asynccontextmanager
async def translate_errors(url: URL) -> AsyncIterator[None]:
    """Turn driver, pool and SQLAlchemy errors into StoreUnavailable (``from None``: the
    original may quote the DSN or the statement's values, so it is not chained). A value the
    driver cannot bind is raised as the ValueError/TypeError it is."""
    try:
        yield
    except StatementError as exc:
        # A bad argument caught while binding (a naive datetime, a NaN in JSON) is the caller's
        # bug, not an outage: raise it as itself.
        if not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError | TypeError):
            raise exc.orig from None
        raise unavailable(url, exc) from None
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise unavailable(url, exc) from None


async def ping(engine: AsyncEngine) -> None:
    """One round trip; raise StoreUnavailable if the database does not answer."""
    async with translate_errors(engine.url), engine.connect() as conn:
        await conn.execute(select(literal(1)))
