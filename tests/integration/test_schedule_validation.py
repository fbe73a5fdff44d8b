"""Bad schedule fields: the same answer on SQLite and PostgreSQL,
naming the field, with nothing stored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from corral.errors import ScheduleNotFound, ValidationError
from corral.scheduler import TaskScheduler
from corral.settings import CorralSettings, Secret
from tests.integration.sql_conftest import PG_URL, require_postgres

VALID: dict[str, Any] = {
    "name": "Daily backup",
    "handler_name": "record",
    "cron_expression": "0 2 * * *",
    "domain": "ops",
}

BAD_ROWS: list[tuple[str, Any]] = [
    ("name", None),
    ("name", ""),
    ("name", "   "),
    ("name", "x" * 129),
    ("name", 123),
    ("name", "a\u0000b"),
    ("name", "\ud800"),
    ("name", "a\nb"),
    ("name", "invoice\u202efdp.exe"),
    ("name", "\u200bDaily backup"),
    ("name", "\ufeffDaily backup"),
    ("name", "a\u2066b\u2069"),
    ("name", "a\u2028b"),
    ("description", "x" * (64 * 1024 + 1)),
    ("description", "a\u0000b"),
    ("description", 5),
    ("handler_name", "os.system"),
    ("handler_name", "handlers.jobs:func"),
    ("handler_name", "../x"),
    ("handler_name", "__import__"),
    ("handler_name", "unknown_handler"),
    ("handler_name", "h" * 65),
    ("handler_name", ""),
    ("handler_name", None),
    ("cron_expression", ""),
    ("cron_expression", "* * * *"),
    ("cron_expression", "0 0 0 1 1 * 2027"),
    ("cron_expression", "60 * * * * *"),
    ("cron_expression", "* 60 * * * *"),
    ("cron_expression", "* * 24 * * *"),
    ("cron_expression", "0 0 0 0 * *"),
    ("cron_expression", "* * * * 13 *"),
    ("cron_expression", "* * * * * 8"),
    ("cron_expression", "*/0 * * * * *"),
    ("cron_expression", "5-1 * * * * *"),
    ("cron_expression", "0 0 0 30 2 *"),
    ("cron_expression", "@reboot"),
    ("cron_expression", "٠ ٢ * * *"),
    ("cron_expression", "1," * 32 + "1"),
    ("timezone", ""),
    ("timezone", "asia/shanghai"),
    ("timezone", "Asia/Shanghai "),
    ("timezone", "UTC+8"),
    ("timezone", "GMT+8"),
    ("timezone", "Local"),
    ("timezone", "../../etc/passwd"),
    ("timezone", "/etc/localtime"),
    ("timezone", "Asia/../Asia/Shanghai"),
    ("timezone", "A" * 33),
    ("timezone", None),
    ("status", 3),
    ("status", -1),
    ("status", "1"),
    ("status", "sometimes"),
    ("status", ""),
    ("status", "paused "),
    ("status", "PAUSED"),
    ("status", True),
    ("status", 1.0),
    ("status", None),
    ("payload", []),
    ("payload", "x"),
    ("payload", 42),
    ("payload", {"x": float("nan")}),
    ("payload", {"x": float("inf")}),
    ("payload", {"x": "a\u0000"}),
    ("payload", {"x": "\udc00"}),
    ("payload", {"x": "y" * (512 * 1024)}),
    ("retry_attempts", -1),
    ("retry_attempts", 1.5),
    ("retry_attempts", "3"),
    ("retry_attempts", 10**9),
    ("retry_delay", -1),
    ("retry_delay", 3_000_000_000),
    ("retry_delay", 1.5),
    ("timeout", 0),
    ("timeout", -5),
    ("timeout", 3_000_000_000),
    ("timeout", "100"),
    ("priority", 0),
    ("priority", 21),
    ("priority", "HIGH"),
    ("priority", 1.5),
    ("domain", None),
    ("domain", ""),
    ("domain", "d" * 65),
    ("domain", "o\u202eps"),
    ("domain", "ops\u200d"),
    ("handler_name", "rec\u202eord"),
    ("handler_name", "\ufeffrecord"),
    ("handlerName", "record"),
    ("cronExpresion", "* * * * *"),
    ("id", "x"),
    ("created_at", "x"),
]


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture(params=["sqlite", "postgresql"])
async def admin(
    request: pytest.FixtureRequest, settings: CorralSettings, tmp_path: Path
) -> AsyncIterator[TaskScheduler]:
    if request.param == "sqlite":
        scheduler = await _open(settings, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}")
        try:
            yield scheduler
        finally:
            await scheduler.close()
        return
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    root = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with root.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        scheduler = await _open(settings, url)
        try:
            yield scheduler
        finally:
            await scheduler.close()
    finally:
        async with root.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await root.dispose()


async def _open(settings: CorralSettings, url: str) -> TaskScheduler:
    scheduler = TaskScheduler(
        settings.replace(**{"database_url": Secret(url)}),
        handlers=["tests.support.it_handlers"],
    )
    await scheduler._rt.migrate()
    return scheduler


@pytest.mark.parametrize(("field", "value"), BAD_ROWS, ids=[f"{f}={v!r}"[:60] for f, v in BAD_ROWS])
async def test_bad_field_is_rejected_naming_it_and_nothing_is_stored(
    admin: TaskScheduler, field: str, value: Any
) -> None:
    fields = {**VALID, field: value}
    with pytest.raises(ValidationError) as err:
        await admin.create(**fields)
    assert err.value.path.split(".")[0].split("[")[0] == field
    assert (await admin.list())[1] == 0


@pytest.mark.parametrize(
    ("field", "value", "char"),
    [
        ("name", "invoice\u202efdp.exe", "U+202E"),
        ("name", "\u200bDaily", "U+200B"),
        ("domain", "\ufeffops", "U+FEFF"),
        ("domain", "o\u2067ps", "U+2067"),
    ],
)
async def test_invisible_characters_in_a_name_are_named(
    admin: TaskScheduler, field: str, value: str, char: str
) -> None:
    with pytest.raises(ValidationError) as err:
        await admin.create(**{**VALID, field: value})
    assert err.value.path == field
    assert str(err.value) == (
        f"{field}: must not contain invisible or bidirectional control characters ({char})"
    )
    assert (await admin.list())[1] == 0


async def test_names_in_any_script_are_accepted(admin: TaskScheduler) -> None:
    job = await admin.create(**{**VALID, "name": "每日备份 نسخة", "domain": "운영"})
    assert (job.name, job.domain) == ("每日备份 نسخة", "운영")


async def test_deep_payload_is_rejected_without_recursion_error(admin: TaskScheduler) -> None:
    with pytest.raises(ValidationError) as err:
        await admin.create(**VALID, payload=_deep(10_000))
    assert err.value.path.startswith("payload")
    assert (await admin.list())[1] == 0


async def test_valid_edge_values_are_accepted(admin: TaskScheduler) -> None:
    job = await admin.create(
        **{
            **VALID,
            "name": "<b>html is data</b>",
            "timezone": "Etc/GMT-8",
            "retry_attempts": 0,
            "cron_expression": "0 0 0 29 2 *",
        }
    )
    assert job.timezone == "Etc/GMT-8"
    assert job.retry_attempts == 0
    assert (await admin.get(job.id)).name == "<b>html is data</b>"
    longest = await admin.create(**{**VALID, "timezone": "America/Argentina/ComodRivadavia"})
    assert longest.timezone == "America/Argentina/ComodRivadavia"
    defaults = await admin.create(**VALID)
    assert defaults.timezone == "Asia/Shanghai"
    assert defaults.status == 1
    assert (defaults.retry_attempts, defaults.retry_delay, defaults.timeout, defaults.priority) == (
        3,
        5000,
        30000,
        5,
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [("paused", 2), ("disabled", 0), ("enabled", 1), (2, 2), (0, 0)],
)
async def test_status_by_name_or_number(admin: TaskScheduler, given: object, stored: int) -> None:
    job = await admin.create(**{**VALID, "status": given})
    assert job.status == stored
    other = 1 if stored != 1 else 2
    assert (await admin.update(job.id, status=other)).status == other
    assert (await admin.update(job.id, status=given)).status == stored


async def test_a_bad_status_lists_the_choices(admin: TaskScheduler) -> None:
    with pytest.raises(ValidationError) as err:
        await admin.create(**{**VALID, "status": "sometimes"})
    assert err.value.path == "status"
    for choice in ("'disabled' (0)", "'enabled' (1)", "'paused' (2)"):
        assert choice in err.value.problem


async def test_patch_rules(admin: TaskScheduler) -> None:
    job = await admin.create(**VALID)
    with pytest.raises(ValidationError) as err:
        await admin.update(job.id)
    assert err.value.path == "body"
    with pytest.raises(ValidationError) as err:
        await admin.update(job.id, status=None)
    assert err.value.path == "status"
    await admin.delete(job.id)
    with pytest.raises(ScheduleNotFound):
        await admin.update(job.id, status=0)
    with pytest.raises(ScheduleNotFound):
        await admin.get(uuid.uuid4())
