"""CorralSettings: the only module that reads the environment. Read once, at the entry point."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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


def _env(variable: str, default: Any, **limits: Any) -> Any:
    """A setting read from the environment variable ``variable``."""
    return Field(default=default, validation_alias=variable, **limits)


class CorralSettings(BaseSettings):
    """Every knob Corral reads from the environment. ``repr`` never shows a password."""

    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, populate_by_name=True
    )

    redis_url: SecretStr = _env("REDIS_URL", SecretStr("redis://localhost:6379"))
    database_url: SecretStr = _env("DATABASE_URL", SecretStr("sqlite+aiosqlite:///./corral.db"))
    admin_token: SecretStr | None = _env("CORRAL_ADMIN_TOKEN", None)
    metrics_token: SecretStr | None = _env("CORRAL_METRICS_TOKEN", None)
    allowed_hosts: str = _env("CORRAL_ALLOWED_HOSTS", "")
    api_host: str = _env("CORRAL_API_HOST", "127.0.0.1")
    api_port: int = _env("CORRAL_API_PORT", 8000, ge=1, le=65535)
    max_body_bytes: int = _env("CORRAL_MAX_BODY_BYTES", 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    redis_memory_reserve: float = _env("CORRAL_REDIS_MEMORY_RESERVE", 0.05, ge=0, le=0.5)
    max_job_data_bytes: int = _env(
        "CORRAL_MAX_JOB_DATA_BYTES", 512 * 1024, ge=1024, le=64 * 1024 * 1024
    )
    log_level: str = _env("LOG_LEVEL", "info")
    log_format: str = _env("LOG_FORMAT", "text")
    environment: Environment = _env("CORRAL_ENV", "development")
    queue: str = _env("CORRAL_QUEUE", "corral", min_length=1, max_length=64)
    prefix: str = _env("CORRAL_PREFIX", "bull", min_length=1, max_length=64)
    handlers: str = _env("CORRAL_HANDLERS", "")
    concurrency: int = _env("CORRAL_CONCURRENCY", 10, ge=1, le=10_000)
    redis_connect_timeout_s: float = _env("CORRAL_REDIS_CONNECT_TIMEOUT", 5.0, gt=0, le=60)
    lock_duration_ms: int = _env("CORRAL_LOCK_DURATION_MS", 30_000, ge=500, le=3_600_000)
    stalled_interval_ms: int = _env("CORRAL_STALLED_INTERVAL_MS", 30_000, ge=100, le=3_600_000)
    max_stalled_count: int = _env("CORRAL_MAX_STALLED_COUNT", 1, ge=0)
    catch_up_ms: int = _env("CORRAL_CATCH_UP_MS", 600_000, ge=0, le=7 * 86_400_000)
    scheduled_remove_on_complete: bool = _env("CORRAL_SCHEDULED_REMOVE_ON_COMPLETE", False)
    execution_log: bool = _env("CORRAL_EXECUTION_LOG", True)
    execution_log_retention_days: int = _env(
        "CORRAL_EXECUTION_LOG_RETENTION_DAYS", 30, ge=1, le=3650
    )
    reconcile_interval_s: float = _env("CORRAL_RECONCILE_INTERVAL_S", 60.0, ge=0, le=86_400)
    reconcile_grace_s: float = _env("CORRAL_RECONCILE_GRACE_S", 30.0, ge=0, le=86_400)
    auto_migrate: bool = _env("CORRAL_AUTO_MIGRATE", True)
    uvloop: bool = _env("CORRAL_UVLOOP", True)
    shutdown_timeout_ms: int = _env("CORRAL_SHUTDOWN_TIMEOUT_MS", 30_000, ge=0, le=3_600_000)
    auth_max_failures: int = _env("CORRAL_AUTH_MAX_FAILURES", 10, ge=1, le=100_000)
    auth_failure_window_s: int = _env("CORRAL_AUTH_FAILURE_WINDOW", 300, ge=1, le=86_400)
    api_read_timeout_s: float = _env("CORRAL_API_READ_TIMEOUT", 15.0, ge=0.1, le=600)
    api_keepalive_timeout_s: int = _env("CORRAL_API_KEEPALIVE_TIMEOUT", 5, ge=1, le=600)
    api_max_connections: int = _env("CORRAL_API_MAX_CONNECTIONS", 200, ge=1, le=100_000)
    api_max_header_bytes: int = _env(
        "CORRAL_API_MAX_HEADER_BYTES", 16 * 1024, ge=1024, le=1024 * 1024
    )

    @field_validator("log_level", "log_format")
    @classmethod
    def _choice(cls, value: str, info: ValidationInfo) -> str:
        choices = LEVELS if info.field_name == "log_level" else LOG_FORMATS
        lowered = value.strip().lower()
        if lowered not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return lowered

    @field_validator("redis_url", "database_url")
    @classmethod
    def _url(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        check_credentials(value.get_secret_value())
        if info.field_name == "redis_url":
            check_redis_url(value.get_secret_value())
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
