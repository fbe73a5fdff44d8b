"""docs/reference-http.md says which process shows ``corral_execution_log_backlog``: an app
embedded with ``create_app(manager=qm)`` whose ``qm`` runs a worker with the execution log, and
not the app ``corral api`` builds (no manager given, no writer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from corral.http.app import create_app
from corral.manager import JobQueueManager
from corral.settings import CorralSettings, Secret

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference-http.md"
TOKEN = "docs-metrics-token"  # noqa: S105 - a test value
BACKLOG = "corral_execution_log_backlog"


async def _metrics(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_only_an_app_sharing_a_workers_manager_shows_the_backlog(
    settings: CorralSettings,
) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert f"`{BACKLOG}`" in text
    assert "`create_app(settings, manager=qm)`" in text
    assert "`corral api` has no\nwriter and never shows it" in text
    settings = settings.replace(**{"admin_token": Secret(TOKEN), "metrics_token": Secret(TOKEN)})
    qm = JobQueueManager(settings)
    embedded = create_app(settings, manager=qm)
    alone = create_app(settings)  # what `corral api` serves
    try:
        await qm.start_worker()  # the execution log is on by default
        assert BACKLOG in await _metrics(embedded)
        assert BACKLOG not in await _metrics(alone)
    finally:
        await qm.graceful_shutdown(0)
        await alone.state.manager.graceful_shutdown(0)
        for app in (embedded, alone):
            await app.state.scheduler.close()
