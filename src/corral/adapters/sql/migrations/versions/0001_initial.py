"""Initial schema: scheduled jobs, the execution log, and the schedules change counter.

The tables are spelled out here rather than imported from ``tables.py``: a revision is a
record of what was created, and must not change when the current model does.

Revision ID: 0001
Revises:
Create Date: 2026-05-10
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Statement-level on PostgreSQL, so a bulk edit bumps the counter once; TRUNCATE too. The
# function keeps the search_path it was created under, so an edit from a session with
# another search_path still finds corral_meta.
_PG_FUNCTION = """
CREATE FUNCTION corral_bump_schedules_version() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE corral_meta SET version = version + 1 WHERE name = 'schedules';
    RETURN NULL;
END;
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER corral_schedules_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON system_scheduled_jobs
FOR EACH STATEMENT EXECUTE FUNCTION corral_bump_schedules_version()
"""
_BUMP = "UPDATE corral_meta SET version = version + 1 WHERE name = 'schedules';"
_SQLITE_TRIGGERS = {
    "corral_schedules_inserted": "INSERT",
    "corral_schedules_updated": "UPDATE",
    "corral_schedules_deleted": "DELETE",
}


def _json(*, none_as_null: bool = False) -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "system_scheduled_jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("handler_name", sa.String(64), nullable=False),
        sa.Column("cron_expression", sa.String(64), nullable=False),
        sa.Column(
            "timezone", sa.String(32), nullable=False, server_default=sa.text("'Asia/Shanghai'")
        ),
        sa.Column("status", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("payload", _json(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("retry_attempts", sa.Integer(), nullable=False, server_default=sa.text("3")),
        sa.Column("retry_delay", sa.Integer(), nullable=False, server_default=sa.text("5000")),
        sa.Column("timeout", sa.Integer(), nullable=False, server_default=sa.text("30000")),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("5")),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("catch_up_ms", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("status IN (0, 1, 2)", name="ck_system_scheduled_jobs_status"),
    )
    for column in ("status", "domain", "handler_name"):
        op.create_index(f"ix_system_scheduled_jobs_{column}", "system_scheduled_jobs", [column])

    op.create_table(
        "system_job_execution_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("execution_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("result", _json(none_as_null=True), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("handler_name", sa.String(64), nullable=True),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("execution_id", name="uq_system_job_execution_logs_execution_id"),
    )
    for column in ("job_id", "status", "updated_at"):
        op.create_index(
            f"ix_system_job_execution_logs_{column}", "system_job_execution_logs", [column]
        )

    meta = op.create_table(
        "corral_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.bulk_insert(meta, [{"name": "schedules", "version": 0}])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif dialect == "sqlite":
        for name, operation in _SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} AFTER {operation} ON system_scheduled_jobs "
                f"BEGIN {_BUMP} END"
            )
    else:  # pragma: no cover - make_engine accepts only these two
        raise RuntimeError(f"unsupported database {dialect!r}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS corral_schedules_changed ON system_scheduled_jobs")
        op.execute("DROP FUNCTION IF EXISTS corral_bump_schedules_version()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("corral_meta")
    op.drop_table("system_job_execution_logs")
    op.drop_table("system_scheduled_jobs")
