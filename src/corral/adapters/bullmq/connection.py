"""Redis clients for Corral, configured around bullmq's traps (ARCHITECTURE.md decision 1).

* Every client is a *pooled* ``redis.asyncio.Redis`` with ``decode_responses=True`` (bullmq
  needs it; with a single-connection client all concurrent jobs queue on one lock).
* A socket timeout above bullmq's longest blocking wait (10 s): a half-open TCP connection is
  noticed, and blocking pops are never cut short (redis-py 8's 5 s default breaks them).
* Short, bounded retries: a producer call during an outage fails in about a second with
  :class:`~corral.errors.BrokerUnavailable` instead of hanging for minutes.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from corral.core.redaction import redact_text
from corral.errors import BrokerAuthenticationFailed, BrokerUnavailable

SOCKET_TIMEOUT_S = 15.0  # > bullmq's 10 s maximum block time


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
    connect_timeout_s: float = 5.0,
    retries: int = 2,
    client_name: str | None = None,
) -> aioredis.Redis:
    """A pooled client. Nothing connects until the first command."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=connect_timeout_s,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name=client_name,
    )


def refused_password(exc: BaseException) -> bool:
    """Redis answered, but not to us: a wrong or missing password (WRONGPASS, NOAUTH)."""
    return isinstance(exc, AuthenticationError) or (
        isinstance(exc, ResponseError) and str(exc).startswith(("WRONGPASS", "NOAUTH"))
    )


def unavailable(url: str, exc: BaseException) -> BrokerUnavailable:
    if refused_password(exc):
        return BrokerAuthenticationFailed(f"Redis refused the password for {where(url)}")
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
