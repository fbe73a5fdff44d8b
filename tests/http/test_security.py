"""Authentication on every route, no secrets in any answer, production refuses to start."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from corral.errors import ConfigurationError
from corral.http.app import create_app
from corral.settings import CorralSettings, Secret

TOKEN = "s3cret-admin-token"  # noqa: S105 - a test value
OPEN_PATHS = {"/health", "/health/ready"}  # status only without the token
#: Routes outside the published schema that need the token as well.
UNPUBLISHED = [("GET", "/api/openapi.json")]
LONG_TOKEN = "l0ng-admin-token-for-production-0123456789"  # noqa: S105 - a test value
SAMPLE = {"id": "00000000-0000-4000-8000-000000000000", "name": "corral", "job_id": "x1"}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x1"), path)


@pytest.fixture
async def app_client(settings: CorralSettings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    # Every route gets a wrong token from one address here; the lockout that would answer 429
    # after a few has its own tests (tests/http/test_hardening_processes.py).
    update = {"admin_token": Secret(TOKEN), "auth_max_failures": 10_000}
    app = create_app(settings.replace(**update))
    await app.state.scheduler._rt.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield app, c
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


def _admin_routes(app: Any) -> list[tuple[str, str]]:
    """Every operation in the app's OpenAPI document (the route table as published), and the
    document itself."""
    routes = list(UNPUBLISHED)
    for path, operations in app.openapi()["paths"].items():
        if path not in OPEN_PATHS:
            routes += [(method.upper(), path) for method in sorted(operations)]
    return routes


async def test_every_admin_route_requires_the_token(
    app_client: tuple[Any, httpx.AsyncClient],
) -> None:
    app, client = app_client
    routes = _admin_routes(app)
    assert len(routes) >= 7
    for method, path in routes:
        assert path.startswith("/api/") or path == "/metrics", f"{method} {path} is not admin"
        url = _concrete(path)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            answer = await client.request(method, url, headers=headers, json={})
            assert answer.status_code == 401, (
                f"{method} {path} with {headers}: {answer.status_code}"
            )
            assert answer.headers["content-type"].startswith("application/json")
            assert "error" in answer.json()
        good = await client.request(
            method, url, headers={"Authorization": f"Bearer {TOKEN}"}, json={}
        )
        assert good.status_code != 401, f"{method} {path} rejects the right token"


async def test_no_token_configured_fails_closed(settings: CorralSettings) -> None:
    app = create_app(settings)  # no CORRAL_ADMIN_TOKEN in development
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answer = await c.get("/api/admin/scheduled-jobs", headers={"Authorization": "Bearer "})
        assert answer.status_code == 401
        answer = await c.get("/api/admin/scheduled-jobs", headers={"Authorization": "Bearer x"})
        assert answer.status_code == 401
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


def test_production_without_a_token_refuses_to_start(settings: CorralSettings) -> None:
    with pytest.raises(ConfigurationError, match="CORRAL_ADMIN_TOKEN"):
        create_app(settings.replace(**{"environment": "production"}))


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
@pytest.mark.parametrize(
    "update",
    [
        {"admin_token": Secret("CANARY-short")},
        {"admin_token": Secret(" " * 40)},
        {"admin_token": Secret(LONG_TOKEN), "metrics_token": Secret("CANARY-short")},
    ],
)
def test_weak_token_outside_development_refuses_to_start(
    settings: CorralSettings, environment: str, update: dict[str, Any]
) -> None:
    """Settings built in code (not read from the environment) get the same check."""
    with pytest.raises(ConfigurationError, match="at least 32 characters") as info:
        create_app(settings.replace(**{"environment": environment, **update}))
    assert "CANARY" not in str(info.value)


async def test_security_headers_and_json(app_client: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = app_client
    answer = await client.get(
        "/api/admin/scheduled-jobs", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["content-type"].startswith("application/json")


async def test_secrets_never_appear_in_answers_or_logs(
    settings: CorralSettings, caplog: pytest.LogCaptureFixture
) -> None:
    bad = settings.replace(
        **{
            "redis_url": Secret("redis://:CANARY-7f3a@127.0.0.1:1/0"),
            "database_url": Secret("postgresql+asyncpg://u:CANARY-9b1c@127.0.0.1:1/x"),
            "admin_token": Secret(TOKEN),
            "redis_connect_timeout_s": 1.0,
        }
    )
    caplog.set_level(logging.DEBUG)
    app = create_app(bad)
    seen: list[str] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for method, path, body in [
            ("GET", "/api/admin/scheduled-jobs", None),
            (
                "POST",
                "/api/admin/scheduled-jobs",
                {"name": "n", "handlerName": "h", "cronExpression": "* * * * *", "domain": "d"},
            ),
            ("GET", f"/api/admin/scheduled-jobs/{SAMPLE['id']}", None),
            ("POST", "/api/admin/cron/preview", {"cronExpression": "* * * * *"}),
            ("GET", "/health", None),
            ("GET", "/health/ready", None),
            ("GET", "/metrics", None),
        ]:
            answer = await c.request(method, path, json=body, headers=headers)
            seen.append(f"{answer.status_code} {answer.text} {dict(answer.headers)}")
            assert answer.status_code < 500 or answer.status_code == 503 or path == "/metrics", (
                f"{method} {path}: {answer.status_code} {answer.text}"
            )
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()
    everything = "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    everything += "\n".join(str(r.__dict__) for r in caplog.records)
    assert "CANARY" not in everything


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.com", 200),
        ("API.example.com:8443", 200),
        ("api.example.com.", 200),
        ("x.corral.test", 200),
        ("corral.test", 400),  # *.corral.test is subdomains only
        ("[::1]:8000", 200),
        ("evil.example", 400),
        ("api.example.com.evil.example", 400),
        ("", 400),
    ],
)
async def test_allowed_hosts(settings: CorralSettings, host: str, status: int) -> None:
    allowed = "api.example.com,*.corral.test,[::1]"
    app = create_app(settings.replace(**{"allowed_hosts": allowed}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answer = await c.get("/health", headers={"Host": host})
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["error"]["message"].startswith("Host header")
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()
