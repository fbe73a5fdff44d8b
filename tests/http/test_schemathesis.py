"""Schemathesis against the published OpenAPI schema of a real `corral api` process:
no input it generates may produce a 5xx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import corral_env, free_port

BIN = Path(sys.executable).parent


@pytest.mark.timeout(300)
def test_no_generated_request_gets_a_server_error(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'st.db'}"
    port = free_port()
    env = corral_env(
        redis_url,
        queue_name,
        database,
        CORRAL_ADMIN_TOKEN="st-token",  # noqa: S106 - a test value
        CORRAL_API_PORT=str(port),
        LOG_LEVEL="warning",
    )
    subprocess.run(
        [str(BIN / "corral"), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60
    )
    api = subprocess.Popen(
        [str(BIN / "corral"), "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        run = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "run",
                f"http://127.0.0.1:{port}/api/openapi.json",
                "--checks",
                "not_a_server_error",
                "-H",
                "Authorization: Bearer st-token",
                "--max-examples",
                os.environ.get("CORRAL_SCHEMATHESIS_EXAMPLES", "25"),
                "--phases",
                "examples,coverage,fuzzing",
                "--no-color",
                "--workers",
                "2",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=280,
            cwd=tmp_path,
            check=False,
        )
        print(run.stdout[-3000:])
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    finally:
        api.terminate()
        try:
            api.wait(timeout=10)
        finally:
            if api.stderr is not None:
                api.stderr.close()
