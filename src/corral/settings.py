"""CorralSettings: the only module that reads the environment. Read once, at the entry point.

The variables are parsed here, by a small table of rules, rather than by pydantic(-settings):
Corral reads a fixed set of plain values (numbers with bounds, yes/no, names, URLs), and those
packages cost every worker process about 7 MiB and 50 ms of imports before its first job.
Variable names match case-insensitively (as pydantic-settings did), values given in code win
over the environment, and every value is checked however the settings are made, so a bad one
is refused with its variable's name.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from corral.core.env_values import (
    Parse,
    boolean,
    choice,
    integer,
    number,
    optional,
    secret,
    text,
)
from corral.core.env_values import (
    Secret as Secret,  # settings hold secrets as this type: callers import it from here
)
from corral.core.redaction import redact_url
from corral.errors import ConfigurationError

LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
ENVIRONMENTS = ("development", "test", "staging", "production")

#: An entry of CORRAL_ALLOWED_HOSTS: ``*``, a name (``*.`` for any subdomain) or an IP literal.
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\]", re.IGNORECASE)

Environment = Literal["development", "test", "staging", "production"]

#: Outside development a bearer token shorter than this is refused at start-up: it must not be
#: guessable online, even at the rate the failed-authentication limit allows.
MIN_TOKEN_CHARS = 32


def _env(variable: str, default: Any, parse: Parse) -> Any:
    """A setting read from the environment variable ``variable``, checked by ``parse``."""
    return dataclasses.field(default=default, metadata={"variable": variable, "parse": parse})


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


#: Characters that end the user info of a URL early (or start the path, query or fragment):
#: unencoded in a password, they make a parser see another host, and the rest of the password
#: then appears in messages as if it were a host name.
_URL_DELIMITERS = "@/?#"


def check_credentials(url: str) -> None:
    """Raise ValueError (showing no part of the URL) if its password holds an unencoded
    ``@``, ``/``, ``?`` or ``#``: drivers would each read such a URL differently."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return
    userinfo = rest.rpartition("@")[0]  # the password may hold '@': the host part cannot
    if any(ch in userinfo for ch in _URL_DELIMITERS):
        raise ValueError(
            "the user name or password contains an unencoded '@', '/', '?' or '#'; "
            "percent-encode it (urllib.parse.quote(password, safe=''): '@' is %40)"
        )


def check_redis_url(url: str) -> None:
    """Raise ValueError (message without the password) unless ``url`` is a usable Redis URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        problem = "port must be a number 1-65535"
        raise ValueError(f"malformed URL {redact_url(url)!r}: {problem}") from exc
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"must start with redis://, rediss:// or unix://, got {redact_url(url)!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"has no host: {redact_url(url)!r}")
    if port is not None and not 0 < port < 65536:
        raise ValueError("port out of range")
    db = parts.path.strip("/")
    if db and (not db.isdigit() or int(db) > 15) and parts.scheme != "unix":
        raise ValueError(f"database must be a number 0-15, got {db!r}")


def _hosts(value: str) -> None:
    for host in _split(value):
        if not _HOST_PATTERN.fullmatch(host):
            raise ValueError(
                f"{host!r} is not a host name: use names like api.example.com, "
                "*.example.com (any subdomain), 10.0.0.5 or [::1], without scheme or port"
            )


def _no_colon(value: str) -> None:
    if ":" in value or not value.isprintable() or value != value.strip():
        raise ValueError("must not contain ':', spaces at the ends or control characters")


def _redis_url(url: str) -> None:
    check_credentials(url)
    check_redis_url(url)


_NAME = text(_no_colon, low=1, high=64)


@dataclasses.dataclass(frozen=True)
class CorralSettings:
    """Every knob Corral reads from the environment. ``repr`` never shows a password.

    Made by :func:`load_settings`; :meth:`replace` makes a changed copy. Either way every
    value is checked (``ConfigurationError`` naming the variable)."""

    redis_url: Secret = _env("REDIS_URL", "redis://localhost:6379", secret(_redis_url))
    database_url: Secret = _env(
        "DATABASE_URL", "sqlite+aiosqlite:///./corral.db", secret(check_credentials)
    )
    admin_token: Secret | None = _env("CORRAL_ADMIN_TOKEN", None, secret(optional=True))
    metrics_token: Secret | None = _env("CORRAL_METRICS_TOKEN", None, secret(optional=True))
    allowed_hosts: str = _env("CORRAL_ALLOWED_HOSTS", "", text(_hosts))
    api_host: str = _env("CORRAL_API_HOST", "127.0.0.1", text())
    api_port: int = _env("CORRAL_API_PORT", 8000, integer(1, 65535))
    max_body_bytes: int = _env(
        "CORRAL_MAX_BODY_BYTES", 1024 * 1024, integer(1024, 64 * 1024 * 1024)
    )
    redis_memory_reserve: float = _env("CORRAL_REDIS_MEMORY_RESERVE", 0.05, number(0, 0.5))
    max_job_data_bytes: int = _env(
        "CORRAL_MAX_JOB_DATA_BYTES", 512 * 1024, integer(1024, 64 * 1024 * 1024)
    )
    log_level: str = _env("LOG_LEVEL", "info", choice(LEVELS, fold=True))
    log_format: str = _env("LOG_FORMAT", "text", choice(LOG_FORMATS, fold=True))
    environment: Environment = _env("CORRAL_ENV", "development", choice(ENVIRONMENTS, fold=False))
    queue: str = _env("CORRAL_QUEUE", "corral", _NAME)
    prefix: str = _env("CORRAL_PREFIX", "bull", _NAME)
    handlers: str = _env("CORRAL_HANDLERS", "", text())
    concurrency: int = _env("CORRAL_CONCURRENCY", 10, integer(1, 10_000))
    #: Jobs a worker holds beyond its concurrency; None: one fewer than its concurrency.
    prefetch: int | None = _env("CORRAL_PREFETCH", None, optional(integer(0, 10_000)))
    redis_connect_timeout_s: float = _env(
        "CORRAL_REDIS_CONNECT_TIMEOUT", 5.0, number(0, 60, above=True)
    )
    lock_duration_ms: int = _env("CORRAL_LOCK_DURATION_MS", 30_000, integer(500, 3_600_000))
    stalled_interval_ms: int = _env("CORRAL_STALLED_INTERVAL_MS", 30_000, integer(100, 3_600_000))
    max_stalled_count: int = _env("CORRAL_MAX_STALLED_COUNT", 1, integer(0))
    catch_up_ms: int = _env("CORRAL_CATCH_UP_MS", 600_000, integer(0, 7 * 86_400_000))
    scheduled_remove_on_complete: bool = _env("CORRAL_SCHEDULED_REMOVE_ON_COMPLETE", False, boolean)
    execution_log: bool = _env("CORRAL_EXECUTION_LOG", True, boolean)
    execution_log_retention_days: int = _env(
        "CORRAL_EXECUTION_LOG_RETENTION_DAYS", 30, integer(1, 3650)
    )
    reconcile_interval_s: float = _env("CORRAL_RECONCILE_INTERVAL_S", 60.0, number(0, 86_400))
    reconcile_grace_s: float = _env("CORRAL_RECONCILE_GRACE_S", 30.0, number(0, 86_400))
    auto_migrate: bool = _env("CORRAL_AUTO_MIGRATE", True, boolean)
    uvloop: bool = _env("CORRAL_UVLOOP", True, boolean)
    shutdown_timeout_ms: int = _env("CORRAL_SHUTDOWN_TIMEOUT_MS", 30_000, integer(0, 3_600_000))
    auth_max_failures: int = _env("CORRAL_AUTH_MAX_FAILURES", 10, integer(1, 100_000))
    auth_failure_window_s: int = _env("CORRAL_AUTH_FAILURE_WINDOW", 300, integer(1, 86_400))
    api_read_timeout_s: float = _env("CORRAL_API_READ_TIMEOUT", 15.0, number(0.1, 600))
    api_keepalive_timeout_s: int = _env("CORRAL_API_KEEPALIVE_TIMEOUT", 5, integer(1, 600))
    api_max_connections: int = _env("CORRAL_API_MAX_CONNECTIONS", 200, integer(1, 100_000))
    api_max_header_bytes: int = _env(
        "CORRAL_API_MAX_HEADER_BYTES", 16 * 1024, integer(1024, 1024 * 1024)
    )
    #: The fields set by the environment or by the caller, not defaulted ("is REDIS_URL set?").
    given: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        for spec in _SPECS:
            try:
                parsed = spec.metadata["parse"](getattr(self, spec.name))
            except ValueError as exc:
                raise ConfigurationError(f"{spec.metadata['variable']}: {exc}") from None
            object.__setattr__(self, spec.name, parsed)
        problem = token_problem(self)
        if problem is not None:
            raise ConfigurationError(problem)

    def replace(self, **changes: Any) -> CorralSettings:
        """A copy with ``changes`` (by field name), checked like the environment's values."""
        unknown = set(changes) - set(VARIABLES)
        if unknown:
            raise TypeError(f"not a setting: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes, given=self.given | set(changes))

    @property
    def handler_packages(self) -> list[str]:
        return _split(self.handlers)

    @property
    def allowed_host_list(self) -> list[str]:
        """Host names the API answers to (lower case); empty means any."""
        return [host.lower() for host in _split(self.allowed_hosts)]

    @property
    def database_url_redacted(self) -> str:
        return redact_url(self.database_url.get_secret_value())

    @property
    def redis_url_redacted(self) -> str:
        return redact_url(self.redis_url.get_secret_value())


def token_problem(settings: CorralSettings) -> str | None:
    """Why the bearer tokens are unfit for ``settings.environment`` ("VARIABLE: problem", never
    the value), or None. Outside development a token must be long and not padded with spaces (a
    padded token is usually a copy-paste accident, and the server strips what clients send)."""
    if settings.environment == "development":
        return None
    for variable, given in (
        ("CORRAL_ADMIN_TOKEN", settings.admin_token),
        ("CORRAL_METRICS_TOKEN", settings.metrics_token),
    ):
        token = given.get_secret_value() if given is not None else ""
        if token and (len(token) < MIN_TOKEN_CHARS or token != token.strip()):
            return (
                f"{variable}: must be at least {MIN_TOKEN_CHARS} characters without spaces at "
                f"the ends when CORRAL_ENV={settings.environment} (e.g. openssl rand -hex 32)"
            )
    return None


_SPECS: Final = tuple(spec for spec in dataclasses.fields(CorralSettings) if spec.metadata)
#: Each setting's field name and the environment variable it is read from.
VARIABLES: Final = {spec.name: str(spec.metadata["variable"]) for spec in _SPECS}
_FIELD_OF: Final = {variable.lower(): name for name, variable in VARIABLES.items()}


def _from_environment() -> dict[str, Any]:
    """The set variables of :data:`VARIABLES`, by field name; an exact-case variable name wins
    over another spelling of it."""
    found: dict[str, Any] = {}
    exact: set[str] = set()
    for key, value in os.environ.items():
        name = _FIELD_OF.get(key.lower())
        if name is not None and name not in exact:
            found[name] = value
            if key == VARIABLES[name]:
                exact.add(name)
    return found


def load_settings(**overrides: Any) -> CorralSettings:
    """Read the environment once; raise ConfigurationError naming the variable on bad input.
    ``overrides`` (by field name, ``queue=``, or by variable, ``CORRAL_QUEUE=``) win over the
    environment."""
    values: dict[str, Any] = _from_environment()
    for key, value in overrides.items():
        name = key if key in VARIABLES else _FIELD_OF.get(key.lower())
        if name is None:
            raise TypeError(f"not a setting: {key}")
        values[name] = value
    return CorralSettings(**values, given=frozenset(values))
