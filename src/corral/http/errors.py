"""One table from Corral errors to HTTP answers. Every error body is JSON:
``{"error": {"field": "cronExpression" | null, "message": "..."}}``; no stack traces, no URLs
with passwords, no driver messages."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from corral.core.redaction import redact_text
from corral.errors import (
    BrokerOutOfMemory,
    BrokerPoolExhausted,
    BrokerUnavailable,
    ConfigurationError,
    CorralError,
    JobNotFound,
    ScheduleNotFound,
    StoreUnavailable,
    ValidationError,
)
from corral.http.names import camel_path

logger = logging.getLogger(__name__)

#: Corral error type -> HTTP status. The first matching class wins.
STATUS: Final[list[tuple[type[CorralError], int]]] = [
    (ValidationError, 422),
    (JobNotFound, 404),
    (ScheduleNotFound, 404),
    (BrokerUnavailable, 503),
    (StoreUnavailable, 503),
    (ConfigurationError, 500),
]


#: Python names of path parameters -> the names the API documents.
PATH_NAMES: Final = {"job_id": "id", "schedule_id": "id", "queue_name": "name"}


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"field": field, "message": message}}


def _log(level: int, template: str, request: Request, error: str, event: str) -> None:
    """``template`` filled with the request's method and path and the redacted ``error``."""
    path = request.url.path
    logger.log(level, template, request.method, path, redact_text(error), extra={"event": event})


async def _corral_error(request: Request, exc: CorralError) -> JSONResponse:
    status = next((status for kind, status in STATUS if isinstance(exc, kind)), 500)
    if isinstance(exc, ValidationError):
        field = camel_path(exc.path)
        return JSONResponse(error_body(f"{field}: {exc.problem}", field), status_code=status)
    if status < 500:
        return JSONResponse(error_body(redact_text(str(exc))), status_code=status)
    _log(logging.WARNING, "%s %s failed: %s", request, str(exc), "http.error")
    if isinstance(exc, BrokerPoolExhausted):
        message = "service busy: every Redis connection stayed in use; retry shortly"
    elif isinstance(exc, BrokerOutOfMemory):
        message = "service unavailable: Redis is out of memory"
    elif status == 503:
        broken = "Redis" if isinstance(exc, BrokerUnavailable) else "database"
        message = f"service unavailable: {broken} is not reachable"
    else:
        message = "internal error"
    return JSONResponse(error_body(message), status_code=status)


def _is_json(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type, parameters ignored (as FastAPI decides)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _not_json(request: Request, errors: list[dict[str, Any]]) -> JSONResponse | None:
    """415 when the body was refused because its declared Content-Type is not JSON: FastAPI
    then hands the raw bytes to validation, whose "not an object" would name no field."""
    content_type = request.headers.get("content-type")
    if content_type is None or _is_json(content_type):
        return None
    if not any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors):
        return None
    shown = content_type[:100]
    return JSONResponse(
        error_body(f"Content-Type must be application/json, got {shown!r}"), status_code=415
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    unsupported = _not_json(request, list(exc.errors()))
    if unsupported is not None:
        return unsupported
    # An unknown field explains the rest ("handler_name" sent instead of "handlerName"): first.
    errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    where = first.get("loc", ())
    if tuple(where) == ("body",) and first.get("type") == "missing":
        return JSONResponse(error_body("body: required", "body"), status_code=422)
    loc = [str(part) for part in where if part not in ("body", "query", "path")]
    if where and where[0] == "path":
        loc = [PATH_NAMES.get(loc[0], loc[0])] if loc else loc
    field = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return JSONResponse(error_body("request body is not valid JSON"), status_code=400)
    if kind == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif kind == "missing":
        message = f"{field}: is required"
    else:
        message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg"))
    return JSONResponse(error_body(message, field), status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log(logging.ERROR, "unhandled error on %s %s: %s", request, repr(exc), "http.unhandled")
    return JSONResponse(error_body("internal error"), status_code=500)


def install(app: FastAPI) -> None:
    app.exception_handler(CorralError)(_corral_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(Exception)(_unexpected)
