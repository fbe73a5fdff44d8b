"""What the worker's execution log sends without SQLAlchemy, held to what SQLAlchemy makes:
the SQL text (``execution_sql``) to what it compiles from the one definition of the upsert
(``execution_upsert.merge``), and the URL (``dsn``) to how it reads ``DATABASE_URL``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corral.adapters.sql import execution_sql, execution_upsert, execution_write
from corral.adapters.sql.dsn import (
    BUSY_TIMEOUT_MS,
    parse_database_url,
    postgres_connect_args,
    server_settings,
    sqlite_connect_args,
)
from corral.adapters.sql.engine import make_engine, normalize_url
from corral.adapters.sql.tables import executions
from corral.errors import ConfigurationError


def _flat(sql: str) -> str:
    """SQL with SQLAlchemy's layout (new lines, tabs, padding in parentheses) made one line."""
    return re.sub(r"\s+", " ", sql).strip().replace("( ", "(").replace(" )", ")")


@pytest.mark.parametrize("rows", [1, 2, execution_sql.SQLITE_ROWS])
def test_the_sqlite_upsert_is_what_sqlalchemy_compiles(rows: int) -> None:
    assert execution_sql.sqlite_upsert(rows) == _flat(execution_upsert.sqlite_upsert(rows))


def test_the_postgres_statements_are_what_sqlalchemy_compiles() -> None:
    create, merge = execution_upsert.postgres_statements()
    assert execution_sql.PG_CREATE_STAGE == _flat(create)
    assert execution_sql.PG_MERGE == _flat(merge)


@given(st.floats(min_value=-2e12, max_value=4e12, allow_nan=False))
@example(999.9995)  # rounds up into the next second
@example(1_700_000_000_999.9996)
@example(-1.5)
def test_a_time_in_milliseconds_is_stored_as_its_datetime(ms: float) -> None:
    """The worker notes its jobs' times as milliseconds: each database gets exactly what the
    same time as a datetime gives it."""
    as_datetime = datetime.fromtimestamp(ms / 1000, UTC)
    assert execution_write._sqlite_time(ms) == execution_write._sqlite_time(as_datetime)
    assert execution_write._aware(ms) == as_datetime


def test_the_columns_and_lengths_are_the_tables() -> None:
    assert execution_sql.COLUMNS == execution_upsert.COLUMNS
    lengths = {
        "execution_id": execution_write.ID_LEN,
        "handler_name": execution_write.NAME_LEN,
        "queue": execution_write.QUEUE_LEN,
        "trigger": execution_write.TRIGGER_LEN,
    }
    assert {name: getattr(executions.c[name].type, "length", None) for name in lengths} == lengths


URLS = [
    "sqlite+aiosqlite:///./corral.db",
    "sqlite:///corral.db",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:////tmp/corral.db",
    "sqlite:///%2Ftmp%2Fcorral%20db.db",
    "sqlite:///file:corral.db?mode=ro&uri=true",
    "sqlite:///file:shared.db?cache=shared&uri=true&timeout=2",
    "sqlite:///corral.db?check_same_thread=false&cached_statements=10",
    "postgresql+asyncpg://corral:pw@db.internal:6432/corral",
    "postgresql://corral:p%40ss%2Fw%3Ard%25@127.0.0.1/corral",
    "postgres://corral@localhost/corral?ssl=require&command_timeout=5",
    "postgresql://corral:pw@[::1]:5433/corral",
    "postgresql://corral@/corral?host=/var/run/postgresql",
    "postgresql://corral@/corral?host=h1:5432&host=h2:5433",
    "postgresql://corral@/corral?host=h1,h2&port=5432,5433",
    "postgresql://corral@/corral?host=h1:6000",
    "postgresql://corral@db/corral?port=6000",
    "postgresql://corral@db/corral?prepared_statement_cache_size=0",
    "postgresql://u:pw@db",
]


@pytest.mark.parametrize("url", URLS)
def test_a_url_is_read_as_sqlalchemy_reads_it(url: str) -> None:
    ours, theirs = parse_database_url(url), normalize_url(url)
    assert (ours.driver, ours.username, ours.password, ours.host, ours.port, ours.database) == (
        theirs.drivername,
        theirs.username,
        theirs.password,
        theirs.host,
        theirs.port,
        theirs.database,
    )
    assert ours.query == dict(theirs.query)


@pytest.mark.parametrize("url", URLS)
def test_the_driver_gets_what_the_engines_dialect_gives_it(url: str) -> None:
    """The connect arguments, with the engine's own (timeouts, session settings) on top."""
    engine = make_engine(url, connect_timeout_s=3)
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs = dict(kwargs)
    parsed = parse_database_url(url)
    if parsed.backend == "sqlite":
        kwargs.pop("factory", None)  # SQLAlchemy's workaround of its own
        assert sqlite_connect_args(parsed) == (args[0], kwargs)
        return
    assert args == []
    kwargs.pop("prepared_statement_cache_size", None)  # SQLAlchemy's, popped before asyncpg
    assert postgres_connect_args(parsed) == kwargs
    assert server_settings(None) == {"application_name": "corral"}
    assert BUSY_TIMEOUT_MS == 5000


@pytest.mark.parametrize(
    "url",
    [
        "",
        "  ",
        "mysql://u:pw@h/db",
        "not a url",
        "postgresql://u:pw@h:port/db",
        "sqlite:////no/such/dir/corral.db",
    ],
)
def test_a_bad_url_is_refused_alike(url: str) -> None:
    with pytest.raises(ConfigurationError) as ours:
        parse_database_url(url)
    with pytest.raises(ConfigurationError) as theirs:
        normalize_url(url)
    assert str(ours.value) == str(theirs.value)
    assert "pw" not in str(ours.value)


def test_a_relative_sqlite_path_is_made_absolute(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    filename, _ = sqlite_connect_args(parse_database_url("sqlite:///./corral.db"))
    assert filename == str(tmp_path / "corral.db")
