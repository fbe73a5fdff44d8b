"""Redaction of secrets in URLs, free text and payloads: pure functions used everywhere
something might be shown (logs, errors, health, CLI)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

_SECRET_KEY_RE: Final = re.compile(r"pass|secret|token|key|authorization|cookie", re.IGNORECASE)
# The look-behind makes a match start only where a run of scheme characters starts, so the
# search stays linear on long text; the password runs to the last '@' before whitespace (an
# unencoded '@' in a password must not leave its tail visible); any letter case.
_URL_PASSWORD_RE: Final = re.compile(
    r"(?<![a-z0-9+.\-])(?P<scheme>[a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):\S*@", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """``redis://:pw@host:6379/0`` -> ``redis://:***@host:6379/0``; robust to malformed URLs.

    Works on the text, not a parsed URL, so a URL that ``urlsplit`` misreads (no scheme, an
    unencoded ``@``, ``/`` or ``#`` in the password) still has its whole password hidden:
    everything from the first ``:`` of the user info to the last ``@`` is masked. A user name
    alone (no ``:``) is left as it is.
    """
    head, at, host = url.rpartition("@")
    if not at:
        return url
    scheme, sep, userinfo = head.partition("://")
    if not sep:
        scheme, userinfo = "", head
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return url
    return f"{scheme}{sep}{user}:***@{host}"


_TOKEN_RE: Final = re.compile(r"\S+")


def redact_text(text: str) -> str:
    """Mask any ``scheme://user:password@`` inside free text (exception messages, say)."""
    if "@" not in text:
        return text
    return _TOKEN_RE.sub(_redact_token, text)


def _redact_token(match: re.Match[str]) -> str:
    # Only the part up to the token's last '@' can hold a password; searching just that part
    # keeps the work linear (a failed match never scans on to the end of a long token).
    token = match.group()
    at = token.rfind("@")
    if at < 0:
        return token
    return _URL_PASSWORD_RE.sub(r"\g<scheme>\g<user>:***@", token[: at + 1]) + token[at + 1 :]


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
