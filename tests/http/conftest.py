"""The app in-process behind httpx (real Redis, SQLite per test), with an admin token set.

ASGITransport does not run the lifespan, so the fixture closes the app's manager and scheduler
itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from corral.http.app import create_app
from corral.settings import CorralSettings, Secret

ADMIN_TOKEN = "http-tests-admin-token"  # noqa: S105 - a test value
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def admin_settings(settings: CorralSettings, **update: Any) -> CorralSettings:
    return settings.replace(**{"admin_token": Secret(ADMIN_TOKEN), **update})


@pytest.fixture
async def api_app(settings: CorralSettings) -> AsyncIterator[Any]:
    app = create_app(admin_settings(settings))
    await app.state.scheduler._rt.migrate()
    yield app
    await app.state.manager.graceful_shutdown(0)
    await app.state.scheduler.close()


@pytest.fixture
async def api(api_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends the admin token."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as c:
        yield c


@pytest.fixture
def queue_keys(redis_url: str, queue_name: str) -> Any:
    """Snapshot of the queue's Redis keys and their types (to prove nothing changed)."""

    def snapshot() -> dict[str, tuple[str, int]]:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            found: dict[str, tuple[str, int]] = {}
            for key in client.scan_iter(match=f"corraltest:{queue_name}:*", count=1000):
                kind = str(client.type(key))
                size: Any = {"hash": client.hlen, "list": client.llen, "zset": client.zcard}
                found[key] = (kind, int(size[kind](key)) if kind in size else 0)
            return found
        finally:
            client.close()

    return snapshot
