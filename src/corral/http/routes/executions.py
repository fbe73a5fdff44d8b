"""``/api/admin/executions``: the execution log, filtered, sorted and paged.

Every parameter is checked before the query is built, and a bad one is a 422 naming it:
``status`` is a JobExecutionStatus, ``sort`` and ``order`` are fixed sets, ``limit`` is 1-500,
``offset`` >= 0, ``from`` / ``to`` are ISO-8601 (a time without an offset is UTC) with
``from`` <= ``to``; they bound the row's last update (``from`` <= t < ``to``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from corral.core.jobs import JobExecutionStatus
from corral.core.queries import ExecutionQuery, ExecutionSort
from corral.errors import ValidationError
from corral.http.deps import Limit, Offset, Order, Scheduler
from corral.http.names import to_snake
from corral.http.schemas import ExecutionOut, Page

router = APIRouter(tags=["executions"])
#: An ExecutionSort, in camelCase.
SortField = Literal["startedAt", "finishedAt", "updatedAt", "durationMs"]


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError(
            name, "must be an ISO-8601 date or time, e.g. 2025-01-31T08:00:00Z"
        ) from None


@router.get("/executions")
async def list_executions(
    ts: Scheduler,
    status: JobExecutionStatus | None = None,
    schedule_id: Annotated[UUID | None, Query(alias="scheduleId")] = None,
    handler_name: Annotated[str | None, Query(alias="handlerName", max_length=64)] = None,
    since: Annotated[
        str | None, Query(alias="from", max_length=64, description="ISO-8601; inclusive")
    ] = None,
    until: Annotated[
        str | None, Query(alias="to", max_length=64, description="ISO-8601; exclusive")
    ] = None,
    sort: SortField = "updatedAt",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ExecutionOut]:
    if handler_name is not None and not handler_name.isprintable():
        raise ValidationError("handlerName", "must not contain control characters")
    start, end = _instant(since, "from"), _instant(until, "to")
    if start is not None and end is not None and start > end:
        raise ValidationError("from", "must not be later than 'to'")
    rows, total = await ts.executions(
        ExecutionQuery(
            status=status,
            job_id=schedule_id,
            handler_name=handler_name,
            since=start,
            until=end,
            sort=ExecutionSort(to_snake(sort)),
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
    )
    return Page[ExecutionOut](
        items=[ExecutionOut.of(r) for r in rows], total=total, limit=limit, offset=offset
    )
