"""How a failed attempt is described: to the queue, the execution log and the worker's log.

``str(KeyError('width'))`` is just ``'width'``, which tells a reader nothing. A failure is
described the way Python prints the last line of a traceback (``KeyError: 'width'``), except
Corral's own verdicts (timeout, unknown handler, bad data, ``UnrecoverableError``), whose
messages are already sentences written for the reader.
"""

from __future__ import annotations

import traceback

from corral.errors import CorralError


def describe(exc: BaseException) -> str:
    """One line (more only if the exception's own text has several) naming the failure."""
    if isinstance(exc, CorralError):
        return str(exc) or type(exc).__name__
    return "".join(traceback.format_exception_only(exc)).strip()


def stacktrace(exc: BaseException) -> str:
    """The full traceback of ``exc``, chained causes included, as Python would print it."""
    return "".join(traceback.format_exception(exc)).rstrip()
