"""Bearer-token authentication for ``/api/admin``, the OpenAPI document, ``/metrics`` and the
details of ``/health/ready``.

The token comes from ``CORRAL_ADMIN_TOKEN``; compared in constant time. Without a token the
admin API refuses every request (fail closed) — and in production the app refuses to start.
A request without a bearer token may instead carry a dashboard session cookie (see
``corral.http.dashboard.session``: mutating requests then need the CSRF header, same origin).
``/metrics`` takes ``CORRAL_METRICS_TOKEN`` (a scraper's credential that opens nothing else) or
the admin token; with neither set it refuses every scrape.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.exceptions import HTTPException

from corral.http.dashboard import session as dashboard_session

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def check_token(request: Request, *expected: str | None) -> None:
    """Pass if the bearer token equals one of ``expected`` (unset ones never match)."""
    token = _presented(request)
    if token is None:
        raise HTTPException(
            401, "authentication required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE
        )
    # Every candidate is compared, so the time taken does not tell which one nearly matched.
    matches = [
        bool(candidate) and hmac.compare_digest(token.encode(), str(candidate).encode())
        for candidate in expected
    ]
    if not any(matches):
        raise HTTPException(401, "invalid token", headers=_CHALLENGE)


async def require_admin(request: Request) -> None:
    """FastAPI dependency for every admin route: the bearer token, or a dashboard session."""
    if _presented(request) is None and dashboard_session.authenticate(request):
        return
    check_token(request, request.app.state.admin_token)


async def is_admin(request: Request) -> bool:
    """For routes open to anyone that show more to the admin: False without credentials, True
    with the admin token or a dashboard session, 401 for a bearer token that is not the admin's
    (a caller who sends one expects the details; silence would hide the mistake)."""
    if _presented(request) is None:
        return dashboard_session.authenticate(request)
    check_token(request, request.app.state.admin_token)
    return True


async def require_metrics(request: Request) -> None:
    """``/metrics``: the metrics token or the admin token."""
    check_token(request, request.app.state.metrics_token, request.app.state.admin_token)
