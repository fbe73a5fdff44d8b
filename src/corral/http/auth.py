"""Bearer-token authentication for ``/api/admin`` (and optionally ``/metrics``).

The token comes from ``CORRAL_ADMIN_TOKEN``; compared in constant time. Without a token the
admin API refuses every request (fail closed) — and in production the app refuses to start.
A request without a bearer token may instead carry a dashboard session cookie (see
``corral.http.dashboard.session``: mutating requests then need the CSRF header, same origin).
"""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.exceptions import HTTPException

from corral.http.dashboard import session as dashboard_session

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: The 401 of a server started without a token: no token can pass, so say what to fix.
UNCONFIGURED_MESSAGE = (
    "this server has no admin token configured: set CORRAL_ADMIN_TOKEN and restart it"
)


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def check_token(request: Request, expected: str | None) -> None:
    if not expected:
        raise HTTPException(401, UNCONFIGURED_MESSAGE, headers=_CHALLENGE)
    token = _presented(request)
    if token is None:
        raise HTTPException(
            401, "authentication required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "invalid token", headers=_CHALLENGE)


async def require_admin(request: Request) -> None:
    """FastAPI dependency for every admin route: the bearer token, or a dashboard session."""
    if _presented(request) is None and dashboard_session.authenticate(request):
        return
    check_token(request, request.app.state.admin_token)


async def require_metrics(request: Request) -> None:
    """``/metrics`` is open unless CORRAL_METRICS_TOKEN is set."""
    token = request.app.state.metrics_token
    if token:
        check_token(request, token)
