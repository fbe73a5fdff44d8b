"""``POST /api/admin/cron/preview``: the next fire times of an expression, or the field error."""

from __future__ import annotations

from fastapi import APIRouter

from corral.http.deps import Scheduler
from corral.http.schemas import CronPreviewIn, CronPreviewOut

router = APIRouter(tags=["cron"])


@router.post("/cron/preview")
async def preview(body: CronPreviewIn, ts: Scheduler) -> CronPreviewOut:
    fires = ts.preview(body.cron_expression, body.timezone, body.count)
    return CronPreviewOut(
        cron_expression=body.cron_expression, timezone=body.timezone, next_fires=fires
    )
