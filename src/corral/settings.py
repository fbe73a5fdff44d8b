"""CorralSettings: the only module that reads the environment. Read once, at the entry point."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from corral.core.redaction import redact_url
from corral.errors import ConfigurationError

LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")

#: An entry of CORRAL_ALLOWED_HOSTS: ``*``, a name (``*.`` for any subdomain) or an IP literal.
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\]", re.IGNORECASE)

Environment = Literal["development", "test", "staging", "production"]

#: Outside development a bearer token shorter than this is refused at start-up: it must not be
#: guessable online, even at the rate the failed-authentication limit allows.
MIN_TOKEN_CHARS = 32


class CorralSettings(BaseSettings):
    """Every knob Corral reads from the environment. ``repr`` never shows a password."""

    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, populate_by_name=True
    )

    redis_url: SecretStr = Field(
        default=SecretStr("redis://localhost:6379"), validation_alias="REDIS_URL"
    )
    database_url: SecretStr = Field(
        default=SecretStr("sqlite+aiosqlite:///./corral.db"), validation_alias="DATABASE_URL"
    )
    admin_token: SecretStr | None = Field(default=None, validation_alias="CORRAL_ADMIN_TOKEN")
    metrics_token: SecretStr | None = Field(default=None, validation_alias="CORRAL_METRICS_TOKEN")
    allowed_hosts: str = Field(default="", validation_alias="CORRAL_ALLOWED_HOSTS")
    api_host: str = Field(default="127.0.0.1", validation_alias="CORRAL_API_HOST")
    api_port: int = Field(default=8000, validation_alias="CORRAL_API_PORT", ge=1, le=65535)
    max_body_bytes: int = Field(
        default=1024 * 1024, validation_alias="CORRAL_MAX_BODY_BYTES", ge=1024, le=64 * 1024 * 1024
    )
    redis_memory_reserve: float = Field(
        default=0.05, validation_alias="CORRAL_REDIS_MEMORY_RESERVE", ge=0, le=0.5
    )
    max_job_data_bytes: int = Field(
        default=512 * 1024,
        validation_alias="CORRAL_MAX_JOB_DATA_BYTES",
        ge=1024,
        le=64 * 1024 * 1024,
    )
    log_level: str = Field(default="info", validation_alias="LOG_LEVEL")
    log_format: str = Field(default="text", validation_alias="LOG_FORMAT")
    environment: Environment = Field(default="development", validation_alias="CORRAL_ENV")
    queue: str = Field(
        default="corral", validation_alias="CORRAL_QUEUE", min_length=1, max_length=64
    )
    prefix: str = Field(
        default="bull", validation_alias="CORRAL_PREFIX", min_length=1, max_length=64
    )
    handlers: str = Field(default="", validation_alias="CORRAL_HANDLERS")
    concurrency: int = Field(default=10, validation_alias="CORRAL_CONCURRENCY", ge=1, le=10_000)
    redis_connect_timeout_s: float = Field(
        default=5.0, validation_alias="CORRAL_REDIS_CONNECT_TIMEOUT", gt=0, le=60
    )
    lock_duration_ms: int = Field(
        default=30_000, validation_alias="CORRAL_LOCK_DURATION_MS", ge=500, le=3_600_000
    )
    stalled_interval_ms: int = Field(
        default=30_000, validation_alias="CORRAL_STALLED_INTERVAL_MS", ge=100, le=3_600_000
    )
    max_stalled_count: int = Field(default=1, validation_alias="CORRAL_MAX_STALLED_COUNT", ge=0)
    catch_up_ms: int = Field(
        default=600_000, validation_alias="CORRAL_CATCH_UP_MS", ge=0, le=7 * 86_400_000
    )
    scheduled_remove_on_complete: bool = Field(
        default=False, validation_alias="CORRAL_SCHEDULED_REMOVE_ON_COMPLETE"
    )
    execution_log: bool = Field(default=True, validation_alias="CORRAL_EXECUTION_LOG")
    execution_log_retention_days: int = Field(
        default=30, validation_alias="CORRAL_EXECUTION_LOG_RETENTION_DAYS", ge=1, le=3650
    )
    reconcile_interval_s: float = Field(
        default=60.0, validation_alias="CORRAL_RECONCILE_INTERVAL_S", ge=0, le=86_400
    )
    reconcile_grace_s: float = Field(
        default=30.0, validation_alias="CORRAL_RECONCILE_GRACE_S", ge=0, le=86_400
    )
    auto_migrate: bool = Field(default=True, validation_alias="CORRAL_AUTO_MIGRATE")
    shutdown_timeout_ms: int = Field(
        default=30_000, validation_alias="CORRAL_SHUTDOWN_TIMEOUT_MS", ge=0, le=3_600_000
    )
    auth_max_failures: int = Field(
        default=10, validation_alias="CORRAL_AUTH_MAX_FAILURES", ge=1, le=100_000
    )
    auth_failure_window_s: int = Field(
        default=300, validation_alias="CORRAL_AUTH_FAILURE_WINDOW", ge=1, le=86_400
    )
    api_read_timeout_s: float = Field(
        default=15.0, validation_alias="CORRAL_API_READ_TIMEOUT", ge=0.1, le=600
    )
    api_keepalive_timeout_s: int = Field(
        default=5, validation_alias="CORRAL_API_KEEPALIVE_TIMEOUT", ge=1, le=600
    )
    api_max_connections: int = Field(
        default=200, validation_alias="CORRAL_API_MAX_CONNECTIONS", ge=1, le=100_000
    )
    api_max_header_bytes: int = Field(
        default=16 * 1024, validation_alias="CORRAL_API_MAX_HEADER_BYTES", ge=1024, le=1024 * 1024
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return _one_of(value, LEVELS)

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        return _one_of(value, LOG_FORMATS)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        check_credentials(value.get_secret_value())
        check_redis_url(value.get_secret_value())
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        check_credentials(value.get_secret_value())
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for host in _split(value):
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name: use names like api.example.com, "
                    "*.example.com (any subdomain), 10.0.0.5 or [::1], without scheme or port"
                )
        return value

    @field_validator("queue", "prefix")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value or not value.isprintable() or value != value.strip():
            raise ValueError("must not contain ':', spaces at the ends or control characters")
        return value

    @model_validator(mode="after")
    def _strong_tokens(self) -> CorralSettings:
        problem = token_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

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


def token_problem(settings: CorralSettings) -> str | None:
    """Why the bearer tokens are unfit for ``settings.environment`` ("VARIABLE: problem", never
    the value), or None. Outside development a token must be long and not padded with spaces (a
    padded token is usually a copy-paste accident, and the server strips what clients send)."""
    if settings.environment == "development":
        return None
    for variable, secret in (
        ("CORRAL_ADMIN_TOKEN", settings.admin_token),
        ("CORRAL_METRICS_TOKEN", settings.metrics_token),
    ):
        token = secret.get_secret_value() if secret is not None else ""
        if token and (len(token) < MIN_TOKEN_CHARS or token != token.strip()):
            return (
                f"{variable}: must be at least {MIN_TOKEN_CHARS} characters without spaces at "
                f"the ends when CORRAL_ENV={settings.environment} (e.g. openssl rand -hex 32)"
            )
    return None


_ALIASES = {
    name: (field.validation_alias if isinstance(field.validation_alias, str) else name)
    for name, field in CorralSettings.model_fields.items()
}


def _one_of(value: str, choices: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return lowered


def load_settings(**overrides: object) -> CorralSettings:
    """Read the environment once; raise ConfigurationError naming the variable on bad input."""
    try:
        return CorralSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a check across fields; its message names the variable
            raise ConfigurationError(message) from None
        loc = str(error["loc"][0])
        variable = _ALIASES.get(loc, loc)
        raise ConfigurationError(f"{variable}: {message}") from None
