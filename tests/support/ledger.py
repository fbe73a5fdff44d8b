"""Read the ledger the test handlers write (``tests/support/it_handlers/tasks.py``)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import redis


def read_ledger(redis_url: str, key: str) -> list[dict[str, Any]]:
    """Every row, in the order the handlers pushed them."""
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(row) for row in client.lrange(key, 0, -1)]
    finally:
        client.close()


def starts_by_job(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The "start" rows of each job, oldest first."""
    starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["event"] == "start":
            starts[row["job_id"]].append(row)
    for rows_of_job in starts.values():
        rows_of_job.sort(key=lambda r: r["t"])
    return dict(starts)
