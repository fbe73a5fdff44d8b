"""Several processes opening one new SQLite file at once (a worker and a scheduler started
together on a fresh ``DATABASE_URL``): each connection switches the file to WAL, and SQLite
takes that switch's lock without waiting on the busy timeout, so one of them could fail with
"database is locked" at start-up. Each path that opens SQLite connections (the engine, the
worker's driver log) must ride that out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from corral.adapters.sql.driver_log import DriverExecutionLog
from corral.adapters.sql.engine import make_engine

ROUNDS = 100  # before the fix about 1 connection in 40 failed: 300 here
OPENERS = 3


async def _engine_opens(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def _driver_opens(url: str) -> None:
    log = DriverExecutionLog(url)
    try:
        await log.prepare()
    finally:
        await log.aclose()


async def test_connections_racing_to_open_a_new_file_all_succeed(tmp_path: Path) -> None:
    failures: list[BaseException] = []
    for round_ in range(ROUNDS):
        url = f"sqlite+aiosqlite:///{tmp_path / f'fresh-{round_}.db'}"
        openers = [_engine_opens(url) if i % 2 else _driver_opens(url) for i in range(OPENERS)]
        results = await asyncio.gather(*openers, return_exceptions=True)
        failures += [r for r in results if isinstance(r, BaseException)]
    assert failures == []
