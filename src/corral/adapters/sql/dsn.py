"""``DATABASE_URL`` parsed without SQLAlchemy, and what each driver is given to connect.

The worker writes its execution log straight through aiosqlite or asyncpg (see
``driver_log``), so it must read the URL exactly as SQLAlchemy's ``make_url`` and its two
dialects do: the same forms are accepted, percent-encoded user names, passwords and paths are
decoded, query parameters reach the driver. A test compares :func:`parse_database_url` and
:func:`connect_args` with ``engine.normalize_url`` and the dialects' own arguments on a list of
URLs; ``normalize_url`` takes its checks (and their messages) from here.

* Accepted: ``sqlite+aiosqlite://`` and ``postgresql+asyncpg://``; the sync spellings
  ``sqlite://``, ``postgresql://`` and ``postgres://`` are rewritten to those drivers.
  Anything else is a :class:`~corral.errors.ConfigurationError` naming ``DATABASE_URL``,
  password redacted.
* SQLite: a relative path is made absolute (as SQLAlchemy does); with ``?uri=true`` the path is
  a SQLite URI and the other query parameters are appended to it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from corral.core.redaction import redact_url
from corral.errors import ConfigurationError

SQLITE_DRIVER: Final = "sqlite+aiosqlite"
POSTGRES_DRIVER: Final = "postgresql+asyncpg"
REWRITES: Final = {
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
}
#: How long a SQLite connection waits for another's write lock (``timeout`` and the PRAGMA).
BUSY_TIMEOUT_MS: Final = 5000
#: Run on every SQLite connection: readers never block the writer (WAL), fsync only at
#: checkpoints (NORMAL is durable in WAL mode but for a power loss), foreign keys enforced.
SQLITE_PRAGMAS: Final = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)


def locked_retry_delays() -> Iterator[float]:
    """The pauses between tries of a PRAGMA that SQLite refused with "database is locked".

    SQLite switches a file to WAL under an exclusive lock that it takes without waiting on the
    busy timeout: processes opening a new database file at once (a worker and a scheduler
    started together on a fresh ``DATABASE_URL``) can be refused. They try again, for about as
    long as the busy timeout would have waited."""
    waited, delay = 0.0, 0.005
    while waited < BUSY_TIMEOUT_MS / 1000:
        yield delay
        waited += delay
        delay = min(delay * 2, 0.1)


def is_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" (``SQLITE_BUSY``), as either driver raises it."""
    return "database is locked" in str(exc)


APPLICATION_NAME: Final = "corral"
_SCHEMA_RE: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
# SQLAlchemy's URL grammar (``sqlalchemy.engine.url._parse_url``): what it accepts, this does.
_URL_RE: Final = re.compile(
    r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)
# The sqlite3 arguments SQLAlchemy's pysqlite dialect takes from the query string.
_SQLITE_ARGS: Final[dict[str, Callable[[str], Any]]] = {
    "uri": lambda v: v.lower() in ("true", "1", "yes", "on"),
    "timeout": float,
    "isolation_level": str,
    "detect_types": int,
    "check_same_thread": lambda v: v.lower() in ("true", "1", "yes", "on"),
    "cached_statements": int,
}

Query = dict[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed ``DATABASE_URL`` (never shown as is: :attr:`shown` has no password)."""

    driver: str
    username: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    database: str | None
    query: Query
    shown: str

    @property
    def backend(self) -> str:
        return self.driver.split("+", 1)[0]

    def describe(self) -> str:
        return describe(self.backend, self.host, self.port, self.database)


def describe(backend: str, host: str | None, port: int | None, database: str | None) -> str:
    """Where the database is, for messages: ``postgresql 127.0.0.1:5432/db`` or
    ``sqlite ./corral.db``. Never user or password."""
    if backend == "sqlite":
        return f"sqlite {database or ':memory:'}"
    return f"postgresql {host or 'localhost'}:{port or 5432}/{database or ''}"


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``DATABASE_URL`` and pick the async driver; raise ConfigurationError otherwise."""
    if not url or not url.strip():
        raise ConfigurationError("DATABASE_URL: must not be empty")
    shown = redact_url(url)
    match = _URL_RE.match(url.strip())
    port_text = match and match["port"]
    if match is None or (port_text and not port_text.isdigit()):
        raise ConfigurationError(f"DATABASE_URL: malformed URL {shown!r}")
    driver = REWRITES.get(match["name"])
    if driver is None:
        raise ConfigurationError(
            f"DATABASE_URL: unsupported database {match['name']!r} in {shown!r}; "
            "use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user:password@host/db"
        )
    query: Query = {}
    for key, value in parse_qsl(match["query"] or "", keep_blank_values=True):
        earlier = query.get(key)
        if earlier is None:
            query[key] = value
        else:
            query[key] = (*((earlier,) if isinstance(earlier, str) else earlier), value)
    username, password, database = (
        None if match[name] is None else unquote(match[name])
        for name in ("username", "password", "database")
    )
    parsed = DatabaseUrl(
        driver=driver,
        username=username,
        password=password,
        host=match["ipv4host"] or match["ipv6host"],
        port=int(port_text) if port_text else None,
        database=database,
        query=query,
        shown=shown,
    )
    if driver == SQLITE_DRIVER:
        _check_sqlite_path(parsed)
    return parsed


def _check_sqlite_path(url: DatabaseUrl) -> None:
    database = url.database or ""
    if not database or database == ":memory:" or url.query.get("uri") == "true":
        return
    parent = Path(database).parent  # SQLite does not expand "~", so neither does the check
    if not parent.is_dir():
        raise ConfigurationError(
            f"DATABASE_URL: directory {str(parent)!r} for the SQLite file does not exist "
            f"({url.shown!r})"
        )


def check_schema(schema: str | None, url: DatabaseUrl) -> None:
    if schema is None:
        return
    if url.backend == "sqlite":
        raise ConfigurationError("DATABASE_URL: a schema applies to PostgreSQL only")
    if not _SCHEMA_RE.match(schema):
        raise ConfigurationError(f"database schema {schema!r} is not a plain identifier")


def server_settings(schema: str | None) -> dict[str, str]:
    """PostgreSQL session settings of every connection: its name in ``pg_stat_activity``, and
    ``search_path`` when Corral's tables live in a schema of their own."""
    settings = {"application_name": APPLICATION_NAME}
    if schema is not None:
        settings["search_path"] = schema
    return settings


def sqlite_connect_args(url: DatabaseUrl) -> tuple[str, dict[str, Any]]:
    """The file name and ``sqlite3.connect`` arguments SQLAlchemy's dialect derives."""
    options: dict[str, Any] = {}
    for key, convert in _SQLITE_ARGS.items():
        value = url.query.get(key)
        if isinstance(value, str):
            options[key] = convert(value)
    if options.get("uri"):
        filename = url.database or ""
        rest = {k: v for k, v in url.query.items() if k not in _SQLITE_ARGS}
        if rest:
            filename += "?" + "&".join(f"{k}={rest[k]}" for k in sorted(rest))
    else:
        filename = url.database or ":memory:"
        if filename != ":memory:":
            filename = os.path.abspath(filename)
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    options.setdefault("check_same_thread", in_memory)
    return filename, options


def postgres_connect_args(url: DatabaseUrl) -> dict[str, Any]:
    """The ``asyncpg.connect`` arguments SQLAlchemy's asyncpg dialect derives (user, password,
    host, port, database and every query parameter; hosts and ports in the query split)."""
    args: dict[str, Any] = {
        name: value
        for name, value in (
            ("host", url.host),
            ("database", url.database),
            ("user", url.username),
            ("password", url.password),
            ("port", url.port),
        )
        if value
    }
    args.update(url.query)
    hosts, ports = _split_hosts(url.query)
    if hosts is not None and len(hosts) == 1:
        args["host"] = hosts[0]
        if ports[0] is not None:
            args["port"] = ports[0]
    elif hosts is not None:
        if not all(hosts) or not all(ports):
            raise ConfigurationError(
                f"DATABASE_URL: every host and port must be given ({url.shown!r})"
            )
        args["host"], args["port"] = list(hosts), list(ports)
    elif isinstance(args.get("port"), str):
        args["port"] = int(args["port"])
    args.pop("prepared_statement_cache_size", None)  # SQLAlchemy's own statement cache
    return args


def _split_hosts(query: Query) -> tuple[list[str] | None, list[int | None]]:
    """Hosts and ports given in the query, split as SQLAlchemy's PostgreSQL dialect splits
    them: ``?host=h1:p1&host=h2:p2``, ``?host=h1,h2&port=p1,p2`` or ``?host=h:p``."""
    host, port = query.get("host"), query.get("port")
    hosts: list[str] | None = None
    port_texts: list[str | None] | None = None
    paired = False
    if isinstance(host, tuple):
        paired = True
        hosts = [h for h, _ in map(_host_port, host)]
        port_texts = [p for _, p in map(_host_port, host)]
    elif isinstance(host, str):
        hosts = host.split(",")
        match = re.match(r"^([a-zA-Z0-9\-.]*)(?::(\d*))?$", hosts[0])
        if port is None and len(hosts) == 1 and ":" in hosts[0] and match:
            paired = True
            hosts, port_texts = [match[1]], [match[2] or None]
    if port is not None:
        if paired:
            raise ConfigurationError("DATABASE_URL: give hosts with ports or ports apart")
        port_texts = list(port) if isinstance(port, tuple) else list(port.split(","))
    ports: list[int | None] = []
    if port_texts:
        if not all(p is None or p == "" or p.isdigit() for p in port_texts):
            raise ConfigurationError("DATABASE_URL: a port in the query is not a number")
        ports = [int(p) if p else None for p in port_texts]
        if (not hosts and len(ports) > 1) or (
            hosts and len(hosts) != len(ports) and (len(hosts) > 1 or len(ports) > 1)
        ):
            raise ConfigurationError("DATABASE_URL: the numbers of hosts and ports differ")
    if hosts is not None and not ports:
        ports = [None] * len(hosts)
    return hosts, ports


def _host_port(token: str) -> tuple[str, str | None]:
    host, colon, port = token.partition(":")
    return (host, port) if colon else (token, None)
