"""``SqlScheduleStore``: the ``ScheduleStore`` port over ``system_scheduled_jobs``.

Validation is the caller's (``core.schedules.validate_changes``); this module only maps
:class:`ScheduledJob` to rows and back, and every value reaches the database as a bound
parameter. Every write is one statement (``INSERT/UPDATE ... RETURNING``, ``DELETE``), so a
concurrent write never sees or leaves a half-updated row; of two concurrent updates the last
one to commit wins, field by field.

The change marker
-----------------
``change_marker()`` is ``"<counter>:<row count>:<max(updated_at)>"`` read in one statement.
The counter is ``corral_meta.version`` for ``schedules``, bumped by database triggers (created
by the migration) on every INSERT, UPDATE and DELETE of the table, and TRUNCATE on PostgreSQL,
whoever issues it: the API, another process, or someone at a SQL prompt. So a direct
``UPDATE system_scheduled_jobs SET cron_expression = ...`` that leaves ``updated_at`` alone is
still seen. Row count and newest ``updated_at`` are folded in as a second line of defence.

Blind spots: changes made while the triggers are disabled or dropped (PostgreSQL
``session_replication_role = replica``, ``ALTER TABLE ... DISABLE TRIGGER``, a restore with
``--disable-triggers``, a SQLite file rebuilt without the triggers) are seen only if they also
change the row count or the newest ``updated_at``; and a database swapped for a copy whose
counter, count and newest ``updated_at`` all equal the old ones is not seen. A statement that
changes nothing (an UPDATE matching no row) may bump the counter on PostgreSQL: a harmless
extra reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Row, case, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.adapters.sql.engine import translate_errors
from corral.adapters.sql.tables import SCHEDULES_COUNTER, meta, schedules
from corral.core.queries import MAX_LIMIT, ScheduleQuery, ScheduleSort
from corral.core.schedules import WRITABLE, ScheduledJob, ScheduleStatus
from corral.core.validation import is_strict_int
from corral.errors import ScheduleNotFound

_SORT_COLUMNS: Final = {
    ScheduleSort.NAME: schedules.c.name,
    ScheduleSort.CREATED_AT: schedules.c.created_at,
    ScheduleSort.UPDATED_AT: schedules.c.updated_at,
    ScheduleSort.PRIORITY: schedules.c.priority,
    ScheduleSort.HANDLER_NAME: schedules.c.handler_name,
}


# The table's columns are ScheduledJob's fields, name for name (status stored as its number).
def _to_row(job: ScheduledJob) -> dict[str, Any]:
    row = {column.name: getattr(job, column.name) for column in schedules.c}
    row["status"] = int(job.status)
    return row


def _to_job(row: Row[Any]) -> ScheduledJob:
    values = dict(row._mapping)
    values["status"] = ScheduleStatus(values["status"])
    if not isinstance(values["payload"], dict):
        values["payload"] = {}
    return ScheduledJob(**values)


def _changes(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(WRITABLE))
    if unknown:
        raise ValueError(f"not writable: {', '.join(unknown)}")
    values = dict(fields)
    if "status" in values:
        values["status"] = int(values["status"])
    return values


def check_page(limit: int, offset: int) -> None:
    """Defence in depth behind the HTTP layer: SQLite reads ``LIMIT -1`` as "no limit"."""
    if not is_strict_int(limit, 1, MAX_LIMIT):
        raise ValueError(f"limit must be an integer 1-{MAX_LIMIT}, got {limit!r}")
    if not is_strict_int(offset, low=0):
        raise ValueError(f"offset must be an integer >= 0, got {offset!r}")


class SqlScheduleStore:
    """Scheduled-job definitions in SQL. Raises ScheduleNotFound for unknown ids and
    StoreUnavailable (no password, no DSN) when the database fails."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._url = engine.url

    async def create(self, job: ScheduledJob) -> ScheduledJob:
        statement = insert(schedules).values(_to_row(job)).returning(*schedules.c)
        async with translate_errors(self._url), self._engine.begin() as conn:
            row = (await conn.execute(statement)).one()
        return _to_job(row)

    async def get(self, schedule_id: UUID) -> ScheduledJob:
        statement = select(schedules).where(schedules.c.id == schedule_id)
        async with translate_errors(self._url), self._engine.connect() as conn:
            row = (await conn.execute(statement)).one_or_none()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _to_job(row)

    async def update(
        self, schedule_id: UUID, fields: Mapping[str, Any], now: datetime
    ) -> ScheduledJob:
        """Apply ``fields`` and set ``updated_at`` in one statement. ``updated_at`` never moves
        back: if another writer (with a clock ahead of ours) stored a later time, it stays."""
        stored = schedules.c.updated_at
        new_time = literal(now, type_=stored.type)
        statement = (
            update(schedules)
            .where(schedules.c.id == schedule_id)
            .values(
                **_changes(fields), updated_at=case((stored > new_time, stored), else_=new_time)
            )
            .returning(*schedules.c)
        )
        async with translate_errors(self._url), self._engine.begin() as conn:
            row = (await conn.execute(statement)).one_or_none()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _to_job(row)

    async def delete(self, schedule_id: UUID) -> None:
        statement = delete(schedules).where(schedules.c.id == schedule_id)
        async with translate_errors(self._url), self._engine.begin() as conn:
            deleted = (await conn.execute(statement)).rowcount
        if deleted == 0:
            raise ScheduleNotFound(schedule_id)

    async def search(self, query: ScheduleQuery) -> tuple[list[ScheduledJob], int]:
        """One page and the total. ``name_contains`` is a case-insensitive substring match in
        which ``%``, ``_`` and ``/`` are literal; ties in the sort key are broken by id, so
        pages neither overlap nor skip rows."""
        check_page(query.limit, query.offset)
        equal = {
            "status": None if query.status is None else int(query.status),
            "domain": query.domain,
            "handler_name": query.handler_name,
        }
        conditions = [schedules.c[k] == v for k, v in equal.items() if v is not None]
        if query.name_contains:
            conditions.append(schedules.c.name.icontains(query.name_contains, autoescape=True))
        column = _SORT_COLUMNS[ScheduleSort(query.sort)]
        order = column.desc() if query.descending else column.asc()
        page = (
            select(schedules)
            .where(*conditions)
            .order_by(order, schedules.c.id.asc())
            .limit(query.limit)
            .offset(query.offset)
        )
        count = select(func.count()).select_from(schedules).where(*conditions)
        async with translate_errors(self._url), self._engine.connect() as conn:
            rows = (await conn.execute(page)).all()
            total = (await conn.execute(count)).scalar_one()
        return [_to_job(row) for row in rows], int(total)

    async def list_enabled(self) -> list[ScheduledJob]:
        statement = (
            select(schedules)
            .where(schedules.c.status == int(ScheduleStatus.ENABLED))
            .order_by(schedules.c.created_at.asc(), schedules.c.id.asc())
        )
        async with translate_errors(self._url), self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [_to_job(row) for row in rows]

    async def change_marker(self) -> str:
        """See the module docstring: counter, row count and newest ``updated_at``."""
        counter = select(meta.c.version).where(meta.c.name == SCHEDULES_COUNTER).scalar_subquery()
        statement = select(
            counter, func.count(schedules.c.id), func.max(schedules.c.updated_at)
        ).select_from(schedules)
        async with translate_errors(self._url), self._engine.connect() as conn:
            version, count, newest = (await conn.execute(statement)).one()
        newest_text = newest.isoformat() if isinstance(newest, datetime) else str(newest)
        return f"{version}:{count}:{newest_text}"
