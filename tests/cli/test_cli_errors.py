"""CLI and environment bad inputs: one line on stderr naming the flag or
variable, no traceback, no password, exit code 2 (usage) or 1.

Runs the installed ``corral`` console script as a subprocess with an explicit environment.
Nothing here needs Redis: discovery and validation happen before any connection, and the
unreachable-Redis case points at 127.0.0.1:1, where nothing listens.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CORRAL = Path(sys.executable).parent / "corral"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CANARY = "CANARY-7f3a"
SUBPROCESS_TIMEOUT_S = 30


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def _env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CORRAL_") and k not in {"REDIS_URL", "LOG_LEVEL", "DATABASE_URL"}
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(FIXTURES), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(overrides)
    return env


def corral(*args: str, **env: str) -> Result:
    started = time.monotonic()
    proc = subprocess.run(
        [str(CORRAL), *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def _assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.last_line.startswith("corral: "), result.stderr
    for needle in needles:
        assert needle in result.last_line, result.stderr
    assert "CANARY" not in result.stderr + result.stdout


def test_console_script_is_installed() -> None:
    assert CORRAL.exists(), f"{CORRAL} missing: is the package installed in the venv?"


def test_unknown_subcommand() -> None:
    result = corral("bogus")
    _assert_one_line_error(result, 2, "bogus")
    assert result.stderr.strip().count("\n") == 0  # exactly one line


def test_unknown_option() -> None:
    _assert_one_line_error(corral("worker", "--bogus"), 2, "--bogus")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1000000000"])
def test_bad_concurrency(value: str) -> None:
    result = corral("worker", "--concurrency", value, "--handlers", "corral.examples.handlers")
    _assert_one_line_error(result, 2, "--concurrency")
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("value", ["-1", "abc", "10001"])
def test_bad_prefetch(value: str) -> None:
    result = corral("worker", "--prefetch", value, "--handlers", "corral.examples.handlers")
    _assert_one_line_error(result, 2, "--prefetch")


@pytest.mark.parametrize("flag", ["--limiter-max", "--limiter-duration"])
def test_bad_limiter(flag: str) -> None:
    _assert_one_line_error(corral("worker", flag, "0"), 2, flag)


def test_limiter_flags_go_together() -> None:
    result = corral("worker", "--limiter-max", "5", "--handlers", "corral.examples.handlers")
    _assert_one_line_error(result, 2, "--limiter-max", "--limiter-duration")


def test_no_handlers_package() -> None:
    _assert_one_line_error(corral("worker"), 2, "--handlers")


def test_handlers_package_not_importable() -> None:
    result = corral("worker", "--handlers", "nonexistent.pkg", REDIS_URL="redis://127.0.0.1:6379/0")
    _assert_one_line_error(
        result, 1, "handlers package 'nonexistent.pkg' not importable: ModuleNotFoundError"
    )


def test_handlers_package_raising_on_import() -> None:
    result = corral("worker", "--handlers", "corral_fx_broken", REDIS_URL="redis://127.0.0.1:1/0")
    _assert_one_line_error(result, 1, "'corral_fx_broken.bad'", "RuntimeError: boom at import")


def test_two_handlers_with_the_same_name() -> None:
    result = corral("worker", "--handlers", "corral_fx_dup", REDIS_URL="redis://127.0.0.1:1/0")
    _assert_one_line_error(
        result, 1, "handler 'sync' registered twice", "corral_fx_dup.a", "corral_fx_dup.b"
    )


def test_unreachable_redis_is_retried_without_the_password_until_stopped() -> None:
    """Redis may come up after the worker (docs/reliability.md, R3): the worker says why it waits in
    one line per attempt, never shows the password, and still stops at once on SIGTERM."""
    proc = subprocess.Popen(
        [
            str(CORRAL),
            "worker",
            "--handlers",
            "corral.examples.handlers",
        ],
        env=_env(REDIS_URL=f"redis://:{CANARY}@127.0.0.1:1/0", CORRAL_REDIS_CONNECT_TIMEOUT="5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "Retrying in" in line:
                break
        assert "127.0.0.1:1" in seen[-1], seen
        assert "Redis not reachable" in seen[-1], seen
        assert proc.poll() is None, seen
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        assert proc.returncode == 0, [*seen, rest]
        output = "".join(seen) + rest
        assert "CANARY" not in output
        assert "Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_port_taken_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = corral(
            "api",
            "--port",
            str(port),
            REDIS_URL=f"redis://:{CANARY}@127.0.0.1:1/0",
            CORRAL_ADMIN_TOKEN=CANARY,
            CORRAL_API_HOST="127.0.0.1",
        )
    _assert_one_line_error(result, 1, f"cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"redis://:{CANARY}@127.0.0.1:notaport", "port"),
        (f"redis://:{CANARY}@127.0.0.1:6379/99", "database"),
        (f"http://:{CANARY}@127.0.0.1", "redis://"),
        (f":{CANARY}@127.0.0.1:6379", "redis://"),
        ("", "redis://"),
    ],
)
def test_bad_redis_url(url: str, needle: str) -> None:
    result = corral("worker", "--handlers", "corral.examples.handlers", REDIS_URL=url)
    _assert_one_line_error(result, 1, "REDIS_URL", needle)


@pytest.mark.parametrize("level", ["verbose", ""])
def test_bad_log_level(level: str) -> None:
    result = corral("worker", "--handlers", "corral.examples.handlers", LOG_LEVEL=level)
    _assert_one_line_error(result, 1, "LOG_LEVEL", "debug, info, warning, error")


@pytest.mark.parametrize("log_format", ["yaml", ""])
def test_bad_log_format(log_format: str) -> None:
    result = corral("worker", "--handlers", "corral.examples.handlers", LOG_FORMAT=log_format)
    _assert_one_line_error(result, 1, "LOG_FORMAT", "text, json")


def test_bad_corral_env() -> None:
    result = corral("worker", "--handlers", "corral.examples.handlers", CORRAL_ENV="prod")
    _assert_one_line_error(result, 1, "CORRAL_ENV")


def test_bad_variable_with_password_elsewhere_stays_redacted() -> None:
    result = corral(
        "worker",
        "--handlers",
        "corral.examples.handlers",
        LOG_LEVEL="verbose",
        REDIS_URL=f"redis://:{CANARY}@127.0.0.1:1/0",
    )
    _assert_one_line_error(result, 1, "LOG_LEVEL")


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("DATABASE_URL", f"postgresql+asyncpg://postgres:p@ss{CANARY}@127.0.0.1:5499/test"),
        ("REDIS_URL", f"redis://:{CANARY}@RY#x@127.0.0.1:6379/0"),
    ],
)
def test_an_unencoded_at_in_a_password_stops_start_up_unseen(variable: str, url: str) -> None:
    """Parsed as it stands, the password's tail became the host name and showed in messages."""
    for command in ("api", "scheduler"):
        result = corral(command, **{variable: url})
        _assert_one_line_error(result, 1, variable, "percent-encode")
