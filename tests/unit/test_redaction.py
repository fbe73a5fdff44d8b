"""The one redaction helper: URLs, free text and payloads never show a secret."""

from __future__ import annotations

import time

import pytest

from corral.core.redaction import mask_payload, redact_text, redact_url

CANARY = "CANARY-7f3a"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://:{CANARY}@host:6379/0", "redis://:***@host:6379/0"),
        (f"redis://user:{CANARY}@host:6379", "redis://user:***@host:6379"),
        (f"rediss://default:{CANARY}@redis.example.com:6380/2", None),
        (f"postgresql://u:{CANARY}@127.0.0.1:1/x", "postgresql://u:***@127.0.0.1:1/x"),
        (f"redis://u:{CANARY}@[::1]:6379/0", "redis://u:***@[::1]:6379/0"),
        (f"redis://:{CANARY}@[fe80::1%eth0]:6379", "redis://:***@[fe80::1%eth0]:6379"),
        (f"redis://:{CANARY}@[2001:db8::1]", "redis://:***@[2001:db8::1]"),
        ("redis://user:@host", "redis://user:***@host"),  # empty password
    ],
)
def test_redact_url(url: str, expected: str | None) -> None:
    redacted = redact_url(url)
    assert "CANARY" not in redacted
    assert ":***@" in redacted
    if expected is not None:
        assert redacted == expected


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:p@ss{CANARY}@host:6379/0",  # unencoded '@'
        f"redis://:pa/ss{CANARY}@host:6379/0",  # unencoded '/'
        f"redis://:pa#ss{CANARY}@host:6379/0",  # unencoded '#'
        f"redis://:pa?ss{CANARY}@host:6379/0",  # unencoded '?'
        f"redis://:p@s/s{CANARY}@host",  # '@' and '/'
        f"redis://:pa ss{CANARY}@host",  # a space
        f"redis://:{CANARY}@host:notaport",  # bad port
        f"redis://:{CANARY}@host:99999",  # port out of range
        f"redis://:{CANARY}@[::1",  # unclosed IPv6 bracket
        f"redis://:{CANARY}@",  # no host
        f":{CANARY}@localhost:6379",  # no scheme
        f"user:{CANARY}@localhost:6379",  # no scheme, a user
        f"redis//:{CANARY}@host",  # mistyped scheme
        f"REDIS://:{CANARY}@HOST",  # upper case
    ],
)
def test_redact_url_malformed_never_leaks(url: str) -> None:
    redacted = redact_url(url)
    assert "CANARY" not in redacted
    assert "***" in redacted


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379",
        "redis://[::1]:6379/0",
        "redis://user@host:6379",  # a user name alone is not a secret
        "unix:///tmp/redis.sock",
        "not a url",
        "",
        "redis://h:notaport",
    ],
)
def test_redact_url_without_password_is_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_keeps_host_and_port_for_messages() -> None:
    redacted = redact_url(f"redis://:{CANARY}@cache.internal:6390/4")
    assert "cache.internal:6390" in redacted
    assert redacted.endswith("/4")


@pytest.mark.parametrize(
    "text",
    [
        f"Error connecting to redis://:{CANARY}@127.0.0.1:1/0: refused",
        f"two: redis://a:{CANARY}@h1 and postgresql://b:{CANARY}@h2/db",
        f"REDIS://:{CANARY}@h",
        f"Redis://u:{CANARY}@h",
        f"(url=redis://:{CANARY}@h:1/0)",
        f"redis://:p@ss{CANARY}@h:6379/0",
        f"redis://u:{CANARY}@[::1]:6379",
        f"line one\nredis://:{CANARY}@h\nline three",
    ],
)
def test_redact_text(text: str) -> None:
    redacted = redact_text(text)
    assert "CANARY" not in redacted
    assert ":***@" in redacted


def test_redact_text_keeps_everything_else() -> None:
    text = f"Error 111 connecting to redis://:{CANARY}@127.0.0.1:1/0. Connection refused."
    assert redact_text(text) == (
        "Error 111 connecting to redis://:***@127.0.0.1:1/0. Connection refused."
    )


@pytest.mark.parametrize(
    "text",
    ["", "plain text", "mail bob@example.com at 12:30", "redis://localhost:6379/0", "a://b"],
)
def test_redact_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000,
        "a1" * 100_000,
        "redis://u:" + "x" * 200_000,
        "a://b:" * 30_000,
        "x://u:p@" + "a://b:" * 30_000,
        "@" + "a://b:" * 30_000,
    ],
)
def test_redact_text_is_fast_on_long_input(text: str) -> None:
    # Used by the log filter on every string argument: must never go quadratic.
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 1.0


def test_mask_payload_masks_secret_looking_keys() -> None:
    payload = {
        "user": "bob",
        "password": "p",
        "db_pass": "p",
        "Secret": "s",
        "api_token": "t",
        "apiKey": "k",
        "Authorization": "Bearer x",
        "cookie": "c",
        "nested": {"token": "t", "items": [{"secret_value": 1, "ok": 2}]},
        "count": 3,
    }
    masked = mask_payload(payload)
    assert masked == {
        "user": "bob",
        "password": "***",
        "db_pass": "***",
        "Secret": "***",
        "api_token": "***",
        "apiKey": "***",
        "Authorization": "***",
        "cookie": "***",
        "nested": {"token": "***", "items": [{"secret_value": "***", "ok": 2}]},
        "count": 3,
    }
    assert payload["password"] == "p"  # noqa: S105 - a copy; the original is untouched


def test_mask_payload_masks_structured_secret_values_whole() -> None:
    assert mask_payload({"credentials": 1, "tokens": ["a", "b"]}) == {
        "credentials": 1,
        "tokens": "***",
    }


@pytest.mark.parametrize("value", [None, 1, "x", 1.5, True, []])
def test_mask_payload_scalars(value: object) -> None:
    assert mask_payload(value) == value


def test_mask_payload_deep_value_is_cut_off() -> None:
    deep: object = "leaf"
    for _ in range(100):
        deep = {"k": deep}
    masked = mask_payload(deep)
    for _ in range(33):
        assert isinstance(masked, dict)
        masked = masked["k"]
    assert masked == "..."
