"""Shared fixtures: a real Redis (never a fake), one unique queue per test, cleaned up after."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

REDIS_URL = os.environ.get("CORRAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except (OSError, redis.RedisError):
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis. Down -> skip locally, FAIL in CI (CI=true)."""
    if not _redis_up():
        message = f"Redis not reachable at {REDIS_URL}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: tests that need Redis must not be skipped)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def queue_name(redis_url: str) -> Iterator[str]:
    """A unique queue under the test prefix; its keys are deleted afterwards (never FLUSHDB)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"corraltest:{name}*", count=1000))
        keys += list(client.scan_iter(match=f"ledger:{name}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh SQLite file per test (the PostgreSQL legs live in the SQL store tests)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'corral.db'}"


@pytest.fixture
def settings(redis_url: str, queue_name: str, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from corral.settings import load_settings

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    return load_settings(
        queue=queue_name,
        prefix="corraltest",
        handlers="tests.support.it_handlers",
        lock_duration_ms=2000,
        stalled_interval_ms=500,
    )


@pytest.fixture
async def qm(settings) -> AsyncIterator:  # type: ignore[no-untyped-def]
    from corral import JobQueueManager

    manager = JobQueueManager(settings)
    await manager._rt.migrate()  # before any worker process starts (they migrate concurrently)
    yield manager
    await manager.graceful_shutdown(2000)


@pytest.fixture
def ledger(queue_name: str, redis_url: str):  # type: ignore[no-untyped-def]
    """Read the ledger the test handlers write: a list of dicts."""
    from tests.support.ledger import read_ledger

    key = f"ledger:{queue_name}"

    class Ledger:
        name = key

        def entries(self) -> list[dict[str, object]]:
            return read_ledger(redis_url, key)

    return Ledger()
