"""The dashboard: session login, cookie flags, CSRF and Origin checks, static files, no sinks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.core.schedules import DEFAULT_TIMEZONE
from corral.http.dashboard import routes as dashboard_routes
from corral.settings import Secret
from tests.http.conftest import ADMIN_TOKEN

STATIC = Path(dashboard_routes.__file__).parent / "static"
SCHEDULE = {
    "name": "dash",
    "handlerName": "noop",
    "cronExpression": "0 0 * * * *",
    "timezone": "UTC",
    "domain": "test",
}


@pytest.fixture
async def browser(api_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the bearer token (like a browser), cookies kept."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def _login(client: httpx.AsyncClient) -> str:
    answer = await client.post("/dashboard/login", json={"token": ADMIN_TOKEN})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrfToken"])


async def _count(api: httpx.AsyncClient) -> int:
    return int((await api.get("/api/admin/scheduled-jobs")).json()["total"])


async def test_wrong_token_sets_no_cookie(browser: httpx.AsyncClient) -> None:
    for token in ("wrong", "", " "):
        answer = await browser.post("/dashboard/login", json={"token": token})
        assert answer.status_code == 401
        assert "set-cookie" not in answer.headers
        assert answer.json()["error"]["message"]
    assert (await browser.get("/dashboard/session")).status_code == 401
    assert (await browser.get("/api/admin/scheduled-jobs")).status_code == 401


async def test_login_sets_a_strict_httponly_cookie(browser: httpx.AsyncClient) -> None:
    answer = await browser.post("/dashboard/login", json={"token": ADMIN_TOKEN})
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("corral_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # development; production adds it
    assert ADMIN_TOKEN not in cookie
    session = await browser.get("/dashboard/session")
    assert session.status_code == 200
    assert session.json() == {"csrfToken": answer.json()["csrfToken"]}


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
async def test_cookie_is_secure_outside_development(settings: Any, environment: str) -> None:
    from corral.http.app import create_app
    from tests.http.conftest import admin_settings

    token = "a-token-long-enough-outside-development"  # noqa: S105 - a test value
    app = create_app(admin_settings(settings, environment=environment, admin_token=Secret(token)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answer = await c.post("/dashboard/login", json={"token": token})
        assert "Secure" in answer.headers["set-cookie"]
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


async def test_cookie_reads_admin_routes(browser: httpx.AsyncClient, api_app: Any) -> None:
    await _login(browser)
    queue = api_app.state.settings.queue
    for path in (
        "/api/admin/scheduled-jobs",
        "/api/admin/executions",
        f"/api/admin/queues/{queue}",
        f"/api/admin/queues/{queue}/jobs?state=failed",
    ):
        answer = await browser.get(path)
        assert answer.status_code == 200, (path, answer.text)
    assert (await browser.get("/dashboard/config")).json() == {
        "queue": queue,
        "defaultTimezone": DEFAULT_TIMEZONE,  # the schedule form's zone is the API's default
    }


async def test_mutations_need_the_csrf_header(
    browser: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    csrf = await _login(browser)
    created = await api.post("/api/admin/scheduled-jobs", json=SCHEDULE)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    before = await _count(api)
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        attempts = [
            await browser.post("/api/admin/scheduled-jobs", json=SCHEDULE, headers=headers),
            await browser.patch(
                f"/api/admin/scheduled-jobs/{job_id}", json={"status": 2}, headers=headers
            ),
            await browser.delete(f"/api/admin/scheduled-jobs/{job_id}", headers=headers),
        ]
        for answer in attempts:
            assert answer.status_code == 403, answer.text
            assert answer.json()["error"]["field"] is None
            assert "CSRF" in answer.json()["error"]["message"]
    assert await _count(api) == before
    assert (await api.get(f"/api/admin/scheduled-jobs/{job_id}")).json()["status"] == 1

    good = {"X-CSRF-Token": csrf}
    foreign = {**good, "Origin": "https://evil.example"}
    answer = await browser.post("/api/admin/scheduled-jobs", json=SCHEDULE, headers=foreign)
    assert answer.status_code == 403
    assert "origin" in answer.json()["error"]["message"]
    assert await _count(api) == before

    same = {**good, "Origin": "http://t"}
    answer = await browser.patch(
        f"/api/admin/scheduled-jobs/{job_id}", json={"status": 2}, headers=same
    )
    assert answer.status_code == 200
    assert answer.json()["status"] == 2
    answer = await browser.post(
        "/api/admin/scheduled-jobs", json={**SCHEDULE, "name": "dash2"}, headers=good
    )
    assert answer.status_code == 201
    assert await _count(api) == before + 1
    assert (
        await browser.delete(f"/api/admin/scheduled-jobs/{job_id}", headers=good)
    ).status_code == 204
    assert await _count(api) == before


async def test_get_never_mutates(browser: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    await _login(browser)
    job_id = (await api.post("/api/admin/scheduled-jobs", json=SCHEDULE)).json()["id"]
    answer = await browser.get(f"/api/admin/scheduled-jobs/{job_id}/run")
    assert answer.status_code == 405
    assert (await browser.get("/dashboard/logout")).status_code == 405
    assert (await browser.get("/dashboard/login")).status_code == 405
    executions = await api.get(f"/api/admin/scheduled-jobs/{job_id}/executions")
    assert executions.json()["total"] == 0


async def test_logout_needs_csrf_and_ends_the_session(browser: httpx.AsyncClient) -> None:
    csrf = await _login(browser)
    assert (await browser.post("/dashboard/logout")).status_code == 403
    assert (await browser.get("/dashboard/session")).status_code == 200
    answer = await browser.post("/dashboard/logout", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 204
    assert (await browser.get("/dashboard/session")).status_code == 401
    assert (await browser.get("/api/admin/scheduled-jobs")).status_code == 401


async def test_a_stale_cookie_is_refused(browser: httpx.AsyncClient) -> None:
    browser.cookies.set("corral_session", "made-up")
    assert (await browser.get("/api/admin/scheduled-jobs")).status_code == 401
    assert (await browser.get("/dashboard/config")).status_code == 401


async def test_bearer_clients_need_no_csrf(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/admin/scheduled-jobs", json=SCHEDULE)
    assert answer.status_code == 201


async def test_page_and_static_files_carry_the_csp(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert '<script type="module" src="/dashboard/static/app.js">' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        answer = await browser.get(f"/dashboard/static/{name}")
        assert answer.status_code == 200
        assert kind in answer.headers["content-type"]
        assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert (await browser.get("/dashboard/static/../session.py")).status_code == 404


def test_dashboard_routes_are_not_in_the_openapi(api_app: Any) -> None:
    assert not [p for p in api_app.openapi()["paths"] if p.startswith("/dashboard") or p == "/"]


SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function"
    r"|setAttribute\(\s*['\"]on|\.style\b|javascript:"
)


def test_static_files_use_no_html_sinks_and_nothing_inline() -> None:
    files = sorted(STATIC.glob("*"))
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for path in files:
        text = path.read_text()
        if path.suffix == ".js":
            assert not SINKS.search(text), f"{path.name}: {SINKS.search(text)}"
        if path.suffix == ".html":
            assert not re.search(r"\sstyle\s*=", text, re.I), path.name
            assert not re.search(r"<style", text, re.I), path.name
            assert not re.search(r"\son[a-z]+\s*=", text, re.I), path.name
            for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.S | re.I):
                assert not tag.strip(), f"{path.name}: inline script"
            for tag in re.findall(r"<script\b[^>]*>", text, re.I):
                assert "src=" in tag, f"{path.name}: {tag}"
            assert "http://" not in text, "no CDN"
            assert "https://" not in text, "no CDN"
