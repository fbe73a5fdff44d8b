"""Redis clients for Corral, configured around bullmq's traps.

* Every client is a *pooled* ``redis.asyncio.Redis`` with ``decode_responses=True`` (bullmq
  needs it; with a single-connection client all concurrent jobs queue on one lock).
* The pool *waits* for a free connection (up to ``pool_timeout_s``) instead of failing the
  command: more concurrent callers than connections (a web app enqueuing from a hundred requests
  at once) is ordinary load, not an error. A pool still busy after the timeout raises
  :class:`~corral.errors.BrokerPoolExhausted`, which says so rather than "not reachable".
* A socket timeout above bullmq's longest blocking wait (10 s): a half-open TCP connection is
  noticed, and blocking pops are never cut short (redis-py 8's 5 s default breaks them).
* Short, bounded retries: a producer call during an outage fails in about a second with
  :class:`~corral.errors.BrokerUnavailable` instead of hanging for minutes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import DriverInfo
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from corral.adapters.bullmq.wire import LeanPool, LeanWaitingPool, hiredis_packing
from corral.core.redaction import redact_text
from corral.errors import (
    BrokerAuthenticationFailed,
    BrokerOutOfMemory,
    BrokerPoolExhausted,
    BrokerUnavailable,
)

SOCKET_TIMEOUT_S = 15.0  # > bullmq's 10 s maximum block time
#: How long a command waits for a pooled connection before it fails. Generous: a burst of a
#: thousand adds on one pool of 50 clears in about a second; ten seconds of every connection
#: staying busy means Redis (or this process) is overloaded.
POOL_TIMEOUT_S = 10.0
#: What a command raises when Redis cannot be reached (redis-py's errors, or the OS's).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
#: What every connection tells Redis about its client (CLIENT SETINFO), made once: by default
#: redis-py looks its own version up in the installed packages' metadata for each new
#: connection, 0.5-2 ms of CPU apiece, paid by a worker at start for a dozen of them.
_DRIVER_INFO = DriverInfo()


class PoolExhausted(RedisConnectionError):
    """No pooled connection became free within the pool's timeout (redis-py reports this as a
    bare "No connection available."; this type lets :func:`unavailable` tell it apart)."""

    def __init__(self, max_connections: int, timeout_s: float) -> None:
        super().__init__(f"all {max_connections} connections busy for {timeout_s:g} s")
        self.max_connections = max_connections
        self.timeout_s = timeout_s


class _WaitingPool(LeanWaitingPool):
    async def get_connection(self, *_: Any, **__: Any) -> Any:
        try:
            return await super().get_connection()
        except RedisConnectionError as exc:
            if isinstance(exc, PoolExhausted) or not isinstance(exc.__cause__, TimeoutError):
                raise
            raise PoolExhausted(self.max_connections, self.timeout or 0.0) from None


def where(url: str) -> str:
    """``host:port`` (or the socket path) of a Redis URL, for messages; never the password."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "<malformed REDIS_URL>"


def make_client(
    url: str,
    *,
    max_connections: int = 50,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    connect_timeout_s: float = 5.0,
    retries: int = 2,
    client_name: str | None = None,
    wait_for_connection: bool = True,
) -> aioredis.Redis:
    """A pooled client whose callers wait (up to ``pool_timeout_s``) for a free connection.
    Nothing connects until the first command.

    ``wait_for_connection=False`` is for a client whose concurrent commands are bounded by its
    owner (a worker: one command at a time per job slot, plus a few timers), so the pool can
    never run dry: waiting costs a timer and a lock per command (measured: 15-40 us of CPU),
    which a worker pays on every job."""
    extra: dict[str, object] = {"timeout": pool_timeout_s} if wait_for_connection else {}
    pool_class = _WaitingPool if wait_for_connection else LeanPool
    pool = pool_class.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        **extra,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=connect_timeout_s,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name=client_name,
        driver_info=_DRIVER_INFO,
    )
    pool.connection_class = hiredis_packing(pool.connection_class)
    return aioredis.Redis.from_pool(pool)


def refused_password(exc: BaseException) -> bool:
    """Redis answered, but not to us: a wrong or missing password (WRONGPASS, NOAUTH)."""
    return isinstance(exc, AuthenticationError) or (
        isinstance(exc, ResponseError) and str(exc).startswith(("WRONGPASS", "NOAUTH"))
    )


def unavailable(url: str, exc: BaseException) -> BrokerUnavailable:
    if isinstance(exc, PoolExhausted):
        return BrokerPoolExhausted(
            f"Redis connection pool exhausted: all {exc.max_connections} connections to "
            f"{where(url)} busy for {exc.timeout_s:g} s"
        )
    if refused_password(exc):
        return BrokerAuthenticationFailed(f"Redis refused the password for {where(url)}")
    if isinstance(exc, OutOfMemoryError):
        # Redis' own text reaches us wrapped in bullmq's pipeline report; say plainly what
        # happened and what helps. At the limit workers cannot take jobs either (taking one
        # writes its lock) and bullmq's clean script may be refused too: more memory first.
        return BrokerOutOfMemory(
            f"Redis at {where(url)} is out of memory (maxmemory reached) and refused the write; "
            "raise maxmemory, then let workers drain the queue and clean finished jobs"
        )
    detail = redact_text(str(exc)) or type(exc).__name__
    return BrokerUnavailable(f"Redis not reachable at {where(url)}: {detail}")


async def ping(client: aioredis.Redis, url: str, timeout_s: float) -> float:
    """Round-trip latency in ms; raise BrokerUnavailable (no password) if Redis does not answer."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await client.ping()  # type: ignore[misc]
    except (RedisError, OSError, TimeoutError) as exc:
        raise unavailable(url, exc) from None
    return (time.perf_counter() - started) * 1000


async def server_info(client: aioredis.Redis, url: str) -> dict[str, object]:
    try:
        info: dict[str, object] = await client.info()
    except (RedisError, OSError) as exc:
        raise unavailable(url, exc) from None
    return info
