"""The dashboard's page, static files and session endpoints (none of them in the OpenAPI).

* ``GET /`` -> ``static/index.html``; ``/dashboard/static/...`` -> the CSS and JS modules.
* ``POST /dashboard/login`` ``{"token": ...}`` -> sets the session cookie, ``{"csrfToken"}``.
* ``GET /dashboard/session`` -> ``{"csrfToken"}`` for a live session, else 401.
* ``POST /dashboard/logout`` -> ends the session (needs the CSRF header) and clears the cookie.
* ``GET /dashboard/config`` -> ``{"queue", "defaultTimezone"}``: what the page needs to know,
  nothing secret (the schedule form starts in the zone the API gives a schedule without one).

Every GET here is read-only; the admin data itself comes from ``/api/admin/...``.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.exceptions import HTTPException

from corral.core.schedules import DEFAULT_TIMEZONE
from corral.http.auth import (
    UNCONFIGURED_MESSAGE,
    record_failure,
    refuse_if_locked_out,
    require_admin,
)
from corral.http.dashboard import session as sessions

STATIC: Final = Path(__file__).resolve().parent / "static"
NO_STORE: Final = {"Cache-Control": "no-store"}

router = APIRouter(include_in_schema=False)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    token: StrictStr


def _cookie(request: Request) -> dict[str, Any]:
    """The session cookie's attributes, the same when it is set and when it is cleared."""
    secure = sessions.cookie_secure(request)
    return {"path": "/", "httponly": True, "samesite": "strict", "secure": secure}


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=NO_STORE)


@router.post("/dashboard/login")
async def login(body: LoginIn, request: Request) -> JSONResponse:
    sessions.check_origin(request)
    refuse_if_locked_out(request)
    expected: str | None = request.app.state.admin_token
    if not expected:  # no token could pass: say what to fix (no guess is counted either)
        raise HTTPException(401, UNCONFIGURED_MESSAGE)
    presented = body.token.strip()
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        record_failure(request, "invalid dashboard login")
        raise HTTPException(401, "invalid token")
    store = sessions.store_of(request)
    store.delete(request.cookies.get(sessions.COOKIE))  # no session fixation
    session_id, session = store.create()
    answer = JSONResponse({"csrfToken": session.csrf_token}, headers=NO_STORE)
    answer.set_cookie(sessions.COOKIE, session_id, max_age=int(store.ttl_s), **_cookie(request))
    return answer


@router.get("/dashboard/session")
async def current_session(request: Request) -> JSONResponse:
    session = sessions.current(request)
    if session is None:
        raise HTTPException(401, "not logged in")
    return JSONResponse({"csrfToken": session.csrf_token}, headers=NO_STORE)


@router.post("/dashboard/logout", status_code=204)
async def logout(request: Request) -> Response:
    if sessions.current(request) is not None:
        sessions.authenticate(request)  # a live session is ended only with its CSRF token
        sessions.store_of(request).delete(request.cookies.get(sessions.COOKIE))
    answer = Response(status_code=204, headers=NO_STORE)
    answer.delete_cookie(sessions.COOKIE, **_cookie(request))
    return answer


@router.get("/dashboard/config", dependencies=[Depends(require_admin)])
async def config(request: Request) -> JSONResponse:
    return JSONResponse(
        {"queue": request.app.state.settings.queue, "defaultTimezone": DEFAULT_TIMEZONE},
        headers=NO_STORE,
    )


def install(app: FastAPI) -> None:
    """Mount the dashboard on ``app``: the page, its static files and the session routes."""
    app.state.dashboard_sessions = sessions.SessionStore()
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
