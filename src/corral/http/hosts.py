"""CORRAL_ALLOWED_HOSTS: answer only requests whose ``Host`` header names a served host.

Starlette builds absolute URLs (the trailing-slash redirect's ``Location``) from the Host
header, so without this a request with ``Host: evil.example`` is redirected to evil.example.
The matching is Starlette's ``TrustedHostMiddleware``'s (exact names, ``*.example.com`` for any
subdomain, ``*`` for any host); this middleware differs only in answering with the API's JSON
error body.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.http.errors import error_body


def host_of(header: str) -> str:
    """The host part of a Host header, lower case, without port or trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal: [::1]:8000
        return header.partition("]")[0] + "]"
    return header.rpartition(":")[0].rstrip(".") if ":" in header else header.rstrip(".")


def allowed(host: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.rstrip(".")
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class AllowedHosts:
    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = [host.lower() for host in hosts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = host_of(Headers(scope=scope).get("host", ""))
            if not host or not allowed(host, self.hosts):
                body = error_body("Host header does not name a host this API serves")
                await JSONResponse(body, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)
