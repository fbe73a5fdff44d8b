"""A real ``corral api`` process under hostile clients: failed-authentication lockout, weak
tokens at start-up, slow clients cut off, connections over the limit answered 503."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from corral.http.serve import server_config
from corral.settings import CorralSettings
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
def api_process(redis_url: str, queue_name: str, tmp_path: Path, **extra: str) -> Iterator[Api]:
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


def test_api_with_a_weak_token_refuses_to_start_in_production(
    redis_url: str, queue_name: str
) -> None:
    """(Which tokens are weak: tests/unit/test_settings.py.)"""
    weak = {"CORRAL_ENV": "production", "CORRAL_ADMIN_TOKEN": "CANARY"}
    env = corral_env(redis_url, queue_name, **weak)
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


@pytest.fixture(scope="module")
def impatient_api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server for the slow-client tests: a 0.5 s read timeout, 1 KiB of headers at most,
    and a keep-alive timeout long enough that it cannot be what closes a connection."""
    with api_process(
        redis_url,
        f"t{uuid.uuid4().hex[:12]}",  # nothing is enqueued: no keys to clean up
        tmp_path_factory.mktemp("impatient"),
        CORRAL_API_READ_TIMEOUT="0.5",
        CORRAL_API_MAX_HEADER_BYTES="1024",
        CORRAL_API_KEEPALIVE_TIMEOUT="60",
    ) as api:
        yield api


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connected, silent
        b"GET / HT",  # half a request line
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # half the headers
    ],
)
def test_half_sent_requests_are_cut_off(impatient_api: Api, sent: bytes) -> None:
    with _connect(impatient_api.port) as sock:
        sock.sendall(sent)
        answer = _cut_off(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer


def test_dribbled_headers_are_cut_off(impatient_api: Api) -> None:
    """A byte every 50 ms keeps no connection open past the read timeout (slowloris)."""
    with _connect(impatient_api.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        with pytest.raises(ConnectionError):  # noqa: PT012 - the send that fails is the point
            for _ in range(200):  # 10 s: far beyond the timeout
                sock.sendall(b"a")
                time.sleep(0.05)


def test_half_sent_body_is_cut_off(impatient_api: Api) -> None:
    head = (
        b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    with _connect(impatient_api.port) as sock:
        sock.sendall(head + b'{"token": "')
        answer = _cut_off(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer


def test_half_sent_pipelined_request_is_cut_off(impatient_api: Api) -> None:
    with _connect(impatient_api.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HT")
        answer = _cut_off(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1 or b"HTTP/1.1 408 " in answer


def test_complete_requests_are_served(impatient_api: Api) -> None:
    with _connect(impatient_api.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _cut_off(sock).startswith(b"HTTP/1.1 200 ")


def test_unfinished_headers_over_the_cap_are_refused(impatient_api: Api) -> None:
    """The cap bounds what the server buffers while waiting for the end of the headers."""
    with _connect(impatient_api.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096)
        assert _cut_off(sock).startswith(b"HTTP/1.1 400 ")


def test_connections_over_the_limit_get_503(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    with api_process(redis_url, queue_name, tmp_path, CORRAL_API_MAX_CONNECTIONS="3") as api:
        idle = [_connect(api.port) for _ in range(3)]
        try:
            with _connect(api.port) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert _cut_off(sock).startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 10
        while httpx.get(api.url + "/").status_code == 503:  # the server sees the closes soon
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_server_config_carries_the_limits(settings: CorralSettings) -> None:
    app = FastAPI()
    app.state.settings = settings.replace(
        **{
            "api_keepalive_timeout_s": 7,
            "api_max_connections": 42,
            "api_max_header_bytes": 4096,
            "api_read_timeout_s": 2.5,
        }
    )
    config = server_config(app, host="127.0.0.1", port=1, log_level="warning")
    assert config.timeout_keep_alive == 7
    assert config.limit_concurrency == 42
    assert config.h11_max_incomplete_event_size == 4096
    assert isinstance(config.http, type)
    assert config.http.read_timeout_s == 2.5  # type: ignore[attr-defined]
