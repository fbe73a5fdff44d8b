"""The SQL adapter: SQLAlchemy 2 (async) over SQLite (aiosqlite) or PostgreSQL (asyncpg), with
Alembic migrations shipped in ``migrations/`` (in the wheel, so an installed Corral can
upgrade its own schema at start).

Typical use (the runtime does this)::

    engine = make_engine(settings.database_url.get_secret_value())
    await upgrade(engine)                      # idempotent, atomic
    store, log = SqlScheduleStore(engine), SqlExecutionLog(engine)
    ...
    await engine.dispose()
"""

from typing import TYPE_CHECKING

from corral.adapters.sql.engine import make_engine, ping
from corral.adapters.sql.execution_log import SqlExecutionLog
from corral.adapters.sql.migrate import current_revision, head_revision, upgrade
from corral.adapters.sql.schedule_store import SqlScheduleStore

__all__ = [
    "SqlExecutionLog",
    "SqlScheduleStore",
    "current_revision",
    "head_revision",
    "make_engine",
    "ping",
    "upgrade",
]

if TYPE_CHECKING:  # mypy proves the adapters satisfy the ports they are wired to
    from sqlalchemy.ext.asyncio import AsyncEngine

    from corral.core.ports import ExecutionLog, ScheduleStore

    def _conforms(engine: AsyncEngine) -> tuple[ScheduleStore, ExecutionLog]:
        return SqlScheduleStore(engine), SqlExecutionLog(engine)
