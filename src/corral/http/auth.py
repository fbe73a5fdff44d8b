"""Bearer-token authentication for ``/api/admin``, the OpenAPI document, ``/metrics`` and the
details of ``/health/ready``.

The token comes from ``CORRAL_ADMIN_TOKEN``; compared in constant time. Without a token the
admin API refuses every request (fail closed) — and in production the app refuses to start.
A request without a bearer token may instead carry a dashboard session cookie (see
``corral.http.dashboard.session``: mutating requests then need the CSRF header, same origin).
``/metrics`` takes ``CORRAL_METRICS_TOKEN`` (a scraper's credential that opens nothing else) or
the admin token; with neither set it refuses every scrape.

Wrong bearer tokens and failed dashboard logins are logged (address and path, never the token)
and counted per client address (``corral.http.ratelimit``): past CORRAL_AUTH_MAX_FAILURES in
CORRAL_AUTH_FAILURE_WINDOW seconds the address gets 429 with ``Retry-After`` for every
credential it presents, right or wrong, until the window ends; a right answer during a lockout
would tell a guesser it had found the token. A request without credentials is not a guess and
is not counted.
"""

from __future__ import annotations

import hmac
import logging
import time

from fastapi import Request
from starlette.exceptions import HTTPException

from corral.http.dashboard import session as dashboard_session
from corral.http.ratelimit import FailureLimiter, client_key

logger = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: The 401 of a server started without a token: no token can pass, so say what to fix.
UNCONFIGURED_MESSAGE = (
    "this server has no admin token configured: set CORRAL_ADMIN_TOKEN and restart it"
)


def _limiter(request: Request) -> FailureLimiter:
    limiter: FailureLimiter | None = getattr(request.app.state, "auth_failures", None)
    if limiter is None:
        settings = request.app.state.settings
        limiter = FailureLimiter(settings.auth_max_failures, settings.auth_failure_window_s)
        request.app.state.auth_failures = limiter
    return limiter


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def refuse_if_locked_out(request: Request) -> None:
    """429 (with Retry-After) if the client's address is locked out; call before comparing."""
    retry = _limiter(request).retry_after(client_key(_address(request)), time.monotonic())
    if retry is not None:
        raise HTTPException(
            429,
            f"too many failed authentication attempts from this address; try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def record_failure(request: Request, what: str) -> None:
    """Log one failed attempt (never what was presented) and count it against the address."""
    address = _address(request) or "unknown"
    limiter = _limiter(request)
    locked = limiter.fail(client_key(address), time.monotonic())
    # %r: the path is the client's text; repr keeps a newline in it from forging a log line.
    logger.warning(
        "authentication failed (%s) from %s on %r",
        what,
        address,
        request.url.path,
        extra={"event": "http.auth_failed"},
    )
    if locked:
        logger.warning(
            "locking out %s for %d s after %d failed authentication attempts",
            address,
            limiter.window_s,
            limiter.max_failures,
            extra={"event": "http.auth_locked"},
        )


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def check_token(request: Request, *expected: str | None) -> None:
    """Pass if the bearer token equals one of ``expected`` (unset ones never match)."""
    if not any(expected):
        raise HTTPException(401, UNCONFIGURED_MESSAGE, headers=_CHALLENGE)
    token = _presented(request)
    if token is None:
        raise HTTPException(
            401, "authentication required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE
        )
    refuse_if_locked_out(request)
    # Every candidate is compared, so the time taken does not tell which one nearly matched.
    matches = [
        bool(candidate) and hmac.compare_digest(token.encode(), str(candidate).encode())
        for candidate in expected
    ]
    if not any(matches):
        record_failure(request, "invalid bearer token")
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
