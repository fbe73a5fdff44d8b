"""Leaner redis-py plumbing for commands sent on every job.

redis-py 7.4's asyncio client pays, on each command, for work Corral does not use: its
pool records four observability counters, dispatches a release event and wraps
``get_connection`` in a deprecated-arguments check; it probes every pooled connection for
unread data with a zero-timeout socket read; and it packs the command in Python, one
``encode`` call per argument (bullmq's scripts take 15 to 25). Together that was about a
quarter of a worker's CPU per job (cProfile of a 20,000-job drain). Here:

* commands are packed by ``hiredis.pack_command`` (C; the same bytes, tested), falling back to
  redis-py's packer for what hiredis does not take (multi-word commands such as
  ``CONFIG GET``, and invalid arguments, so redis-py's own ``DataError`` is still raised);
* a small command is written without redis-py's per-write ``asyncio.wait_for`` (a task each);
  it cannot block, so the socket timeout has nothing to bound;
* the pool hands out and takes back connections without the counters and events. A pooled
  connection is only checked for being connected: redis-py disconnects a connection whose
  command failed or was cancelled before its reply was read, so none comes back to the pool
  with a reply pending (no pub/sub or MONITOR runs on these pools).

The pool's private lists (``_available_connections``, ``_in_use_connections``) are redis-py
internals; ``tests/unit/test_wire.py`` fails loudly if an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from corral.adapters.bullmq.batching import CommandBatcher

#: asyncio's default high-water mark for a transport's write buffer: a write of less than this
#: into an empty buffer never pauses the transport, so ``drain()`` returns at once.
_NEVER_PAUSES = 64 * 1024


class _HiredisPacking:
    socket_timeout: float | None
    _writer: asyncio.StreamWriter | None
    health_check_interval: float
    next_health_check: float

    def _health_check_due(self) -> bool:
        """redis-py's own test in ``check_health``, without a coroutine per command."""
        interval = self.health_check_interval
        return bool(interval) and asyncio.get_running_loop().time() > self.next_health_check

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """redis-py bounds every write with ``asyncio.wait_for`` (a new task per command). A
        small command into an empty write buffer cannot block, so it is sent without the
        timer; anything else, and every error path, is redis-py's own."""
        writer = self._writer
        timeout = self.socket_timeout
        if (
            timeout
            and writer is not None
            and type(command) is list
            and writer.transport.get_write_buffer_size() == 0
            and sum(map(len, command)) < _NEVER_PAUSES
        ):
            if check_health and self._health_check_due():
                await self.check_health()  # type: ignore[attr-defined]
            self.socket_timeout = None
            try:
                await super().send_packed_command(command, False)  # type: ignore[misc]
            finally:
                self.socket_timeout = timeout
            return
        await super().send_packed_command(command, check_health)  # type: ignore[misc]

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0] if args else None
        if isinstance(first, str) and " " not in first:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass  # the stock packer raises redis-py's own DataError for it
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed


_FAST_CLASSES: dict[type[Any], type[Any]] = {}


def hiredis_packing(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` (TCP, TLS or Unix-socket connection) with commands packed by hiredis."""
    fast = _FAST_CLASSES.get(base)
    if fast is None:
        fast = _FAST_CLASSES[base] = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    return fast


async def _take(pool: aioredis.ConnectionPool) -> Any:
    return await _connected(pool, pool.get_available_connection())  # type: ignore[no-untyped-call]


async def _connected(pool: aioredis.ConnectionPool, connection: Any) -> Any:
    """``connection``, just taken from ``pool``, connected; given back if it cannot be."""
    try:
        if not connection.is_connected:
            await connection.connect()
    except BaseException:
        await pool.release(connection)
        raise
    return connection


async def _give_back(pool: aioredis.ConnectionPool, connection: Any) -> None:
    pool._in_use_connections.remove(connection)
    if connection.should_reconnect():
        await connection.disconnect()
    pool._available_connections.append(connection)


class _Batching:
    """A pool's command batcher, made on first use (see ``batching.py``)."""

    @functools.cached_property
    def batcher(self) -> CommandBatcher:
        return CommandBatcher(self)  # type: ignore[arg-type]


class LeanPool(_Batching, aioredis.ConnectionPool):
    """A connection pool for a client whose owner bounds its concurrent commands below
    ``max_connections`` (a worker's job client): asking more of it raises, as redis-py's does."""

    async def get_connection(self, *_: Any, **__: Any) -> Any:
        return await _take(self)

    async def release(self, connection: AbstractConnection) -> None:
        await _give_back(self, connection)


class LeanWaitingPool(_Batching, aioredis.BlockingConnectionPool):
    """A pool whose callers wait for a free connection (up to ``timeout``). While nobody waits,
    a free connection is taken at once, without the condition and the timer; once anyone
    waits, every caller queues behind them, so a waiter is never starved by newcomers."""

    _waiting = 0

    async def get_connection(self, *_: Any, **__: Any) -> Any:
        if not self._waiting and self.can_get_connection():
            return await _take(self)
        self._waiting += 1
        try:
            async with self._condition:
                async with asyncio.timeout(self.timeout):
                    await self._condition.wait_for(self.can_get_connection)
                    connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        except TimeoutError as exc:
            raise RedisConnectionError("No connection available.") from exc
        finally:
            self._waiting -= 1
        return await _connected(self, connection)

    async def release(self, connection: AbstractConnection) -> None:
        await _give_back(self, connection)
        if self._waiting:
            async with self._condition:
                self._condition.notify()


async def run_script(script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
    """``await script(keys=keys, args=args)`` for a script sent on every job.

    On a :class:`LeanPool` the EVALSHA goes through the pool's
    :class:`~corral.adapters.bullmq.batching.CommandBatcher`: written with the other commands
    sent meanwhile, one batch in flight at a time, with redis-py's retries, timeout and
    disconnect on error, without the client's layers around them (the script object, the
    command dispatch, the operation-duration records, the reply callbacks, of which EVALSHA has
    none). A script
    Redis does not know (restarted, flushed) takes redis-py's own path, which loads it:
    NOSCRIPT means it did not run."""
    client = script.registered_client
    pool = client.connection_pool
    if client.single_connection_client or not isinstance(pool, _Batching):
        return await script(keys=keys, args=args)
    try:
        return await pool.batcher.send(("EVALSHA", script.sha, len(keys), *keys, *args))
    except NoScriptError:
        return await script(keys=keys, args=args)
