"""Corral's exceptions: one tree, so callers can catch what they mean.

::

    CorralError
    ├── ConfigurationError          bad settings (names the variable; never shows a password)
    ├── ValidationError (ValueError)
    │   ├── InvalidJobOptions       a bad add_job / add_bulk_jobs option (names the path)
    │   └── InvalidCronExpression   a bad cron expression (names the cron field)
    ├── HandlerError
    │   ├── HandlerNotFound         no handler registered under that name
    │   ├── DuplicateHandler        two handlers claim one name (names both modules)
    │   └── HandlerDiscoveryError   the handlers package (or one module) failed to import
    ├── BrokerUnavailable           Redis cannot be reached (host:port, no password)
    │   ├── BrokerPoolExhausted     every pooled connection stayed busy past the pool timeout
    │   ├── BrokerAuthenticationFailed  Redis refused the password (also a ConfigurationError)
    │   └── BrokerOutOfMemory       Redis answers but refuses writes: maxmemory reached
    ├── JobNotFound                 no job with that id in the queue
    ├── ScheduleNotFound            no scheduled job with that id
    ├── StoreUnavailable (ConnectionError)  the database is unreachable (no password shown)
    ├── JobTimeoutError             an attempt ran past its timeout (retryable)
    └── UnrecoverableError          raised by a handler: fail the job now, no retries
"""

from __future__ import annotations


class CorralError(Exception):
    """Root of every error Corral raises on purpose."""


class ConfigurationError(CorralError):
    """A setting is missing or malformed. The message names the setting."""


class ValidationError(CorralError, ValueError):
    """Input failed validation; ``path`` names the field (``jobs[3].options.priority``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class InvalidJobOptions(ValidationError):
    """A job's name, data or options are invalid; nothing was enqueued."""


class InvalidCronExpression(ValidationError):
    """A cron expression is malformed, out of range, or can never fire."""

    def __init__(self, expression: str, field: str, problem: str) -> None:
        super().__init__("cronExpression", f"{field} field: {problem}" if field else problem)
        self.expression = expression
        self.field = field


class HandlerError(CorralError):
    """Something is wrong with the handler registry."""


class HandlerNotFound(HandlerError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"handler {name!r} not registered")
        self.name = name


class DuplicateHandler(HandlerError):
    def __init__(self, name: str, first: str, second: str) -> None:
        super().__init__(f"handler {name!r} registered twice: {first}, {second}")
        self.name = name
        self.first = first
        self.second = second


class HandlerDiscoveryError(HandlerError):
    """The handlers package or one of its modules could not be imported."""


class BrokerUnavailable(CorralError, ConnectionError):
    """Redis is not reachable. The message carries host:port and never the password."""


class BrokerPoolExhausted(BrokerUnavailable):
    """Redis answers, but this process's connection pool had no free connection within its
    timeout (more concurrent commands than connections, for too long). A subclass of
    BrokerUnavailable so callers that handle an outage handle this too; the message says what
    it is, so nobody goes looking for a network problem."""


class BrokerAuthenticationFailed(BrokerUnavailable, ConfigurationError):
    """Redis refused the password (or wants one): waiting will not help, so processes stop at
    start-up. Still a BrokerUnavailable for code that serves requests meanwhile."""


class BrokerOutOfMemory(BrokerUnavailable):
    """Redis reached ``maxmemory`` and (policy noeviction) refuses writes until memory is freed.

    A refused add stored nothing. It is a BrokerUnavailable so callers that back off and retry
    on an outage do the same here; the message says which of the two it is.
    """


class JobNotFound(CorralError, LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class JobTimeoutError(CorralError, TimeoutError):
    """One attempt exceeded its ``timeout``; the job is retried if attempts remain."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"job attempt timed out after {timeout_ms} ms")
        self.timeout_ms = timeout_ms


class UnrecoverableError(CorralError):
    """Raise from a handler to fail the job at once, without further attempts."""


class ScheduleNotFound(CorralError, LookupError):
    def __init__(self, schedule_id: object) -> None:
        super().__init__(f"scheduled job {schedule_id} not found")
        self.schedule_id = schedule_id


class StoreUnavailable(CorralError, ConnectionError):
    """The database cannot be reached or refused the statement; the message has no password."""
