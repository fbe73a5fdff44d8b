"""Alembic environment for Corral's schema. Run it through ``corral.adapters.sql.migrate``
(or ``corral db upgrade``): that opens the connection, takes the migration lock and owns the one
transaction every revision runs in; this file only binds Alembic to that connection."""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "Corral's migrations run through corral.adapters.sql.migrate.upgrade() "
        "(`corral db upgrade`); alembic's command line and --sql mode are not supported"
    )

context.configure(
    connection=connection,
    target_metadata=None,
    version_table=config.attributes.get("version_table", "corral_alembic_version"),
    transactional_ddl=True,  # SQLite too: the engine emits BEGIN, so its DDL is transactional
)
with context.begin_transaction():
    context.run_migrations()
