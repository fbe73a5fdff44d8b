"""The execution log's upsert, defined once in SQLAlchemy: the rules by which an incoming row
is folded over the stored one.

Nothing sends these statements as compiled here: the writes go through the drivers
(``execution_write``) with the text in ``execution_sql``, so a worker never loads SQLAlchemy.
A test compiles :func:`sqlite_upsert` and :func:`postgres_statements` for their dialects and
holds ``execution_sql``'s constants equal to the result: change the rules here, then there.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Column, Integer, MetaData, Table, and_, case, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.schema import CreateTable

from corral.adapters.sql.execution_sql import ORDER, STAGE
from corral.adapters.sql.tables import executions
from corral.core.jobs import JobExecutionStatus

#: Every column but the id, in the table's order (the order SQLAlchemy renders an INSERT in).
COLUMNS: Final = tuple(column.name for column in executions.c if column.name != "id")
#: Fields where an incoming None keeps the stored value.
KEEP_IF_NONE: Final = (
    "job_id",
    "handler_name",
    "queue",
    "started_at",
    "finished_at",
    "duration_ms",
    "result",
    "error_message",
    "stacktrace",
    "trigger",
)


def merge(statement: Any) -> Any:
    """``statement`` (an INSERT of :data:`COLUMNS`) as an upsert by ``(execution_id,
    enqueued_ms)`` that folds the incoming row over the stored one."""
    incoming = statement.excluded
    changes: dict[str, Any] = {
        name: func.coalesce(incoming[name], executions.c[name]) for name in KEEP_IF_NONE
    }
    # "waiting" is written by the process that enqueued the job (a scheduler), everything
    # later by the worker, from separate batched writers: a late-landing "waiting" must not
    # move a job that already ran back to waiting.
    is_waiting = incoming["status"] == JobExecutionStatus.WAITING.value
    for name in ("status", "retry_count", "updated_at"):
        changes[name] = case((is_waiting, executions.c[name]), else_=incoming[name])
    # A job that completes after its row was failed (a reconciliation verdict that the job
    # was lost, a failed job retried by hand) must not keep the failure's text.
    revived = and_(
        incoming["status"] == JobExecutionStatus.COMPLETED.value,
        executions.c.status == JobExecutionStatus.FAILED.value,
    )
    for name in ("error_message", "stacktrace"):
        changes[name] = case((revived, incoming[name]), else_=changes[name])
    return statement.on_conflict_do_update(
        index_elements=["execution_id", "enqueued_ms"], set_=changes
    )


def _sql(statement: Any, dialect: Any) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def sqlite_upsert(rows: int) -> str:
    """The SQLite upsert of ``rows`` rows of ``?`` parameters."""
    row: dict[str, Any] = {name: literal_column("?") for name in COLUMNS}
    insert = sqlite.insert(executions).values([row] * rows)
    return _sql(merge(insert), SQLiteDialect_aiosqlite())


def postgres_statements() -> tuple[str, str]:
    """PostgreSQL's staging table (a temporary table of the connection, emptied at every
    commit) and the merge of its rows, in the order they were staged."""
    stage = Table(
        STAGE,
        MetaData(),
        *(Column(name, executions.c[name].type) for name in COLUMNS),
        Column(ORDER, Integer()),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    create = str(CreateTable(stage, if_not_exists=True).compile(dialect=dialect))
    staged = select(*(stage.c[name] for name in COLUMNS)).order_by(stage.c[ORDER])
    insert = postgresql.insert(executions).from_select(COLUMNS, staged)
    return create, _sql(merge(insert), dialect)
