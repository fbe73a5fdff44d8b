"""The SQL adapter: SQLAlchemy 2 (async) over SQLite (aiosqlite) or PostgreSQL (asyncpg), with
Alembic migrations shipped in ``migrations/`` (in the wheel, so an installed Corral can
upgrade its own schema at start); and the execution log's writes straight on the drivers
(``driver_log``), which is all a worker loads.

Typical use (the runtime does this)::

    engine = make_engine(settings.database_url.get_secret_value())
    await upgrade(engine)                      # idempotent, atomic
    store, log = SqlScheduleStore(engine), SqlExecutionLog(engine)
    ...
    await engine.dispose()

The names below load their modules when first used: importing ``corral.adapters.sql.
driver_log`` must not load SQLAlchemy through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "SqlExecutionLog": "execution_log",
    "SqlScheduleStore": "schedule_store",
    "current_revision": "migrate",
    "head_revision": "migrate",
    "make_engine": "engine",
    "ping": "engine",
    "upgrade": "migrate",
}

__all__ = [
    "SqlExecutionLog",
    "SqlScheduleStore",
    "current_revision",
    "head_revision",
    "make_engine",
    "ping",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


if TYPE_CHECKING:  # mypy proves the adapters satisfy the ports they are wired to
    from sqlalchemy.ext.asyncio import AsyncEngine

    from corral.adapters.sql.engine import make_engine, ping
    from corral.adapters.sql.execution_log import SqlExecutionLog
    from corral.adapters.sql.migrate import current_revision, head_revision, upgrade
    from corral.adapters.sql.schedule_store import SqlScheduleStore
    from corral.core.ports import ExecutionLog, ScheduleStore

    def _conforms(engine: AsyncEngine) -> tuple[ScheduleStore, ExecutionLog]:
        return SqlScheduleStore(engine), SqlExecutionLog(engine)
