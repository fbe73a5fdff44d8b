"""Execution-log rows keyed by (execution_id, enqueued_ms); failed attempts keep a traceback.

A job id alone came round again whenever Redis started empty (BullMQ numbers jobs from a
counter stored there), and the new job's row overwrote the old one's history. Rows written
before this revision get ``enqueued_ms = 0``, so they keep their own keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "system_job_execution_logs"
_OLD = "uq_system_job_execution_logs_execution_id"
_NEW = "uq_system_job_execution_logs_execution_id_enqueued_ms"


def upgrade() -> None:
    # batch mode: SQLite cannot drop a constraint in place, so the table is copied once.
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(
            sa.Column("enqueued_ms", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("stacktrace", sa.Text(), nullable=True))
        batch.drop_constraint(_OLD, type_="unique")
        batch.create_unique_constraint(_NEW, ["execution_id", "enqueued_ms"])


def downgrade() -> None:
    # Rows that differ only by enqueued_ms cannot share the old key: keep the newest of each.
    op.execute(
        f"DELETE FROM {_TABLE} WHERE id NOT IN "  # noqa: S608 - module constants only
        f"(SELECT MAX(id) FROM {_TABLE} GROUP BY execution_id)"
    )
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_constraint(_NEW, type_="unique")
        batch.create_unique_constraint(_OLD, ["execution_id"])
        batch.drop_column("stacktrace")
        batch.drop_column("enqueued_ms")
