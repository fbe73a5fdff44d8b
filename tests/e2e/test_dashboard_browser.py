"""The dashboard in a real browser: log in, overview (with the per-minute chart), schedules
(with the live cron preview and its field errors; create and edit), executions filtered, jobs
(a failing job retried, log lines, adding a job, cleaning the queue) — and markup from jobs,
schedules and errors shown as text, never run."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Page, expect

from corral import JobPriority
from corral.core.schedules import DEFAULT_TIMEZONE
from tests.e2e.conftest import DOCS_SHOTS, TOKEN, UPDATE_SCREENSHOTS, Api, publish_screenshot
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
        publish_screenshot(path)


async def _new_page(
    browser: Any, timezone: str | None = None
) -> tuple[Any, Page, list[str], list[str]]:
    """A page whose script errors and CSP violations (not expected 4xx) and dialogs are kept;
    ``timezone`` is the browser's own zone (the machine's when None)."""
    context = await browser.new_context(
        viewport={"width": 1360, "height": 860}, timezone_id=timezone
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    console_errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    return context, page, console_errors, dialogs


def _docs_shots() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(DOCS_SHOTS.glob("*.png"))}


async def test_dashboard_end_to_end(api_server: Api, qm: Any, browser: Any, tmp_path: Path) -> None:
    api = api_server
    docs_before = _docs_shots()
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
    context, page, console_errors, dialogs = await _new_page(browser)

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
    # the chart: 3 completed and 2 failed in the last hour (the workers flush every second and
    # the page polls every 3 s)
    chart = page.locator("#overview-chart svg")
    await expect(chart).to_have_attribute("data-total-completed", "3")
    await expect(chart).to_have_attribute("data-total-failed", "2")
    assert await chart.locator("rect.bar-completed").count() >= 1
    assert await chart.locator("rect.bar-failed").count() >= 1
    await expect(page.locator("#overview-chart-legend")).to_contain_text("failed 2")
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
    await _shot(page, tmp_path, "jobs-failed")
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
    if os.environ.get(UPDATE_SCREENSHOTS) != "1":  # a test run changes no tracked file
        assert _docs_shots() == docs_before


def _counts(api: Api) -> dict[str, int]:
    return dict(api.client.get(f"/api/admin/queues/{api.queue}").json()["counts"])


def _executions(api: Api) -> int:
    return int(api.client.get("/api/admin/executions").json()["total"])


async def _open_dashboard(
    browser: Any, api: Api, timezone: str | None = None
) -> tuple[Any, Page, list[str], list[str]]:
    """A logged-in page on the overview; console errors and dialogs are collected."""
    context, page, console_errors, dialogs = await _new_page(browser, timezone)
    await page.goto(api.url + "/")
    await page.fill("#login-token", TOKEN)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#view-overview")).to_be_visible()
    return context, page, console_errors, dialogs


async def test_dashboard_chart_filters_edit_and_job_forms(
    api_server: Api, qm: Any, browser: Any, tmp_path: Path
) -> None:
    api = api_server
    await qm.start_worker(concurrency=2)
    (tmp_path / "screenshots").mkdir()
    context, page, console_errors, dialogs = await _open_dashboard(browser, api)

    # -- overview: an empty hour is a flat chart with a note -----------------------------------
    chart = page.locator("#overview-chart svg")
    await expect(chart).to_have_attribute("data-total-completed", "0")
    await expect(chart).to_have_attribute("data-total-failed", "0")
    await expect(chart).to_have_attribute("data-points", "60")
    await expect(chart.locator("rect.bar-completed, rect.bar-failed")).to_have_count(0)
    await expect(page.locator("#overview-chart .chart-note")).to_have_text(
        "No jobs finished in the last hour."
    )

    jobs = f"/api/admin/queues/{api.queue}/jobs"
    chatty = {"name": "chatty", "data": {"lines": 103}}  # logs "line 0" .. "line 102"
    logged = api.client.post(jobs, json=chatty).json()["id"]
    for _ in range(2):
        api.client.post(jobs, json={"name": "noop"}).raise_for_status()
    api.client.post(jobs, json={"name": "fail", "options": {"attempts": 1}}).raise_for_status()
    schedule = api.client.post(
        "/api/admin/scheduled-jobs",
        json={
            "name": "e2e nightly",
            "handlerName": "noop",
            "cronExpression": "0 0 3 * * *",
            "timezone": "UTC",
            "domain": "e2e",
        },
    ).json()
    api.client.post(f"/api/admin/scheduled-jobs/{schedule['id']}/run").raise_for_status()
    # 4 completed (chatty, 2 noop, the schedule's manual run), 1 failed, all in the SQL log
    await _until(lambda: _counts(api)["completed"] == 4 and _counts(api)["failed"] == 1)
    await _until(lambda: _executions(api) == 5)

    # -- overview: the next polls draw them ---------------------------------------------------
    await expect(chart).to_have_attribute("data-total-completed", "4")
    await expect(chart).to_have_attribute("data-total-failed", "1")
    assert await chart.locator("rect.bar-failed").count() == 1
    tooltip = await chart.locator("g.bar:has(rect.bar-failed) > title").text_content()
    assert tooltip is not None
    assert re.fullmatch(r"\d\d:\d\d — \d+ completed, 1 failed", tooltip), tooltip
    await expect(page.locator("#overview-chart .chart-note")).to_have_count(0)

    # -- executions: narrowed by handler and by schedule; from > to is the API's 422 ----------
    await page.click("#nav a[data-view=executions]")
    rows = page.locator("#executions-table tbody tr")
    await expect(rows).to_have_count(5)
    await page.fill("#exec-handler", "fail")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("boom on attempt 1")
    await _shot(page, tmp_path, "executions-by-handler")
    await page.fill("#exec-handler", "")
    await expect(rows).to_have_count(5)
    await page.select_option("#exec-schedule", label="e2e nightly")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("manual")
    await expect(rows.first).to_contain_text("e2e nightly")
    await page.fill("#exec-from", "2030-01-02T10:00")
    await page.fill("#exec-to", "2030-01-01T10:00")
    await expect(page.locator("#exec-error")).to_contain_text("from: must not be later than 'to'")
    await expect(page.locator("#exec-from")).to_have_class(re.compile(r"\binvalid\b"))
    await expect(rows).to_have_count(0)
    await page.fill("#exec-to", "")
    await expect(page.locator("#exec-error")).to_be_hidden()
    await expect(page.locator("#executions-table")).to_contain_text("No executions match.")
    await _shot(page, tmp_path, "executions-filtered")
    await page.click("#exec-clear")
    await expect(rows).to_have_count(5)
    assert await page.input_value("#exec-schedule") == ""

    # -- schedules: edit the cron (bad -> field error; good -> saved) -------------------------
    await page.click("#nav a[data-view=schedules]")
    row = page.locator("#schedules-table tr", has_text="e2e nightly")
    await row.get_by_role("button", name="Edit").click()
    await expect(page.locator("#sf-title")).to_have_text("Edit schedule")
    await expect(page.locator("#sf-submit")).to_have_text("Save")
    await expect(page.locator("#sf-cron")).to_have_value("0 0 3 * * *")
    await expect(page.locator("#sf-preview li")).to_have_count(5)
    await page.fill("#sf-cron", "0 99 * * * *")
    await expect(page.locator("#sf-preview-error")).to_contain_text("cronExpression")
    await page.click("#sf-submit")
    await expect(page.locator("#sf-error")).to_contain_text("cronExpression")
    await expect(page.locator("#sf-cron")).to_have_class(re.compile(r"\binvalid\b"))
    await _shot(page, tmp_path, "schedule-edit")
    await page.fill("#sf-cron", "0 30 4 * * *")
    await expect(page.locator("#sf-preview li")).to_have_count(5)
    await page.click("#sf-submit")
    await expect(page.locator("#banner")).to_contain_text("Schedule saved.")
    await expect(page.locator("#schedule-form")).to_be_hidden()
    await expect(row).to_contain_text("0 30 4 * * *")
    saved = api.client.get(f"/api/admin/scheduled-jobs/{schedule['id']}").json()
    assert saved["cronExpression"] == "0 30 4 * * *"
    assert saved["name"] == "e2e nightly"  # unchanged fields kept
    await page.click("#schedule-new")  # creating still starts from an empty form
    await expect(page.locator("#sf-title")).to_have_text("New schedule")
    await expect(page.locator("#sf-name")).to_have_value("")
    await page.click("#schedule-cancel")

    # -- jobs: log lines in the detail ---------------------------------------------------------
    await page.click("#nav a[data-view=jobs]")
    await page.click("#jobs-tabs button[data-state=completed]")
    logs_cell = page.locator("#job-detail dt:text-is('Logs') + dd")
    await page.locator("#jobs-table tbody tr", has_text="noop").first.click()
    await expect(page.locator("#job-detail h2")).to_contain_text("completed")
    await expect(logs_cell).to_have_text("—")  # a handler that logged nothing
    await page.locator("#jobs-table tbody tr", has_text="chatty").click()
    await expect(page.locator("#job-detail h2")).to_contain_text(logged)
    log_text = await page.locator("#job-logs").text_content()
    assert log_text == "\n".join(f"line {n}" for n in range(3, 103))  # the newest 100
    await expect(page.locator("#job-detail .logs-note")).to_have_text("showing last 100 of 103")

    # -- jobs: add a job (bad priority, bad JSON, then good) ----------------------------------
    await page.click("#job-new")
    await expect(page.locator("#jf-handlers option[value=noop]")).to_have_count(1)
    await expect(page.locator("#jf-priority")).to_have_value("5")
    await page.fill("#jf-name", "noop")
    await page.fill("#jf-priority", "99")
    await page.fill("#jf-delay", "600000")
    await page.click("#jf-submit")
    await expect(page.locator("#jf-error")).to_contain_text("options.priority")
    await expect(page.locator("#jf-priority")).to_have_class(re.compile(r"\binvalid\b"))
    await page.fill("#jf-data", '{"source": ')
    await page.click("#jf-submit")
    await expect(page.locator("#jf-error")).to_have_text("data: is not valid JSON")
    await expect(page.locator("#jf-data")).to_have_class(re.compile(r"\binvalid\b"))
    await page.fill("#jf-data", '{"source": "dashboard"}')
    await page.fill("#jf-priority", "15")
    await page.fill("#jf-attempts", "2")
    await page.click("#clean-open")
    await expect(page.locator("#jf-error")).to_be_hidden()  # editing cleared the errors
    await _shot(page, tmp_path, "jobs", docs=True)
    assert _counts(api)["delayed"] == 0
    await page.click("#jf-submit")
    banner = page.locator("#banner")
    await expect(banner).to_contain_text(re.compile(r"Job \S+ added\."))
    added = re.search(r"Job (\S+) added\.", await banner.text_content() or "")
    assert added is not None
    job_id = added.group(1)
    await expect(page.locator("#jobs-tabs button[data-state=delayed]")).to_have_class(
        re.compile(r"\bactive\b")
    )
    await expect(page.locator("#jobs-table")).to_contain_text(job_id)
    await expect(page.locator("#job-detail")).to_contain_text(job_id)
    job = api.client.get(f"/api/admin/jobs/{job_id}").json()
    assert (job["name"], job["data"], job["priority"]) == ("noop", {"source": "dashboard"}, 15)
    assert job["maxAttempts"] == 2
    await expect(page.locator("#job-form")).to_be_hidden()

    # -- jobs: clean the completed jobs (a second click confirms) -----------------------------
    await page.select_option("#clean-status", "completed")
    await page.fill("#clean-grace", "0")
    await page.click("#clean-submit")
    await expect(page.locator("#clean-submit")).to_have_text("Confirm: remove completed jobs")
    assert _counts(api)["completed"] == 4  # nothing removed yet
    await page.click("#clean-submit")
    await expect(page.locator("#clean-result")).to_have_text("Removed 4 jobs.")
    assert _counts(api)["completed"] == 0
    assert _counts(api)["delayed"] == 1  # other states untouched
    await page.click("#jobs-tabs button[data-state=completed]")
    await expect(page.locator("#jobs-table")).to_contain_text("No completed jobs.")

    assert dialogs == []
    assert console_errors == []
    await context.close()


def _in_zone(at: str, zone: str) -> str:
    """An API instant as the dashboard shows it in ``zone``: '2026-12-01 09:30:00 Asia/Kolkata'."""
    moment = datetime.fromisoformat(at).astimezone(ZoneInfo(zone))
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}"


def _utc(at: str) -> str:
    return f"{datetime.fromisoformat(at).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


# The x-axis labels of the chart for an hour ending at every minute of an hour: each pair that
# overlaps (or leaves the drawing) is reported as "left | right".
CHART_LABEL_CLASHES = """async () => {
  const { renderThroughput } = await import('/dashboard/static/chart.js');
  const box = document.createElement('div');
  box.className = 'chart';
  document.querySelector('main').append(box);
  const legend = document.createElement('div');
  const clashes = [];
  for (let minute = 0; minute < 60; minute += 1) {
    const end = new Date();
    end.setHours(4, minute, 0, 0);
    const points = Array.from({ length: 60 }, (_, i) => ({
      at: new Date(end.getTime() - (59 - i) * 60000).toISOString(), completed: 0, failed: 0 }));
    renderThroughput(box, legend, { points });
    const width = box.querySelector('svg').viewBox.baseVal.width;
    const labels = [...box.querySelectorAll('text.x-label')].map((t) => {
      const b = t.getBBox();
      return { left: b.x, right: b.x + b.width, text: t.textContent };
    }).sort((a, b) => a.left - b.left);
    labels.forEach((label, i) => {
      if (label.left < 0 || label.right > width) clashes.push(`outside: ${label.text}`);
      const before = labels[i - 1];
      if (before && label.left < before.right + 4) clashes.push(`${before.text} | ${label.text}`);
    });
  }
  box.remove();
  return clashes;
}"""

# How many lines each cell of the executions table's "Started" column takes.
STARTED_LINES = """() => {
  const heads = [...document.querySelectorAll('#executions-table th')].map((th) => th.textContent);
  const column = heads.indexOf('Started');
  return [...document.querySelectorAll('#executions-table tbody tr')].map((tr) => {
    const range = document.createRange();
    range.selectNodeContents(tr.children[column]);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  });
}"""


async def test_dashboard_failures_zones_workers_and_details(
    api_server: Api, qm: Any, browser: Any, tmp_path: Path
) -> None:
    """A failure's reason and traceback in the job and execution details; schedule times in the
    schedule's zone; the form's default zone is the API's; workers as a table; the priority
    names; the jobs page opens on a non-empty state; one-line dates; chart labels apart."""
    api = api_server
    await qm.start_worker(concurrency=2)
    jobs = f"/api/admin/queues/{api.queue}/jobs"
    failing = api.client.post(
        jobs, json={"name": "key_error", "options": {"attempts": 2, "backoff": 0}}
    ).json()["id"]
    api.client.post(jobs, json={"name": "noop"}).raise_for_status()
    schedule = api.client.post(
        "/api/admin/scheduled-jobs",
        json={
            "name": "kolkata morning",
            "handlerName": "noop",
            "cronExpression": "0 30 9 * * *",
            "timezone": "Asia/Kolkata",
            "domain": "e2e",
        },
    ).json()
    # a manual run: its execution id is long, and used to squeeze the dates onto four lines
    api.client.post(f"/api/admin/scheduled-jobs/{schedule['id']}/run").raise_for_status()
    await _until(lambda: _counts(api)["failed"] == 1 and _counts(api)["completed"] == 2)
    await _until(lambda: _executions(api) == 3)
    # the browser's own zone is neither UTC, the default zone nor the schedule's
    context, page, console_errors, dialogs = await _open_dashboard(
        browser, api, timezone="America/New_York"
    )

    # -- overview: the workers as a table; chart labels never overlap -------------------------
    workers = page.locator("#overview-workers table")
    await expect(workers.locator("th")).to_have_text(
        ["Host", "PID", "Concurrency", "Handlers", "Uptime"]
    )
    worker_row = workers.locator("tbody tr")
    await expect(worker_row).to_have_count(1)
    cells = worker_row.locator("td")
    await expect(cells.nth(0)).to_have_text(socket.gethostname())
    await expect(cells.nth(1)).to_have_text(str(os.getpid()))  # the worker runs in this test
    await expect(cells.nth(2)).to_have_text("2")
    await expect(cells.nth(3)).to_contain_text("key_error")
    await expect(cells.nth(4)).to_have_text(re.compile(r"^\d+ (s|min)$"))
    await expect(page.locator("#overview-workers")).not_to_contain_text("started_at_ms")
    assert await page.evaluate(CHART_LABEL_CLASHES) == []

    # -- jobs: opens on the first state with jobs; the failure's reason and tracebacks ---------
    await page.click("#nav a[data-view=jobs]")
    await expect(page.locator("#jobs-tabs button.active")).to_have_attribute(
        "data-state", "completed"
    )
    await expect(page.locator("#jobs-table")).to_contain_text("noop")
    await page.click("#jobs-tabs button[data-state=failed]")
    await expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    await page.locator("#jobs-table tbody tr", has_text="key_error").click()
    await expect(page.locator("#job-detail h2")).to_contain_text(failing)
    detail = page.locator("#job-detail")
    await expect(detail.locator("dt:text-is('Error') + dd")).to_have_text("KeyError: 'width'")
    latest = detail.locator("pre#job-stacktrace")
    await expect(latest).to_contain_text("Traceback (most recent call last)")
    await expect(latest).to_contain_text('sizes["width"]')
    await expect(latest).to_contain_text("KeyError: 'width'")
    await expect(detail.locator("pre.stacktrace")).to_have_count(2)  # one per failed attempt
    await _shot(page, tmp_path, "job-failure")

    # -- jobs: the add form names the priorities as the enum does ------------------------------
    await page.click("#job-new")
    hint = page.locator("#jf-priority + .hint")
    for level in JobPriority:
        await expect(hint).to_contain_text(f"{level.name} {level.value}")
    await expect(hint).not_to_contain_text("15")
    await page.click("#job-cancel")

    # -- executions: one-line dates; the failure's reason and traceback -----------------------
    await page.click("#nav a[data-view=executions]")
    rows = page.locator("#executions-table tbody tr")
    await expect(rows).to_have_count(3)
    assert await page.evaluate(STARTED_LINES) == [1, 1, 1]
    await rows.filter(has_text="key_error").click()
    execution = page.locator("#execution-detail")
    await expect(execution.locator("dt:text-is('Error') + dd")).to_have_text("KeyError: 'width'")
    trace = execution.locator("pre#execution-stacktrace")
    await expect(trace).to_contain_text("Traceback (most recent call last)")
    await expect(trace).to_contain_text("KeyError: 'width'")
    await expect(execution.locator("dt:text-is('Enqueued') + dd")).not_to_have_text("—")
    await _shot(page, tmp_path, "execution-failure", docs=True)

    # -- schedules: times in the schedule's zone, UTC on hover; the API's default zone ---------
    await page.click("#nav a[data-view=schedules]")
    nxt = api.client.get(f"/api/admin/scheduled-jobs/{schedule['id']}").json()["nextFires"][0]
    row = page.locator("#schedules-table tr", has_text="kolkata morning")
    next_cell = row.locator("td.next-fire > span")
    await expect(next_cell).to_have_text(_in_zone(nxt, "Asia/Kolkata"))
    await expect(next_cell).to_have_attribute("title", _utc(nxt))
    await page.click("#schedule-new")
    await expect(page.locator("#sf-tz")).to_have_value(DEFAULT_TIMEZONE)
    await page.fill("#sf-cron", "0 0 8 * * *")
    preview = api.client.post(
        "/api/admin/cron/preview",
        json={"cronExpression": "0 0 8 * * *", "timezone": DEFAULT_TIMEZONE, "count": 5},
    ).json()["nextFires"]
    first = page.locator("#sf-preview li > span").first
    await expect(first).to_have_text(_in_zone(preview[0], DEFAULT_TIMEZONE))
    await expect(first).to_have_attribute("title", _utc(preview[0]))
    await page.click("#schedule-cancel")
    await row.get_by_role("button", name="Edit").click()
    await expect(page.locator("#sf-tz")).to_have_value("Asia/Kolkata")
    await expect(page.locator("#sf-preview li > span").first).to_have_text(
        _in_zone(nxt, "Asia/Kolkata")
    )
    await page.click("#schedule-cancel")

    assert dialogs == []
    assert console_errors == []
    await context.close()


async def test_dashboard_shows_ticks_a_schedule_missed(
    api_server: Api, settings: Any, browser: Any, tmp_path: Path
) -> None:
    """Skipped ticks written by a real scheduler (its clock 3 h past a daily tick with a 1 h
    window, and past a day of hourly ticks with no window): a 'missed' badge, the status filter,
    "N ticks missed from X to Y" in the row and the detail, and the schedule's last run."""
    from corral.scheduler import TaskScheduler

    api = api_server
    common = {"domain": "e2e", "timezone": "UTC", "handlerName": "noop"}
    daily = api.client.post(
        "/api/admin/scheduled-jobs",
        json={"name": "e2e daily", "cronExpression": "0 0 0 * * *", "catchUpMs": 3_600_000}
        | common,
    ).json()
    hourly = api.client.post(
        "/api/admin/scheduled-jobs",
        json={"name": "e2e hourly", "cronExpression": "0 0 * * * *", "catchUpMs": 0} | common,
    ).json()
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    later = midnight + timedelta(days=1, hours=3, seconds=30)
    scheduler = TaskScheduler(settings, clock=lambda: later)
    await scheduler.initialize()
    await scheduler.close()  # flushes the execution log
    missed = api.client.get("/api/admin/executions", params={"status": "missed"}).json()
    by_schedule = {row["jobId"]: row["missed"] for row in missed["items"]}
    print("missed:", by_schedule)
    assert by_schedule[daily["id"]]["ticks"] == 1
    hours = by_schedule[hourly["id"]]["ticks"]
    assert hours >= 3

    (tmp_path / "screenshots").mkdir()
    context, page, console_errors, dialogs = await _open_dashboard(browser, api, "UTC")
    await page.click("#nav a[data-view=executions]")
    rows = page.locator("#executions-table tbody tr")
    await page.select_option("#exec-status", "missed")
    await expect(rows).to_have_count(2)
    await expect(rows.locator(".badge.state-missed")).to_have_count(2)
    daily_row = rows.filter(has_text="e2e daily")
    await expect(daily_row).to_contain_text("1 tick missed:")
    hourly_row = rows.filter(has_text="e2e hourly")
    await expect(hourly_row).to_contain_text(f"{hours} ticks missed from ")
    await hourly_row.click()
    detail = page.locator("#execution-detail")
    await expect(detail.locator("dt:text-is('Missed') + dd")).to_contain_text(
        f"{hours} ticks missed from "
    )
    await expect(detail.locator("dt:text-is('Started') + dd")).to_have_text("—")
    await _shot(page, tmp_path, "executions-missed")
    await page.click("#nav a[data-view=schedules]")
    last_run = page.locator("#schedules-table tr", has_text="e2e hourly")
    await expect(last_run.locator(".badge.state-missed")).to_have_text("missed")
    await expect(last_run).to_contain_text(f"{hours} ticks")
    assert console_errors == []
    assert dialogs == []
    await context.close()
