"""Schema migrations, run programmatically (no ``alembic.ini``): the scripts ship inside the
package in ``migrations/``.

Atomicity. :func:`upgrade` runs every pending revision and the version-table update in ONE
transaction, so a failure leaves the schema exactly as it was:

* PostgreSQL has transactional DDL; a transaction-scoped advisory lock
  (``pg_advisory_xact_lock``) makes concurrent upgraders (a scheduler and a worker starting
  together) run one after the other; the second finds the schema current and does nothing.
* SQLite's DDL is transactional too, once the ``sqlite3`` module stops managing transactions
  (the engine does that, see ``engine.py``). The migration starts with ``BEGIN IMMEDIATE``,
  which takes the write lock first, so concurrent upgraders queue on the busy timeout. What
  SQLite cannot roll back: nothing in revision 0001 (CREATE TABLE/INDEX/TRIGGER and INSERT are
  all transactional). Future revisions that need a table rebuild (``batch_alter_table``) are
  also transactional on SQLite, as long as they avoid ``PRAGMA foreign_keys`` changes and
  ``VACUUM``, which do not run inside a transaction.

The version table is ``corral_alembic_version`` rather than Alembic's default, so an
application that shares the database and uses Alembic itself keeps its own history.

Start-up cost. Every worker and scheduler upgrades at start (``CORRAL_AUTO_MIGRATE``), and
almost always finds the schema current. Alembic costs 0.2-0.35 s and about 13 MiB to
load, so :func:`upgrade` to head first reads the version table (``execution_write.
read_versions``, the read the worker makes on its own connection before it loads this module
at all) and loads Alembic only when that is not exactly :data:`HEAD_REVISION`. The read takes
no lock: a schema another process is migrating still shows the old revision, so the slow path
runs and waits for that process's lock as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from corral.adapters.sql.engine import describe, make_engine, translate_errors
from corral.adapters.sql.execution_sql import HEAD_REVISION, VERSION_TABLE
from corral.adapters.sql.execution_write import read_versions
from corral.core.redaction import redact_text
from corral.errors import ConfigurationError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["HEAD_REVISION", "VERSION_TABLE", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().with_name("migrations")
# An arbitrary constant key for pg_advisory_xact_lock: "corral" in ASCII.
_LOCK_KEY: Final = 0x636F7272616C


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    # configparser interpolation: a '%' in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = VERSION_TABLE
    return config


def head_revision() -> str:
    """The newest revision this version of Corral ships, as Alembic finds it in the scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no migrations found in the package")
    return head


@asynccontextmanager
async def _connect(target: str | AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection to ``target``, an engine or a URL (its engine is disposed of afterwards),
    with database errors translated."""
    engine = target if isinstance(target, AsyncEngine) else make_engine(target)
    try:
        async with translate_errors(engine.url), engine.connect() as conn:
            yield conn
    finally:
        if engine is not target:
            await engine.dispose()


async def upgrade(target: str | AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; atomic, see the module docstring).

    ``target`` is a ``DATABASE_URL`` (an engine is made and disposed of) or an engine.
    Raises ConfigurationError for a bad URL or a schema this version does not know (a newer
    Corral migrated it), StoreUnavailable when the database cannot be reached or refuses.
    """
    engine = target if isinstance(target, AsyncEngine) else make_engine(target)
    try:
        if revision == "head":
            async with _connect(engine) as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                if await read_versions(conn.dialect.name, driver) == [HEAD_REVISION]:
                    return
        from alembic.util.exc import CommandError

        async with _connect(engine) as conn:
            await conn.execution_options(sqlite_begin="immediate")
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
                try:
                    await conn.run_sync(_run_upgrade, revision)
                except CommandError as exc:
                    raise ConfigurationError(
                        f"DATABASE_URL: cannot migrate {describe(engine.url)}: "
                        f"{redact_text(str(exc))}"
                    ) from None
    finally:
        if engine is not target:
            await engine.dispose()


def _run_upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


async def current_revision(target: str | AsyncEngine) -> str | None:
    """The schema's revision, or None for a database Corral has never migrated."""
    async with _connect(target) as conn:
        return await conn.run_sync(_read_revision)


def _read_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
