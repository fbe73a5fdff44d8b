"""The SQL adapter: SQLAlchemy 2 (async) over SQLite (aiosqlite) or PostgreSQL (asyncpg), with
Alembic migrations shipped in ``migrations/`` (in the wheel, so an installed Corral can
upgrade its own schema at start); and the execution log's writes straight on the drivers
(``driver_log``), which is all a worker loads.

Typical use (the runtime does this)::

    engine = engine.make_engine(settings.database_url.get_secret_value())
    await migrate.upgrade(engine)              # idempotent, atomic
    store = schedule_store.SqlScheduleStore(engine)
    log = execution_log.SqlExecutionLog(engine)
    ...
    await engine.dispose()

The package itself exports nothing: callers import the module they use, so that importing
``driver_log`` (all a worker loads) does not load SQLAlchemy through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy proves the adapters satisfy the ports they are wired to
    from sqlalchemy.ext.asyncio import AsyncEngine

    from corral.adapters.sql.execution_log import SqlExecutionLog
    from corral.adapters.sql.schedule_store import SqlScheduleStore
    from corral.core.ports import ExecutionLog, ScheduleStore

    def _conforms(engine: AsyncEngine) -> tuple[ScheduleStore, ExecutionLog]:
        return SqlScheduleStore(engine), SqlExecutionLog(engine)
