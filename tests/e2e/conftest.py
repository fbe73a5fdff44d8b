"""Browser tests: Playwright driving Debian's Chromium (never ``playwright install``) against a
real ``corral api`` process and an in-process worker.

No Chromium at /usr/bin/chromium (or no Playwright) -> skip locally, FAIL in CI (CI=true).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.adapters.sql.migrate import upgrade
from tests.support.processes import CORRAL, ROOT, corral_env, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TOKEN = "e2e-admin-token"  # noqa: S105 - a test value
DOCS_SHOTS = ROOT / "docs" / "screenshots"
# The browser tests always take their screenshots (into the test's temporary folder); they copy
# the documented ones over docs/screenshots/ only when asked, so a test run never changes
# tracked files.
UPDATE_SCREENSHOTS = "CORRAL_UPDATE_SCREENSHOTS"


def publish_screenshot(path: Path, docs: Path = DOCS_SHOTS) -> Path | None:
    """Copy ``path`` into ``docs`` when CORRAL_UPDATE_SCREENSHOTS=1; the copy's path, or None."""
    if os.environ.get(UPDATE_SCREENSHOTS, "") != "1":
        return None
    docs.mkdir(parents=True, exist_ok=True)
    target = docs / path.name
    shutil.copyfile(path, target)
    return target


def _need(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI=true: the browser tests must not be skipped)")
    pytest.skip(why)


@dataclass
class Api:
    url: str
    queue: str
    client: httpx.Client


@pytest.fixture
def api_server(redis_url: str, queue_name: str, database_url: str) -> Iterator[Api]:
    """``corral api`` on a free port, sharing the test's queue and (migrated) SQLite file."""
    port = free_port()
    env = corral_env(
        redis_url,
        queue_name,
        database_url,
        CORRAL_ADMIN_TOKEN=TOKEN,
        CORRAL_API_HOST="127.0.0.1",
        CORRAL_API_PORT=str(port),
    )
    # Migrate in-process (what ``corral db upgrade`` does, without a second CLI start-up).
    asyncio.run(upgrade(database_url))
    proc = subprocess.Popen(
        [CORRAL, "api"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"corral api did not start:\n{output[-3000:]}")
            time.sleep(0.1)
        yield Api(url, queue_name, client)
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _need(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover
        _need(False, "playwright is not installed")
        raise
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
