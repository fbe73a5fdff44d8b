"""Server-side dashboard sessions: an opaque random id (the cookie) -> expiry and CSRF token.

Sessions live in memory on the app (``app.state.dashboard_sessions``), so they are **per API
process**: behind several API replicas a browser must stick to one, and a restart logs everyone
out. Nothing secret is derived from the admin token; the cookie only names a session.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

from fastapi import Request
from starlette.exceptions import HTTPException

COOKIE: Final = "corral_session"
CSRF_HEADER: Final = "x-csrf-token"
#: A session ends this long after login (absolute, not sliding).
TTL_S: Final = 8 * 3600
#: At most this many live sessions per process; the oldest is dropped beyond it.
MAX_SESSIONS: Final = 1000


@dataclass(frozen=True)
class Session:
    expires_at: float
    csrf_token: str

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.csrf_token.encode()
        )


class SessionStore:
    """Session id -> Session, with expiry. Not shared between processes."""

    def __init__(self, ttl_s: float = TTL_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> tuple[str, Session]:
        self._prune()
        while len(self._sessions) >= self.max_sessions:
            del self._sessions[next(iter(self._sessions))]  # dicts keep insertion order
        session_id = secrets.token_urlsafe(32)
        session = Session(time.monotonic() + self.ttl_s, secrets.token_urlsafe(32))
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id) if session_id else None
        if session is not None and session.expires_at <= time.monotonic():
            self.delete(session_id)
            return None
        return session

    def delete(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def store_of(request: Request) -> SessionStore:
    store: SessionStore | None = getattr(request.app.state, "dashboard_sessions", None)
    if store is None:
        store = request.app.state.dashboard_sessions = SessionStore()
    return store


def current(request: Request) -> Session | None:
    """The request's live session, if its cookie names one."""
    return store_of(request).get(request.cookies.get(COOKIE))


def cookie_secure(request: Request) -> bool:
    """The session cookie is ``Secure`` everywhere but in development: outside a developer's
    machine it must never travel over plain HTTP (browsers accept Secure on http://localhost)."""
    return bool(request.app.state.settings.environment != "development")


def check_origin(request: Request) -> None:
    """A present ``Origin`` must be this server's own (cross-site requests are refused)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "cross-origin request refused")


def authenticate(request: Request) -> bool:
    """True if a dashboard session authenticates the request.

    A mutating request must also carry the session's CSRF token in ``X-CSRF-Token`` and, when
    the browser sends ``Origin``, come from this origin; otherwise 403 (nothing is changed).
    """
    session = current(request)
    if session is None:
        return False
    if request.method.upper() in MUTATING:
        check_origin(request)
        if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, "missing or invalid X-CSRF-Token header")
    return True
