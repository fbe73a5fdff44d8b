"""The schema as SQLAlchemy Core tables (what the stores query). The migrations in
``migrations/versions`` create exactly this; a test compares the two.

Choices, beyond the documented columns (whose names, types and defaults are kept exactly):

* Columns with a default are NOT NULL (an INSERT that omits them gets the default; a NULL
  status or timezone would mean nothing to the scheduler). ``description`` and the added
  ``catch_up_ms`` stay nullable. ``status`` is checked to be 0, 1 or 2 by the database too, so a
  hand-edited row cannot crash a scheduler.
* ``system_job_execution_logs.id`` is an auto-increment integer (BIGINT identity on
  PostgreSQL, the rowid on SQLite): rows are addressed by ``(execution_id, enqueued_ms)``, the
  id only orders and pages them, and a 1,000-row upsert needs no ids from Python.
* ``execution_id`` (the queue's job id) alone is not unique for all time: BullMQ's ids come
  from a counter that starts again when Redis does, and a caller's job id can be reused once
  the job is gone. ``enqueued_ms``, the job's creation time, tells such executions apart, so
  history is never overwritten by a newer job (0 on rows written before the column existed).
* ``system_job_execution_logs.job_id`` has **no foreign key**: the log is history and keeps the
  schedule's id after the schedule is deleted; and the log writer, which may replay rows after a
  database outage, must never have a batch refused because a schedule was deleted meanwhile.
* ``corral_meta`` holds one counter per watched table (row ``schedules``), bumped by triggers on
  every INSERT, UPDATE, DELETE (and TRUNCATE on PostgreSQL) of ``system_scheduled_jobs`` - the
  change marker the schedulers poll (see ``schedule_store.py``).
* Times are ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; SQLite stores naive UTC text.
  :class:`UTCDateTime` makes both read back as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

SCHEDULES: Final = "system_scheduled_jobs"
EXECUTIONS: Final = "system_job_execution_logs"
META: Final = "corral_meta"
SCHEDULES_COUNTER: Final = "schedules"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Corral stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - both drivers give datetimes
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(*, none_as_null: bool = False) -> JSON:
    return JSON(none_as_null=none_as_null).with_variant(
        JSONB(none_as_null=none_as_null), "postgresql"
    )


metadata: Final = MetaData()

schedules: Final = Table(
    SCHEDULES,
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("description", Text(), nullable=True),
    Column("handler_name", String(64), nullable=False),
    Column("cron_expression", String(64), nullable=False),
    Column("timezone", String(32), nullable=False, server_default=text("'Asia/Shanghai'")),
    Column("status", Integer(), nullable=False, server_default=text("1")),
    Column("payload", _json(), nullable=False, server_default=text("'{}'")),
    Column("retry_attempts", Integer(), nullable=False, server_default=text("3")),
    Column("retry_delay", Integer(), nullable=False, server_default=text("5000")),
    Column("timeout", Integer(), nullable=False, server_default=text("30000")),
    Column("priority", Integer(), nullable=False, server_default=text("5")),
    Column("domain", String(64), nullable=False),
    Column("catch_up_ms", Integer(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=func.now()),
    CheckConstraint("status IN (0, 1, 2)", name="ck_system_scheduled_jobs_status"),
    Index("ix_system_scheduled_jobs_status", "status"),
    Index("ix_system_scheduled_jobs_domain", "domain"),
    Index("ix_system_scheduled_jobs_handler_name", "handler_name"),
)

executions: Final = Table(
    EXECUTIONS,
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        Identity(),
        primary_key=True,
    ),
    Column("job_id", Uuid(), nullable=True),
    Column("execution_id", String(255), nullable=False),
    # The job's creation time in ms: with execution_id, unique for all time (job ids are not).
    Column("enqueued_ms", BigInteger(), nullable=False, server_default=text("0")),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("duration_ms", Integer(), nullable=True),
    # none_as_null: a None result is SQL NULL (so COALESCE keeps the stored one), not JSON null.
    Column("result", _json(none_as_null=True), nullable=True),
    Column("error_message", Text(), nullable=True),
    Column("stacktrace", Text(), nullable=True),
    Column("retry_count", Integer(), nullable=False, server_default=text("0")),
    Column("handler_name", String(64), nullable=True),
    Column("queue", String(64), nullable=True),
    Column("trigger", String(16), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=func.now()),
    UniqueConstraint(
        "execution_id", "enqueued_ms", name="uq_system_job_execution_logs_execution_id_enqueued_ms"
    ),
    Index("ix_system_job_execution_logs_job_id", "job_id"),
    Index("ix_system_job_execution_logs_status", "status"),
    Index("ix_system_job_execution_logs_updated_at", "updated_at"),
)

meta: Final = Table(
    META,
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", BigInteger(), nullable=False, server_default=text("0")),
)
