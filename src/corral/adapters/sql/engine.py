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

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

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

from corral.core.redaction import redact_text, redact_url
from corral.errors import ConfigurationError, StoreUnavailable

SQLITE_DRIVER: Final = "sqlite+aiosqlite"
POSTGRES_DRIVER: Final = "postgresql+asyncpg"
_REWRITES: Final = {
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
}
BUSY_TIMEOUT_MS: Final = 5000
_SCHEMA_RE: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_MAX_DETAIL: Final = 300


def _dumps(value: Any) -> str:
    """JSON for the JSON/JSONB columns: UTF-8 as is, and never NaN/Infinity (JSONB rejects
    them; validation upstream should have caught them already)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def normalize_url(url: str) -> URL:
    """Parse ``DATABASE_URL`` and pick the async driver; raise ConfigurationError otherwise."""
    if not url or not url.strip():
        raise ConfigurationError("DATABASE_URL: must not be empty")
    shown = redact_url(url)
    try:
        parsed = make_url(url.strip())
        _ = parsed.port  # a non-numeric port fails here or in make_url
    except (ArgumentError, ValueError):
        raise ConfigurationError(f"DATABASE_URL: malformed URL {shown!r}") from None
    driver = _REWRITES.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"DATABASE_URL: unsupported database {parsed.drivername!r} in {shown!r}; "
            "use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user:password@host/db"
        )
    parsed = parsed.set(drivername=driver)
    if driver == SQLITE_DRIVER:
        _check_sqlite_path(parsed, shown)
    return parsed


def _check_sqlite_path(url: URL, shown: str) -> None:
    database = url.database or ""
    if not database or database == ":memory:" or url.query.get("uri") == "true":
        return
    parent = Path(database).parent  # SQLite does not expand "~", so neither does the check
    if not parent.is_dir():
        raise ConfigurationError(
            f"DATABASE_URL: directory {str(parent)!r} for the SQLite file does not exist "
            f"({shown!r})"
        )


def describe(url: URL) -> str:
    """Where the database is, for messages: ``postgresql 127.0.0.1:5432/db`` or
    ``sqlite ./corral.db``. Never user or password."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database or ':memory:'}"
    host = url.host or "localhost"
    return f"postgresql {host}:{url.port or 5432}/{url.database or ''}"


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
    json_args: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": json.loads}
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise ConfigurationError("DATABASE_URL: a schema applies to PostgreSQL only")
        engine = create_async_engine(
            parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **json_args
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    settings: dict[str, str] = {"application_name": "corral"}
    if schema is not None:
        if not _SCHEMA_RE.match(schema):
            raise ConfigurationError(f"database schema {schema!r} is not a plain identifier")
        settings["search_path"] = schema
    return create_async_engine(
        parsed,
        connect_args={"timeout": connect_timeout_s, "server_settings": settings},
        pool_pre_ping=True,  # a server restart costs one failed checkout, not a failed call
        pool_size=pool_size,
        **json_args,
    )


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the sqlite3 module (it never begins before DDL); see _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
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
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else ""
    # Never the statement or its parameters (SQLAlchemy appends them to its own messages).
    if isinstance(exc, SQLAlchemyError) and cause is exc:
        text = text.split(" [SQL:", 1)[0]
    text = redact_text(text)
    if url.password:
        text = text.replace(str(url.password), "***")
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "..."
    # The asyncio adapters wrap the driver's exception: name the driver's (more telling) class.
    kind = type(cause.__cause__ or cause).__name__
    detail = f"{kind}: {text}" if text else kind
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        what = "database schema not migrated (run `corral db upgrade`)"
    elif isinstance(exc, IntegrityError | DataError | ProgrammingError) or (
        isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
    ):
        what = "database refused the statement"
    else:
        what = "database unavailable"
    return StoreUnavailable(f"{what} ({describe(url)}): {detail}")


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
