"""A real ``corral api`` process under hostile clients: failed-authentication lockout, weak
tokens at start-up, slow clients cut off, connections over the limit answered 503."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import CORRAL, ROOT, corral_env, corral_process, free_port

TOKEN = "hardening-admin-token-0123456789abcdef"  # noqa: S105 - a test value
WRONG = "CANARY-wrong-token"  # must never reach a log line


@dataclass
class Api:
    url: str
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def api_process(
    redis_url: str, queue_name: str, tmp_path: Path, **extra: str
) -> Iterator[Api]:
    port = free_port()
    env = corral_env(
        redis_url,
        queue_name,
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        CORRAL_ADMIN_TOKEN=TOKEN,
        CORRAL_API_HOST="127.0.0.1",
        CORRAL_API_PORT=str(port),
        **extra,
    )
    log = tmp_path / "api.log"
    with corral_process("api", env, log=log) as proc:
        api = Api(f"http://127.0.0.1:{port}", port, log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(api.url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, api.output()
            assert time.monotonic() < deadline, api.output()
            time.sleep(0.05)
        yield api


# -- failed authentication -------------------------------------------------------------------


@pytest.fixture
def limited_api(redis_url: str, queue_name: str, tmp_path: Path) -> Iterator[Api]:
    with api_process(
        redis_url,
        queue_name,
        tmp_path,
        CORRAL_AUTH_MAX_FAILURES="3",
        CORRAL_AUTH_FAILURE_WINDOW="60",
    ) as api:
        yield api


def _assert_locked_out(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["field"] is None
    assert "too many failed authentication attempts" in error["message"]


def test_failed_dashboard_logins_lock_the_address_out(limited_api: Api) -> None:
    with httpx.Client(base_url=limited_api.url) as client:
        for _ in range(3):
            assert client.post("/dashboard/login", json={"token": WRONG}).status_code == 401
        _assert_locked_out(client.post("/dashboard/login", json={"token": WRONG}))
        # Locked out means locked out: the right token is not even compared (no oracle).
        _assert_locked_out(client.post("/dashboard/login", json={"token": TOKEN}))
        # Requests that need no authentication are not affected.
        assert client.get("/").status_code == 200
    # Another client address is not locked out.
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=limited_api.url, transport=other) as client:
        assert client.post("/dashboard/login", json={"token": TOKEN}).status_code == 200
    output = limited_api.output()
    failures = [line for line in output.splitlines() if "authentication failed" in line]
    assert len(failures) == 3, output
    assert all("WARNING" in line for line in failures)
    assert all("127.0.0.1" in line and "/dashboard/login" in line for line in failures)
    assert "CANARY" not in output
    assert TOKEN not in output


def test_wrong_bearer_tokens_lock_the_address_out(limited_api: Api) -> None:
    wrong = {"Authorization": f"Bearer {WRONG}"}
    right = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=limited_api.url) as client:
        assert client.get("/dashboard/config", headers=right).status_code == 200
        for _ in range(3):
            assert client.get("/dashboard/config", headers=wrong).status_code == 401
        _assert_locked_out(client.get("/dashboard/config", headers=wrong))
        _assert_locked_out(client.get("/dashboard/config", headers=right))
        # No credentials at all is not a guess: still the plain 401.
        assert client.get("/dashboard/config").status_code == 401
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=limited_api.url, transport=other) as client:
        assert client.get("/dashboard/config", headers=right).status_code == 200
    output = limited_api.output()
    assert output.count("authentication failed") == 3, output
    assert "CANARY" not in output
    assert TOKEN not in output


# -- weak tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["CANARY", "   ", f" {TOKEN} "])
def test_api_with_a_weak_token_refuses_to_start_in_production(
    redis_url: str, queue_name: str, token: str
) -> None:
    env = corral_env(redis_url, queue_name, CORRAL_ENV="production", CORRAL_ADMIN_TOKEN=token)
    result = subprocess.run(
        [CORRAL, "api", "--port", str(free_port())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CORRAL_ADMIN_TOKEN" in lines[0]
    assert "at least 32 characters" in lines[0]
    assert "CANARY" not in result.stderr + result.stdout
    assert TOKEN not in result.stderr + result.stdout


# -- slow clients and connection limit -------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)  # far beyond the server's read timeout: only a hang reaches it
    return sock


def _cut_off(sock: socket.socket) -> bytes:
    """What the server sent before closing the connection (raises on a 10 s hang)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received
