"""The dashboard in a real browser: log in, overview, schedules (with the live cron preview and
its field errors), a failing job retried from the Jobs page — and markup from jobs, schedules
and errors shown as text, never run."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.conftest import DOCS_SHOTS, TOKEN, Api
from tests.support.it_handlers.xss import XSS_ERROR

XSS_DATA = "<img src=x onerror=alert(1)>"
XSS_NAME = "<img src=x onerror=alert(2)> nightly"
XSS_DESCRIPTION = "<script>alert(4)</script>"
TIMEOUT_MS = 10_000


async def _until(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _failed_ids(api: Api) -> list[str]:
    page = api.client.get(f"/api/admin/queues/{api.queue}/jobs", params={"state": "failed"})
    return [job["id"] for job in page.json()["items"]]


async def _shot(page: Page, tmp_path: Path, name: str, docs: bool = False) -> None:
    path = tmp_path / "screenshots" / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if docs:
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / f"{name}.png")


async def test_dashboard_end_to_end(api_server: Api, qm: Any, browser: Any, tmp_path: Path) -> None:
    api = api_server
    await qm.start_worker(concurrency=2)
    # Markup in a job's data and in its error message; a plain failing job to retry.
    xss_job = api.client.post(
        f"/api/admin/queues/{api.queue}/jobs",
        json={"name": "xss_fail", "data": {"note": XSS_DATA}, "options": {"attempts": 1}},
    ).json()["id"]
    plain_job = api.client.post(
        f"/api/admin/queues/{api.queue}/jobs",
        json={"name": "fail", "data": {}, "options": {"attempts": 1}},
    ).json()["id"]
    for _ in range(3):
        api.client.post(f"/api/admin/queues/{api.queue}/jobs", json={"name": "noop"})
    api.client.post(
        "/api/admin/scheduled-jobs",
        json={
            "name": XSS_NAME,
            "description": XSS_DESCRIPTION,
            "handlerName": "noop",
            "cronExpression": "0 0 3 * * *",
            "timezone": "UTC",
            "domain": "e2e",
        },
    ).raise_for_status()
    await _until(lambda: {xss_job, plain_job} <= set(_failed_ids(api)))

    (tmp_path / "screenshots").mkdir()
    context = await browser.new_context(viewport={"width": 1360, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    console_errors: list[str] = []  # script errors and CSP violations; expected 4xx are not

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: console_errors.append(str(e)))

    # -- login ------------------------------------------------------------------------------
    await page.goto(api.url + "/")
    await expect(page.locator("#view-login")).to_be_visible()
    await _shot(page, tmp_path, "login")
    await page.fill("#login-token", "wrong")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_have_text("That token is not valid.")
    await page.fill("#login-token", TOKEN)
    await page.click("#login-form button[type=submit]")

    # -- overview ---------------------------------------------------------------------------
    await expect(page.locator("#view-overview")).to_be_visible()
    failed_stat = page.locator("#overview-counts .stat.state-failed .stat-value")
    await expect(failed_stat).to_have_text("2")
    await expect(page.locator("#overview-counts .stat.state-completed .stat-value")).to_have_text(
        "3"
    )
    await expect(page.locator("#overview-health")).to_contain_text("ready")
    await expect(page.locator("#overview-workers table")).to_be_visible()
    await _shot(page, tmp_path, "overview", docs=True)

    # -- schedules: bad cron -> field error; fixed -> preview; create; pause; run now --------
    await page.click("#nav a[data-view=schedules]")
    await expect(page.locator("#schedules-table")).to_contain_text(XSS_NAME)
    await expect(page.locator("#schedules-table")).to_contain_text(XSS_DESCRIPTION)
    await page.click("#schedule-new")
    await page.fill("#sf-name", "e2e report")
    await page.fill("#sf-handler", "noop")
    await page.fill("#sf-cron", "61 * * * *")
    await expect(page.locator("#sf-preview-error")).to_contain_text("cronExpression")
    await expect(page.locator("#sf-cron")).to_have_class("invalid")
    await page.fill("#sf-cron", "0 */15 * * * *")
    await expect(page.locator("#sf-preview li")).to_have_count(5)
    await expect(page.locator("#sf-preview-error")).to_be_hidden()
    await _shot(page, tmp_path, "schedule-form", docs=True)
    await page.click("#schedule-form button[type=submit]")
    row = page.locator("#schedules-table tr", has_text="e2e report")
    await expect(row).to_contain_text("enabled")
    await row.get_by_role("button", name="Pause").click()
    await expect(row.locator(".badge")).to_have_text("paused")
    await row.get_by_role("button", name="Run now").click()
    await expect(page.locator("#banner")).to_contain_text("Triggered")
    await expect(row.get_by_role("button", name="Enable")).to_be_visible()
    await _shot(page, tmp_path, "schedules", docs=True)

    # -- executions -------------------------------------------------------------------------
    await page.click("#nav a[data-view=executions]")
    await page.select_option("#exec-status", "failed")
    await expect(page.locator("#executions-table")).to_contain_text(XSS_ERROR)
    await page.locator("#executions-table tr", has_text=XSS_ERROR).click()
    await expect(page.locator("#execution-detail")).to_contain_text(XSS_ERROR)
    await _shot(page, tmp_path, "executions")

    # -- jobs: the failing job, its detail, retry --------------------------------------------
    await page.click("#nav a[data-view=jobs]")
    await page.click("#jobs-tabs button[data-state=failed]")
    await expect(page.locator("#jobs-table")).to_contain_text(XSS_ERROR)
    await page.locator("#jobs-table tr", has_text=XSS_ERROR).click()
    detail = page.locator("#job-detail")
    await expect(detail).to_contain_text(XSS_DATA)
    await expect(detail).to_contain_text(XSS_ERROR)
    await _shot(page, tmp_path, "jobs", docs=True)
    await page.locator("#jobs-table tr", has_text="boom on attempt").click()
    await expect(detail).to_contain_text("boom on attempt 1")
    await page.click("#job-retry")
    await expect(page.locator("#banner")).to_contain_text("moved back to waiting")
    await _until(lambda: api.client.get(f"/api/admin/jobs/{plain_job}").json()["attemptsMade"] >= 2)

    # -- pause / resume the queue ------------------------------------------------------------
    await page.click("#queue-pause")
    await expect(page.locator("#queue-state")).to_have_text("queue paused")
    assert api.client.get(f"/api/admin/queues/{api.queue}").json()["paused"] is True
    await page.click("#queue-resume")
    await expect(page.locator("#queue-state")).to_have_text("queue running")

    # -- nothing ran: markup stayed text ------------------------------------------------------
    assert await page.locator("img[src=x], svg[onload], #view-schedules script").count() == 0
    assert dialogs == []
    assert console_errors == []

    # -- logout ------------------------------------------------------------------------------
    await page.click("#logout")
    await expect(page.locator("#view-login")).to_be_visible()
    answer = await page.request.get(api.url + "/api/admin/scheduled-jobs")
    assert answer.status == 401
    await context.close()
