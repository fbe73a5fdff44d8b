"""``POST /api/admin/cron/preview``: the next fire times of an expression, or the field error."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from corral.http.deps import scheduler as get_scheduler
from corral.http.schemas import CronPreviewIn, CronPreviewOut
from corral.scheduler import TaskScheduler

router = APIRouter(tags=["cron"])


@router.post("/cron/preview", response_model=CronPreviewOut, response_model_by_alias=True)
async def preview(
    body: CronPreviewIn, ts: Annotated[TaskScheduler, Depends(get_scheduler)]
) -> CronPreviewOut:
    fires = ts.preview(body.cron_expression, body.timezone, body.count)
    return CronPreviewOut(
        cron_expression=body.cron_expression, timezone=body.timezone, next_fires=fires
    )
