"""Logging set-up and the one redaction helper for anything that might hold a secret."""

from __future__ import annotations

import logging

from corral.core.redaction import redact_text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_text(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in args)
        return True


def configure_logging(level: str = "info") -> None:
    """Root handler on stderr at ``level``, with URL passwords masked in every record."""
    root = logging.getLogger()
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    if not any(getattr(h, "_corral", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._corral = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler.addFilter(_RedactingFilter())
        root.addHandler(handler)
    for noisy in ("bullmq",):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
