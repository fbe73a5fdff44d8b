"""A real ``corral api`` process under a probe flood, and what it tells callers without a token:
status only on the health routes, nothing at all on /metrics and the OpenAPI document, and no
answer for a Host it does not serve."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from corral.adapters.sql.migrate import upgrade
from tests.support.processes import corral_env, corral_process, free_port

ADMIN = "process-admin-token"
SCRAPER = "process-metrics-token"
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
SCRAPER_AUTH = {"Authorization": f"Bearer {SCRAPER}"}


@dataclass(frozen=True)
class Api:
    url: str
    queue: str


@pytest.fixture(scope="module")
def api_process(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One ``corral api`` for the module (start-up is the slow part), on its own queue."""
    queue = f"t{uuid.uuid4().hex[:12]}"
    workdir: Path = tmp_path_factory.mktemp("api")
    database = f"sqlite+aiosqlite:///{workdir / 'corral.db'}"
    asyncio.run(upgrade(database))
    port = free_port()
    env = corral_env(
        redis_url,
        queue,
        database,
        CORRAL_ADMIN_TOKEN=ADMIN,
        CORRAL_METRICS_TOKEN=SCRAPER,
        CORRAL_ALLOWED_HOSTS="127.0.0.1,localhost",
        CORRAL_API_HOST="127.0.0.1",
        CORRAL_API_PORT=str(port),
        LOG_LEVEL="warning",
    )
    url = f"http://127.0.0.1:{port}"
    with corral_process("api", env, log=workdir / "api.log") as proc:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (workdir / "api.log").read_text(errors="replace")
                raise RuntimeError(f"corral api did not start:\n{log[-3000:]}")
            time.sleep(0.1)
        yield Api(url, queue)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"corraltest:{queue}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def http(api_process: Api) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=api_process.url, limits=limits, timeout=30) as c:
        yield c


async def test_a_probe_flood_neither_fails_probes_nor_starves_the_work(
    http: httpx.AsyncClient, api_process: Api
) -> None:
    """50 readiness probes and 50 scrapes (no token) at once with 20 job adds: every probe is
    ready and every add succeeds (the probes have their own few connections and share one
    cached answer)."""
    jobs = f"/api/admin/queues/{api_process.queue}/jobs"
    probes = [http.get("/health/ready") for _ in range(50)]
    scrapes = [http.get("/metrics") for _ in range(50)]
    adds = [http.post(jobs, json={"name": "noop"}, headers=ADMIN_AUTH) for _ in range(20)]
    answers = await asyncio.gather(*probes, *scrapes, *adds)
    ready, added = answers[:50], answers[100:]
    assert [a.status_code for a in ready] == [200] * 50, {a.text for a in ready}
    assert [a.status_code for a in added] == [201] * 20, {a.text for a in added}


async def test_health_without_a_token_is_status_only(http: httpx.AsyncClient) -> None:
    live = await http.get("/health")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await http.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    for secret in ("127.0.0.1", "6379", "corral.db", "workers", "sqlite"):
        assert secret not in ready.text


async def test_health_details_need_the_admin_token(
    http: httpx.AsyncClient, api_process: Api
) -> None:
    ready = await http.get("/health/ready", headers=ADMIN_AUTH)
    assert ready.status_code == 200, ready.text
    details = ready.json()["details"]
    assert details["redis"] == "ok"
    assert details["database"] == "ok"
    assert details["queue"] == api_process.queue
    assert "workersAlive" in details
    for headers in (SCRAPER_AUTH, {"Authorization": "Bearer wrong"}):
        refused = await http.get("/health/ready", headers=headers)
        assert refused.status_code == 401, refused.text
        assert "details" not in refused.text


async def test_metrics_need_a_token(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN}"}):
        refused = await http.get("/metrics", headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert "corral_" not in refused.text
    for headers in (SCRAPER_AUTH, ADMIN_AUTH):
        scraped = await http.get("/metrics", headers=headers)
        assert scraped.status_code == 200, scraped.text
        assert "corral_redis_up 1.0" in scraped.text


async def test_the_openapi_document_needs_the_admin_token(http: httpx.AsyncClient) -> None:
    for headers in ({}, SCRAPER_AUTH, {"Authorization": "Bearer wrong"}):
        refused = await http.get("/api/openapi.json", headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert "paths" not in refused.text
    document = await http.get("/api/openapi.json", headers=ADMIN_AUTH)
    assert document.status_code == 200
    assert "/api/admin/scheduled-jobs" in document.json()["paths"]
    for docs_ui in ("/docs", "/redoc", "/api/docs"):
        assert (await http.get(docs_ui)).status_code in (401, 404)


async def test_a_foreign_host_gets_400_not_a_redirect_to_it(
    http: httpx.AsyncClient, api_process: Api
) -> None:
    """With CORRAL_ALLOWED_HOSTS set, the trailing-slash redirect can only point back at a
    served host."""
    evil = await http.get(
        "/api/admin/scheduled-jobs/", headers={"Host": "evil.example", **ADMIN_AUTH}
    )
    assert evil.status_code == 400, (evil.status_code, evil.headers)
    assert "location" not in evil.headers
    assert evil.json()["error"]["message"].startswith("Host header")
    assert (await http.get("/health", headers={"Host": "evil.example"})).status_code == 400
    own = await http.get("/api/admin/scheduled-jobs/", headers=ADMIN_AUTH)
    assert own.status_code == 307
    assert own.headers["location"].startswith(f"{api_process.url}/api/admin/scheduled-jobs")
