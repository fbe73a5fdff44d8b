"""Settings from the environment: defaults, bad values named, passwords never shown."""

from __future__ import annotations

import dataclasses

import pytest

from corral.errors import ConfigurationError
from corral.settings import VARIABLES, load_settings

CANARY = "CANARY-7f3a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Corral variable leaks in from the developer's or CI's environment."""
    for variable in VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConfigurationError:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    return info.value


def test_defaults() -> None:
    settings = load_settings()
    assert settings.redis_url.get_secret_value() == "redis://localhost:6379"
    assert settings.log_level == "info"
    assert settings.environment == "development"
    assert settings.queue == "corral"
    assert settings.prefix == "bull"
    assert settings.handler_packages == []
    assert settings.concurrency == 10
    assert settings.redis_connect_timeout_s <= 5
    assert settings.max_job_data_bytes == 512 * 1024


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://user:pw@redis.example:6380/3")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CORRAL_ENV", "production")
    monkeypatch.setenv("CORRAL_HANDLERS", "app.jobs.handlers, other.handlers ,")
    settings = load_settings()
    assert settings.redis_url.get_secret_value() == "rediss://user:pw@redis.example:6380/3"
    assert settings.log_level == "debug"
    assert settings.environment == "production"
    assert settings.handler_packages == ["app.jobs.handlers", "other.handlers"]


def test_max_job_data_bytes_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_MAX_JOB_DATA_BYTES", "2048")
    assert load_settings().max_job_data_bytes == 2048


def test_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_QUEUE", "from-env")
    assert load_settings(queue="from-code").queue == "from-code"


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379",
        "redis://127.0.0.1:6379/0",
        "redis://h:6379/15",
        "rediss://h:6380",
        "redis://[::1]:6379/2",
        "unix:///tmp/redis.sock",
        f"redis://:{CANARY}@h:1/0",
    ],
)
def test_good_redis_urls(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert load_settings().redis_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "must start with redis://"),
        ("localhost:6379", "must start with redis://"),
        ("http://x", "must start with redis://"),
        ("redis://h:notaport", "port"),
        ("redis://h:70000", "port"),
        ("redis://h:0", "port"),
        ("redis://h:6379/99", "database must be a number 0-15"),
        ("redis://h:6379/x", "database must be a number 0-15"),
        ("redis://", "no host"),
    ],
)
def test_bad_redis_url_names_redis_url(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    error = _error(monkeypatch, REDIS_URL=url)
    assert str(error).startswith("REDIS_URL: ")
    assert problem in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{CANARY}@h:notaport",
        f"redis://user:{CANARY}@h:70000/0",
        f"redis://:{CANARY}@h:6379/99",
        f"http://:{CANARY}@h",
        f":{CANARY}@localhost:6379",  # no scheme
        f"user:{CANARY}@localhost:6379",  # no scheme, with a user
        f"redis//:{CANARY}@h:6379",  # mistyped scheme
        f"redis://:p@ss{CANARY}@h:notaport",  # unencoded '@' in the password
        f"redis://:{CANARY}@",
    ],
)
def test_bad_redis_url_never_shows_the_password(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    error = _error(monkeypatch, REDIS_URL=url)
    assert str(error).startswith("REDIS_URL: ")
    assert "CANARY" not in str(error)
    assert "CANARY" not in repr(error)
    assert error.__cause__ is None  # the pydantic error (which holds the input) is not chained


def test_settings_repr_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:{CANARY}@h:1/0")
    settings = load_settings()
    assert "CANARY" not in repr(settings)
    assert "CANARY" not in str(settings)
    assert "CANARY" not in str(dataclasses.asdict(settings))
    assert settings.redis_url_redacted == "redis://:***@h:1/0"


@pytest.mark.parametrize("level", ["verbose", "", "trace", "0"])
def test_bad_log_level(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    error = _error(monkeypatch, LOG_LEVEL=level)
    assert str(error).startswith("LOG_LEVEL: ")
    assert "debug, info, warning, error" in str(error)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("INFO", "info"), ("info", "info"), ("Debug", "debug"), (" WARNING ", "warning")],
)
def test_log_level_is_case_insensitive(
    monkeypatch: pytest.MonkeyPatch, level: str, expected: str
) -> None:
    monkeypatch.setenv("LOG_LEVEL", level)
    assert load_settings().log_level == expected


def test_log_format_is_text_unless_json_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    assert load_settings().log_format == "json"


@pytest.mark.parametrize("value", ["yaml", "", "logfmt"])
def test_bad_log_format(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    error = _error(monkeypatch, LOG_FORMAT=value)
    assert str(error) == "LOG_FORMAT: must be one of text, json"


@pytest.mark.parametrize("env", ["prod", "", "dev", "PRODUCTION"])
def test_bad_corral_env(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    error = _error(monkeypatch, CORRAL_ENV=env)
    assert str(error).startswith("CORRAL_ENV: ")
    assert "production" in str(error)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CORRAL_CONCURRENCY", "0"),
        ("CORRAL_CONCURRENCY", "abc"),
        ("CORRAL_QUEUE", "a:b"),
        ("CORRAL_PREFIX", ""),
        ("CORRAL_REDIS_CONNECT_TIMEOUT", "0"),
        ("CORRAL_MAX_JOB_DATA_BYTES", "1023"),
        ("CORRAL_MAX_JOB_DATA_BYTES", str(64 * 1024 * 1024 + 1)),
        ("CORRAL_MAX_JOB_DATA_BYTES", "1MB"),
    ],
)
def test_other_bad_variables_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    assert str(_error(monkeypatch, **{variable: value})).startswith(f"{variable}: ")


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.queue = "other"  # type: ignore[misc]


def test_allowed_hosts_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().allowed_host_list == []
    monkeypatch.setenv("CORRAL_ALLOWED_HOSTS", " API.example.com, *.corral.test,10.0.0.5,[::1] ,")
    hosts = load_settings().allowed_host_list
    assert hosts == ["api.example.com", "*.corral.test", "10.0.0.5", "[::1]"]


@pytest.mark.parametrize(
    "value", ["https://api.example.com", "api.example.com:8000", "api.*.com", "*example.com", "a/b"]
)
def test_bad_allowed_hosts_are_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    message = str(_error(monkeypatch, CORRAL_ALLOWED_HOSTS=value))
    assert message.startswith("CORRAL_ALLOWED_HOSTS: ")
    assert f"{value!r} is not a host name" in message


LONG = "L" * 32


@pytest.mark.parametrize("env", ["test", "staging", "production"])
@pytest.mark.parametrize("variable", ["CORRAL_ADMIN_TOKEN", "CORRAL_METRICS_TOKEN"])
@pytest.mark.parametrize(
    "value",
    ["x", " ", " " * 40, "CANARY-short", "C" * 31, f" {CANARY}{LONG}", f"{CANARY}{LONG}\n"],
)
def test_weak_tokens_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, env: str, variable: str, value: str
) -> None:
    others = {"CORRAL_ADMIN_TOKEN": LONG} if variable != "CORRAL_ADMIN_TOKEN" else {}
    error = _error(monkeypatch, CORRAL_ENV=env, **others, **{variable: value})
    assert str(error).startswith(f"{variable}: ")
    assert "32 characters" in str(error)
    assert "\n" not in str(error)
    assert "CANARY" not in str(error)
    assert "C" * 31 not in str(error)
    assert error.__cause__ is None


@pytest.mark.parametrize("value", ["x", " padded-dev-token "])
def test_development_accepts_any_token(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CORRAL_ADMIN_TOKEN", value)
    monkeypatch.setenv("CORRAL_METRICS_TOKEN", value)
    assert load_settings().environment == "development"


def test_long_tokens_are_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_ENV", "production")
    monkeypatch.setenv("CORRAL_ADMIN_TOKEN", LONG)
    monkeypatch.setenv("CORRAL_METRICS_TOKEN", "m" * 64)
    settings = load_settings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == LONG


RAW_PASSWORD_URLS = [
    ("DATABASE_URL", "postgresql+asyncpg://postgres:p@ssCANARY8@127.0.0.1:5499/test"),
    ("DATABASE_URL", "postgresql://postgres:pa/ssCANARY8@127.0.0.1/test"),
    ("DATABASE_URL", "postgresql://postgres:pa?ssCANARY8@127.0.0.1/test"),
    ("REDIS_URL", "redis://:CAN@RY#CANARY8@127.0.0.1:6379/0"),
    ("REDIS_URL", "redis://:CANARY8#x@127.0.0.1:6379/0"),
    ("REDIS_URL", "redis://default:p@ssCANARY8@localhost:6379"),
]


@pytest.mark.parametrize(("variable", "url"), RAW_PASSWORD_URLS)
def test_a_password_with_unencoded_reserved_characters_is_refused_unseen(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    """A raw '@', '/', '?' or '#' in a password makes the URL parse to another host (and the
    password's tail then shows in messages as a host name): refuse it, show none of it."""
    error = _error(monkeypatch, **{variable: url})
    message = str(error)
    assert message.startswith(f"{variable}: ")
    assert "percent-encode" in message
    assert "\n" not in message
    for fragment in ("CANARY8", "CAN", "RY", "ssCANARY", "p@ss", "pa/ss"):
        assert fragment not in message.replace("CORRAL", "")


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("DATABASE_URL", "postgresql+asyncpg://postgres:p%40ss@127.0.0.1:5432/test"),
        ("REDIS_URL", "redis://:CAN%40RY%23x@127.0.0.1:6379/0"),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("DATABASE_URL", "sqlite+aiosqlite:///./corral.db"),
    ],
)
def test_percent_encoded_passwords_are_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    monkeypatch.setenv(variable, url)
    settings = load_settings()
    assert getattr(settings, variable.lower()).get_secret_value() == url


def test_variable_names_match_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with pydantic-settings, which read the environment before: ``corral_queue`` counts,
    and the exact spelling wins when both are set."""
    monkeypatch.setenv("corral_queue", "lower")
    assert load_settings().queue == "lower"
    monkeypatch.setenv("CORRAL_QUEUE", "exact")
    assert load_settings().queue == "exact"


def test_a_bad_override_is_named_by_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"^CORRAL_CONCURRENCY: "):
        load_settings(concurrency=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", False), ("NO", False), ("0", False), (" yes ", True), ("1", True)],
)
def test_yes_no_words_as_pydantic_read_them(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("CORRAL_EXECUTION_LOG", value)
    assert load_settings().execution_log is expected


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("CORRAL_UVLOOP", "maybe", "must be true or false"),
        ("CORRAL_REDIS_MEMORY_RESERVE", "nan", "must be between 0 and 0.5"),
        ("CORRAL_REDIS_MEMORY_RESERVE", "inf", "must be between 0 and 0.5"),
        ("CORRAL_REDIS_CONNECT_TIMEOUT", "0", "must be > 0 and <= 60"),
        ("CORRAL_API_PORT", "80.5", "must be a whole number"),
        ("CORRAL_API_PORT", "70000", "must be between 1 and 65535, got 70000"),
        ("CORRAL_QUEUE", "q" * 65, "must be between 1 and 64 characters long"),
    ],
)
def test_bad_values_say_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    message = str(_error(monkeypatch, **{variable: value}))
    assert message.startswith(f"{variable}: {problem}"), message


def test_a_copy_is_checked_like_the_environment() -> None:
    settings = load_settings()
    assert settings.replace(concurrency="20").concurrency == 20
    assert "concurrency" in settings.replace(concurrency=20).given
    with pytest.raises(ConfigurationError, match=r"^CORRAL_CONCURRENCY: "):
        settings.replace(concurrency=0)
    with pytest.raises(TypeError, match="not a setting: colour"):
        settings.replace(colour="blue")


@pytest.mark.parametrize(("value", "expected"), [("", None), ("0", 0), (" 25 ", 25)])
def test_prefetch(monkeypatch: pytest.MonkeyPatch, value: str, expected: int | None) -> None:
    monkeypatch.setenv("CORRAL_PREFETCH", value)
    assert load_settings().prefetch == expected


@pytest.mark.parametrize("value", ["-1", "many", "10001", "1.5"])
def test_bad_prefetch_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert str(_error(monkeypatch, CORRAL_PREFETCH=value)).startswith("CORRAL_PREFETCH: ")
