"""Commands written to Redis together, one write in flight at a time.

A worker's job slots finish their jobs in bursts: one reply from Redis wakes several slots in
the same turn of the event loop, and each then records its completion. Sent one by one, every
completion pays for its own write, a system call that on loopback TCP costs more than the rest
of the command's client-side work (in a drain's profile, the writes were a sixth of
the worker's CPU); written together on one connection, a burst pays for one write, and each
reply is still read and handed to its own caller.

So at most one batch is in flight. A command that finds none goes out on the loop's next turn,
with whatever the other slots add in this one; a command that finds one waits for its replies
and goes with everything else that arrived meanwhile, the moment the last reply is read. Redis
is never left idle while commands wait (the next batch is written as the previous one is
answered), and a batch grows with the load instead of with the turns of the loop. (The earlier
rule, "the first command of a turn at once, the rest together on the next turn", kept two
writes in flight; counted with strace on the same 5,000-job drain, this rule makes about one
system call fewer per job: 0.5 writes and 0.6 reads.)

Replies come back in the order the commands were written. An error reply (a script's error,
NOSCRIPT) is its own command's error; a connection that fails is retried as redis-py retries a
command (its ``Retry``, the connection dropped between tries), for the commands not answered
yet; when the retries run out, every unanswered caller gets the error. A caller that is
cancelled leaves its command in the batch: its reply is read and dropped, so the connection
stays in step.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_Pending = deque[tuple[tuple[Any, ...], "asyncio.Future[Any]"]]


class CommandBatcher:
    """Batches the commands of one pool (see the module's docstring)."""

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self._pool = pool
        self._pending: _Pending = deque()
        # The task writing batches while there are any; held here because the loop keeps only
        # a weak reference to a task.
        self._sender: asyncio.Task[None] | None = None

    def send(self, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        """The reply to ``command`` (already decoded, as redis-py's ``read_response``)."""
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._pending.append((command, reply))
        if self._sender is None:
            self._sender = loop.create_task(self._send_all())
        return reply

    async def _send_all(self) -> None:
        """Write the waiting commands as one batch, and again with those that came while it was
        answered, until none wait."""
        try:
            while self._pending:
                await self._flush()
        except BaseException as exc:  # cancelled or shut down: nobody is left to send them
            _fail(self._pending, exc)
            self._pending = deque()
            raise
        finally:
            self._sender = None

    async def _flush(self) -> None:
        batch, self._pending = self._pending, deque()
        try:
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        except BaseException as exc:
            _fail(batch, exc)  # the callers have the error: the task goes on without it
            if not isinstance(exc, Exception):
                raise
            return
        try:
            await _with_retries(connection, lambda: _exchange(connection, batch))
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._pool.release(connection)


async def _exchange(connection: Any, batch: _Pending) -> None:
    """Write the unanswered commands of ``batch``, then hand each reply to its caller.

    The replies are read under one timer for the whole batch, the connection's socket timeout
    (redis-py's ``read_response`` starts one per reply), and a timeout is reported as redis-py
    reports its own (the connection dropped, its ``TimeoutError``), which its retries know."""
    packed: list[bytes] = []
    for command, _ in batch:
        packed.extend(connection.pack_command(*command))
    await connection.send_packed_command(packed)
    timeout = connection.socket_timeout
    connection.socket_timeout = None  # no timer per reply: the one below bounds them all
    try:
        async with asyncio.timeout(timeout):
            await _replies(connection, batch)
    except TimeoutError:
        await connection.disconnect(nowait=True)
        raise RedisTimeoutError(f"Timeout reading from {connection._host_error()}") from None
    finally:
        connection.socket_timeout = timeout


async def _replies(connection: Any, batch: _Pending) -> None:
    parser = connection._parser
    if type(parser) is _AsyncHiredisParser and connection.protocol not in (3, "3"):
        await _hiredis_replies(connection, parser, batch)
        return
    while batch:
        error: ResponseError | None = None
        try:
            reply = await connection.read_response()
        except ResponseError as exc:  # an error reply: read, so the connection is in step
            error = exc
        _, future = batch.popleft()
        if future.done():  # its caller was cancelled
            continue
        if error is None:
            future.set_result(reply)
        else:
            future.set_exception(error)


async def _hiredis_replies(connection: Any, parser: Any, batch: _Pending) -> None:
    """:func:`_replies` read straight from the connection's hiredis reader and stream.

    redis-py's ``read_response`` costs about ten Python calls per reply (a host string built
    for a possible error message, the protocol and timeout checks, the parser's own layer); a
    batch's replies arrive together, mostly in one read, so here each costs a ``gets``. What
    ``read_response`` does besides is kept: a reply that is a connection error (and a read
    that fails, or is cancelled) drops the connection and raises, leaving the unanswered
    commands in ``batch`` for the retry; an error reply goes to its own caller; the health
    check's clock moves as after any read. RESP2 only (no push messages to set aside)."""
    reader, stream, size = parser._reader, parser._stream, parser._read_size
    try:
        if not parser._connected:
            raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        while batch:
            reply = reader.gets()
            while reply is NOT_ENOUGH_DATA:
                data = await stream.read(size)
                if not data:
                    raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
                reader.feed(data)
                reply = reader.gets()
            if isinstance(reply, RedisConnectionError):
                raise reply
            if type(reply) is list and reply and isinstance(reply[0], RedisConnectionError):
                raise reply[0]
            _, future = batch.popleft()
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)
    except OSError as exc:
        await connection.disconnect(nowait=True)
        where = connection._host_error()
        raise RedisConnectionError(f"Error while reading from {where} : {exc.args}") from None
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    if connection.health_check_interval:
        loop = asyncio.get_running_loop()
        connection.next_health_check = loop.time() + connection.health_check_interval


async def _with_retries(connection: Any, exchange: Callable[[], Awaitable[Any]]) -> Any:
    """``exchange()``, tried again as redis-py tries a command again: by the connection's
    ``Retry``, the connection dropped after each failure."""
    return await connection.retry.call_with_retry(
        exchange,
        lambda error, failures: connection.disconnect(error=error, failure_count=failures),
        with_failure_count=True,
    )


def _fail(batch: _Pending, exc: BaseException) -> None:
    if not isinstance(exc, Exception):  # cancelled or shut down: the callers see it as such
        exc = ConnectionError(f"the batch was not sent ({type(exc).__name__})")
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
