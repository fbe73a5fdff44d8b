"""The SQL text of the execution log's writes, as constants: the worker sends it through the
drivers and never loads SQLAlchemy to compile it (SQLAlchemy alone is about 20 MiB and 0.13 s
of a worker's start).

The rules have one source all the same: ``execution_upsert.merge`` defines the upsert in
SQLAlchemy, and a test holds every statement here equal to what SQLAlchemy compiles from it
(and :data:`COLUMNS` to the table's columns). Change the definition, then this text.

Every statement is built from the constants here, at import: no value is ever formatted into
SQL (rows go as parameters or through ``COPY``), hence the ``S608`` exemptions.
"""

from __future__ import annotations

from typing import Final

TABLE: Final = "system_job_execution_logs"
#: Every column but the id, in the table's order (the order SQLAlchemy renders an INSERT in).
COLUMNS: Final = tuple(
    "job_id execution_id enqueued_ms status started_at finished_at duration_ms result "
    "error_message stacktrace retry_count handler_name queue trigger created_at updated_at".split()
)
#: The migration version table (``migrate.VERSION_TABLE``) and the revision this Corral ships.
VERSION_TABLE: Final = "corral_alembic_version"
HEAD_REVISION: Final = "0002"
SELECT_VERSION: Final = f"SELECT version_num FROM {VERSION_TABLE}"  # noqa: S608


def _set_clause(trigger: str) -> str:
    """The merge of an incoming row (``excluded``) over the stored one; SQLite quotes the
    ``trigger`` column (a keyword there), PostgreSQL does not."""
    t = TABLE
    waiting = "excluded.status = 'waiting'"
    revived = f"excluded.status = 'completed' AND {t}.status = 'failed'"

    def keep(name: str) -> str:
        return f"coalesce(excluded.{name}, {t}.{name})"

    def unless_waiting(name: str) -> str:
        return f"{name} = CASE WHEN ({waiting}) THEN {t}.{name} ELSE excluded.{name} END"

    def revive(name: str) -> str:
        return f"{name} = CASE WHEN ({revived}) THEN excluded.{name} ELSE {keep(name)} END"

    return "ON CONFLICT (execution_id, enqueued_ms) DO UPDATE SET " + ", ".join(
        (
            f"job_id = {keep('job_id')}",
            unless_waiting("status"),
            f"started_at = {keep('started_at')}",
            f"finished_at = {keep('finished_at')}",
            f"duration_ms = {keep('duration_ms')}",
            f"result = {keep('result')}",
            revive("error_message"),
            revive("stacktrace"),
            unless_waiting("retry_count"),
            f"handler_name = {keep('handler_name')}",
            f"queue = {keep('queue')}",
            f"{trigger} = {keep(trigger)}",
            unless_waiting("updated_at"),
        )
    )


_SQLITE_COLUMNS: Final = ", ".join('"trigger"' if c == "trigger" else c for c in COLUMNS)
_SQLITE_ROW: Final = "(" + ", ".join("?" for _ in COLUMNS) + ")"
_SQLITE_SET: Final = _set_clause('"trigger"')


def sqlite_upsert(rows: int) -> str:
    """An upsert of ``rows`` rows of ``?`` parameters, in :data:`COLUMNS` order."""
    values = ", ".join([_SQLITE_ROW] * rows)
    return f"INSERT INTO {TABLE} ({_SQLITE_COLUMNS}) VALUES {values} {_SQLITE_SET}"  # noqa: S608


#: Rows per SQLite statement: x 16 values, under the 999 bound parameters SQLite allowed
#: before 3.32 (Python may bring an older SQLite than this machine's).
SQLITE_ROWS: Final = 50
SQLITE_UPSERT_ONE: Final = sqlite_upsert(1)
SQLITE_UPSERT_MANY: Final = sqlite_upsert(SQLITE_ROWS)

#: PostgreSQL: rows are copied into this temporary table of the connection, then merged.
STAGE: Final = "corral_execution_log_stage"
#: The staged row's place in its batch: rows are merged in the order they were sent.
ORDER: Final = "ord"
STAGE_COLUMNS: Final = (*COLUMNS, ORDER)
PG_CREATE_STAGE: Final = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ("
    "job_id UUID, execution_id VARCHAR(255), enqueued_ms BIGINT, status VARCHAR(16), "
    "started_at TIMESTAMP WITH TIME ZONE, finished_at TIMESTAMP WITH TIME ZONE, "
    "duration_ms INTEGER, result JSONB, error_message TEXT, stacktrace TEXT, "
    "retry_count INTEGER, handler_name VARCHAR(64), queue VARCHAR(64), trigger VARCHAR(16), "
    "created_at TIMESTAMP WITH TIME ZONE, updated_at TIMESTAMP WITH TIME ZONE, "
    f"{ORDER} INTEGER) ON COMMIT DELETE ROWS"
)
PG_MERGE: Final = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "  # noqa: S608
    f"SELECT {', '.join(f'{STAGE}.{c}' for c in COLUMNS)} "
    f"FROM {STAGE} ORDER BY {STAGE}.{ORDER} {_set_clause('trigger')}"
)
