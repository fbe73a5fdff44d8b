"""Redaction of secrets in URLs, free text and payloads: pure functions used everywhere
something might be shown (logs, errors, health, CLI)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

_SECRET_KEY_RE: Final = re.compile(r"pass|secret|token|key|authorization|cookie", re.IGNORECASE)
_URL_PASSWORD_RE: Final = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@\s]*@"
)


def redact_url(url: str) -> str:
    """``redis://:pw@host:6379/0`` -> ``redis://:***@host:6379/0``; robust to malformed URLs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return _URL_PASSWORD_RE.sub(r"\g<scheme>\g<user>:***@", url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = f":{parts.port}" if parts.port is not None else ""
        except ValueError:
            port = ""
        netloc = f"{parts.username or ''}:***@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return _URL_PASSWORD_RE.sub(r"\g<scheme>\g<user>:***@", url)


def redact_text(text: str) -> str:
    """Mask any ``scheme://user:password@`` inside free text (exception messages, say)."""
    return _URL_PASSWORD_RE.sub(r"\g<scheme>\g<user>:***@", text)


def mask_payload(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON value with secret-looking keys masked, for DEBUG logging only."""
    if depth > 32:
        return "..."
    if isinstance(value, Mapping):
        return {
            k: "***"
            if isinstance(k, str) and _SECRET_KEY_RE.search(k)
            else mask_payload(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_payload(v, depth + 1) for v in value]
    return value
