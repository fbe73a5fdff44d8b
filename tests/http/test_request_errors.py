"""Transport-level bad input: a missing body, a body that is not JSON by its Content-Type, and a
body over the size cap, each answered with the project's JSON error body and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from corral.http.app import create_app
from corral.settings import CorralSettings
from tests.http.conftest import AUTH, admin_settings


def _json_routes(queue_name: str) -> list[str]:
    return [
        "/api/admin/scheduled-jobs",
        f"/api/admin/queues/{queue_name}/jobs",
        f"/api/admin/queues/{queue_name}/clean",
        "/api/admin/cron/preview",
    ]


async def test_an_empty_body_is_body_required(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any
) -> None:
    before = queue_keys()
    for path in _json_routes(queue_name):
        for headers in ({}, {"content-type": "application/json"}):
            answer = await api.post(path, content=b"", headers=headers)
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json() == {"error": {"field": "body", "message": "body: required"}}
    assert queue_keys() == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "text/json"],
)
async def test_a_body_that_is_not_json_by_its_content_type_is_415(
    api: httpx.AsyncClient, queue_name: str, queue_keys: Any, content_type: str
) -> None:
    before = queue_keys()
    for path in _json_routes(queue_name):
        for body in (b'{"name": "noop"}', b""):
            answer = await api.post(path, content=body, headers={"content-type": content_type})
            assert answer.status_code == 415, (path, answer.text)
            assert answer.headers["content-type"].startswith("application/json")
            error = answer.json()["error"]
            assert error["field"] is None
            assert "application/json" in error["message"]
            assert content_type in error["message"]
    assert queue_keys() == before
    assert (await api.get("/api/admin/scheduled-jobs")).json()["total"] == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/merge-patch+json"])
async def test_json_content_types_are_accepted(
    api: httpx.AsyncClient, queue_name: str, content_type: str
) -> None:
    answer = await api.post(
        f"/api/admin/queues/{queue_name}/jobs",
        content=b'{"name": "noop"}',
        headers={"content-type": content_type},
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture
async def small_api(settings: CorralSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 4 KiB request-body cap."""
    app = create_app(admin_settings(settings, max_body_bytes=4096))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as c:
            yield c
    finally:
        await app.state.manager.graceful_shutdown(0)
        await app.state.scheduler.close()


def _job_body(size: int) -> bytes:
    head = b'{"name": "noop", "data": {"x": "'
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_a_declared_body_over_the_cap_is_413_with_its_size_and_the_limit(
    small_api: httpx.AsyncClient, queue_name: str, queue_keys: Any
) -> None:
    before = queue_keys()
    path = f"/api/admin/queues/{queue_name}/jobs"
    headers = {"content-type": "application/json"}
    answer = await small_api.post(path, content=_job_body(5000), headers=headers)
    assert answer.status_code == 413, answer.text
    assert answer.json() == {
        "error": {"field": None, "message": "request body is 5000 bytes; the limit is 4096 bytes"}
    }
    assert queue_keys() == before
    assert (await small_api.post(path, content=_job_body(4096), headers=headers)).is_success


async def test_a_streamed_body_over_the_cap_is_413_not_a_parse_error(
    small_api: httpx.AsyncClient, queue_name: str, queue_keys: Any
) -> None:
    before = queue_keys()
    body = _job_body(12_000)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 3000):
            yield body[start : start + 3000]

    answer = await small_api.post(
        f"/api/admin/queues/{queue_name}/jobs",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json() == {
        "error": {
            "field": None,
            "message": "request body is at least 6000 bytes; the limit is 4096 bytes",
        }
    }
    assert queue_keys() == before
