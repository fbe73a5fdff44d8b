"""`corral api` without CORRAL_ADMIN_TOKEN: a warning at start, and 401 bodies that say the
server has no token (set CORRAL_ADMIN_TOKEN), not "invalid token"."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import corral_env, corral_process, free_port


@pytest.mark.timeout(60)
def test_api_without_a_token_says_what_to_set(
    tmp_path: Path, redis_url: str, queue_name: str, database_url: str
) -> None:
    port = free_port()
    env = corral_env(redis_url, queue_name, database_url, CORRAL_API_PORT=str(port))
    env.pop("CORRAL_ADMIN_TOKEN", None)
    env["CORRAL_ENV"] = os.environ.get("CORRAL_ENV", "development")
    log = tmp_path / "api.log"
    base = f"http://127.0.0.1:{port}"
    with corral_process("api", env, log=log) as proc:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"{base}/api/admin/scheduled-jobs"
        for headers in ({}, {"Authorization": "Bearer guess"}):
            answer = httpx.get(url, headers=headers)
            assert answer.status_code == 401
            message = answer.json()["error"]["message"]
            assert "no admin token configured" in message, message
            assert "CORRAL_ADMIN_TOKEN" in message, message
        # The dashboard's login form says the same, not "invalid token".
        login = httpx.post(
            f"{base}/dashboard/login", json={"token": "anything"}, headers={"Origin": base}
        )
        assert login.status_code == 401
        assert "no admin token configured" in login.json()["error"]["message"], login.text
    output = log.read_text()
    warnings = [line for line in output.splitlines() if "CORRAL_ADMIN_TOKEN" in line]
    assert warnings, output
    assert "warning" in warnings[0].lower(), warnings
