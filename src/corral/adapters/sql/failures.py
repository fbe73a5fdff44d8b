"""Database errors as :class:`~corral.errors.StoreUnavailable`, for both ways Corral talks to
a database (SQLAlchemy, ``engine.unavailable``; the drivers themselves, :func:`driver_failure`).

The message names where the database is and the driver's one-line reason run through
``redact_text`` (and with the URL's password removed verbatim): never the DSN, never the SQL's
bound values. Callers raise it ``from None``, since the original may quote either.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from corral.core.redaction import redact_text
from corral.errors import StoreUnavailable

_MAX_DETAIL: Final = 300
# SQLSTATE classes of a statement the server refused (not an outage): data exception,
# integrity constraint violation, syntax error or access rule violation.
_REFUSED_CLASSES: Final = ("22", "23", "42")


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def store_unavailable(
    where: str, password: str | None, text: str, kind: str, *, refused: bool
) -> StoreUnavailable:
    """The StoreUnavailable for a failure ``kind`` (a class name) whose reason is ``text``."""
    text = redact_text(text)
    if password:
        text = text.replace(password, "***")
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "..."
    detail = f"{kind}: {text}" if text else kind
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        what = "database schema not migrated (run `corral db upgrade`)"
    elif refused:
        what = "database refused the statement"
    else:
        what = "database unavailable"
    return StoreUnavailable(f"{what} ({where}): {detail}")


def driver_failure(where: str, password: str | None, exc: BaseException) -> StoreUnavailable:
    """A StoreUnavailable for an error aiosqlite, sqlite3 or asyncpg raised on the database
    ``where`` (``dsn.describe``) reached with ``password``."""
    sqlstate = getattr(exc, "sqlstate", None)
    refused = isinstance(
        exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.ProgrammingError
    ) or (isinstance(sqlstate, str) and sqlstate[:2] in _REFUSED_CLASSES)
    return store_unavailable(where, password, first_line(exc), type(exc).__name__, refused=refused)
