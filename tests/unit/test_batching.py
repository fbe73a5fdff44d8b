"""Commands written together (``adapters/bullmq/batching.py``, used by ``wire.run_script``),
against a real Redis: each caller gets its own reply, in every failure too."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from corral.adapters.bullmq.connection import SOCKET_TIMEOUT_S, make_client
from corral.adapters.bullmq.wire import run_script

ECHO = "return {ARGV[1], KEYS[1]}"
FAIL_ON_BAD = (
    "if ARGV[1] == 'bad' then return redis.error_reply('BAD ' .. KEYS[1]) end return ARGV[1]"
)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = make_client(redis_url, max_connections=4, wait_for_connection=False)
    yield client
    await client.aclose()


async def _loaded(client: aioredis.Redis, text: str) -> AsyncScript:
    script = client.register_script(text)
    await client.script_load(text)
    return script


def _connections(client: aioredis.Redis) -> int:
    pool = client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


async def test_the_commands_of_a_turn_go_together(client: aioredis.Redis) -> None:
    script = await _loaded(client, ECHO)
    calls = [run_script(script, [f"k{i}"], [str(i)]) for i in range(10)]
    assert await asyncio.gather(*calls) == [[str(i), f"k{i}"] for i in range(10)]
    assert _connections(client) == 1  # one batch, one connection
    for connection in client.connection_pool._available_connections:
        assert connection.socket_timeout == SOCKET_TIMEOUT_S  # put back after the batch's timer


async def test_commands_wait_for_the_batch_in_flight_and_go_together_after_it(
    client: aioredis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = client.connection_pool
    assert await pool.batcher.send(("PING",)) == "PONG"
    (connection,) = pool._available_connections
    writes: list[int] = []
    write = connection.send_packed_command

    async def counted(command: list[bytes], check_health: bool = True) -> None:
        writes.append(len(command))
        await write(command, check_health)

    monkeypatch.setattr(connection, "send_packed_command", counted)
    key = f"corral-test-batch-{uuid.uuid4()}"
    in_flight = pool.batcher.send(("BLPOP", key, 5))
    await asyncio.sleep(0.05)  # written, and Redis holds its reply
    meanwhile = [pool.batcher.send(("ECHO", str(i))) for i in range(5)]
    await asyncio.sleep(0.05)
    assert writes == [1]  # the others wait for the batch in flight
    pusher = aioredis.Redis.from_url(redis_url)
    try:
        await pusher.lpush(key, "go")
    finally:
        await pusher.aclose()
    assert await in_flight == [key, "go"]
    assert await asyncio.gather(*meanwhile) == [str(i) for i in range(5)]
    assert writes == [1, 5]  # then all five in one write
    assert _connections(client) == 1


async def test_an_error_reply_is_its_own_commands_error(client: aioredis.Redis) -> None:
    script = await _loaded(client, FAIL_ON_BAD)
    replies = await asyncio.gather(
        run_script(script, ["a"], ["ok1"]),
        run_script(script, ["b"], ["bad"]),
        run_script(script, ["c"], ["ok2"]),
        return_exceptions=True,
    )
    assert replies[0] == "ok1"
    assert isinstance(replies[1], ResponseError)
    assert str(replies[1]) == "BAD b"
    assert replies[2] == "ok2"
    assert await run_script(script, ["d"], ["after"]) == "after"


async def test_replies_longer_than_a_read_reach_their_own_callers(client: aioredis.Redis) -> None:
    # Each big reply spans several reads of the socket (64 KiB each), and the small ones
    # between them arrive in the same reads as the big ones' ends.
    script = await _loaded(client, "return string.rep(ARGV[1], tonumber(ARGV[2]))")
    sizes = [200_000, 1, 70_000, 3, 0, 300_000, 2]
    calls = [run_script(script, [], [chr(97 + i), n]) for i, n in enumerate(sizes)]
    assert await asyncio.gather(*calls) == [chr(97 + i) * n for i, n in enumerate(sizes)]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("parser", ["hiredis", "python"])
async def test_every_parser_and_protocol_reads_a_batch(
    redis_url: str, parser: str, protocol: int
) -> None:
    # The batch reads hiredis' RESP2 replies itself and leaves anything else to redis-py.
    client = make_client(redis_url, max_connections=2, wait_for_connection=False)
    pool = client.connection_pool
    pool.connection_kwargs["protocol"] = protocol
    if parser == "python":
        pool.connection_kwargs["parser_class"] = (
            _AsyncRESP3Parser if protocol == 3 else (_AsyncRESP2Parser)
        )
    try:
        script = await _loaded(client, FAIL_ON_BAD)
        replies = await asyncio.gather(
            run_script(script, ["a"], ["x" * 100_000]),
            run_script(script, ["b"], ["bad"]),
            run_script(script, ["c"], ["ok"]),
            return_exceptions=True,
        )
        assert replies[0] == "x" * 100_000
        assert isinstance(replies[1], ResponseError)
        assert replies[2] == "ok"
        (connection,) = pool._available_connections
        assert type(connection._parser).__name__ == (
            "_AsyncHiredisParser" if parser == "hiredis" else f"_AsyncRESP{protocol}Parser"
        )
    finally:
        await client.aclose()


async def test_the_redis_py_parser_internals_the_batch_reads_are_there(redis_url: str) -> None:
    pool = aioredis.ConnectionPool.from_url(redis_url)
    connection = pool.make_connection()  # type: ignore[no-untyped-call]
    parser = connection._parser
    assert isinstance(parser, _AsyncHiredisParser)
    assert connection.protocol in (2, "2", None)  # RESP2 unless asked
    assert parser._read_size > 0
    await connection.connect()
    try:
        assert parser._connected is True
        assert parser._stream is connection._reader
        await connection.send_command("PING")
        assert parser._reader.gets() is NOT_ENOUGH_DATA  # the reply is not read yet
        parser._reader.feed(await parser._stream.read(parser._read_size))
        assert parser._reader.gets() == b"PONG"
    finally:
        await connection.disconnect()
    assert parser._connected is False


@pytest.mark.parametrize("where", [0, 1], ids=["first", "second"])
async def test_a_script_redis_does_not_know_is_loaded(client: aioredis.Redis, where: int) -> None:
    known = await _loaded(client, ECHO)
    unknown = client.register_script(f"return 'new' -- {uuid.uuid4()}")
    calls = [run_script(known, ["k"], ["1"]), run_script(known, ["k"], ["2"])]
    calls.insert(where, run_script(unknown, [], []))
    expected: list[object] = [["1", "k"], ["2", "k"]]
    expected.insert(where, "new")
    assert await asyncio.gather(*calls) == expected


async def test_a_cancelled_caller_leaves_the_connection_in_step(client: aioredis.Redis) -> None:
    script = await _loaded(client, ECHO)
    calls = [asyncio.ensure_future(run_script(script, ["k"], [str(i)])) for i in range(3)]
    await asyncio.sleep(0)  # each call has added its command
    calls[1].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == ["0", "k"]
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] == ["2", "k"]
    assert await run_script(script, ["k"], ["next"]) == ["next", "k"]


async def test_a_connection_killed_between_batches_is_retried_on_a_new_one(
    client: aioredis.Redis, redis_url: str
) -> None:
    script = await _loaded(client, ECHO)
    assert await run_script(script, ["k"], ["first"]) == ["first", "k"]
    victim = await client.client_id()  # the pool's one connection
    killer = aioredis.Redis.from_url(redis_url)
    try:
        assert await killer.client_kill_filter(_id=victim) == 1
    finally:
        await killer.aclose()
    calls = [run_script(script, ["k"], [str(i)]) for i in range(3)]
    assert await asyncio.gather(*calls) == [[str(i), "k"] for i in range(3)]
    assert await client.client_id() != victim


async def test_every_caller_hears_that_redis_cannot_be_reached() -> None:
    client = make_client("redis://127.0.0.1:1", max_connections=2, wait_for_connection=False)
    unhandled: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        script = client.register_script(ECHO)
        calls = [run_script(script, ["k"], [str(i)]) for i in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(result, RedisConnectionError) for result in results), results
        assert _connections(client) == 1  # the batch
        assert len(client.connection_pool._in_use_connections) == 0
        await asyncio.sleep(0)  # the batch's task has ended
        gc.collect()  # a task that ended with an error nobody awaited is reported here
        assert unhandled == []
    finally:
        asyncio.get_running_loop().set_exception_handler(None)
        await client.aclose()


async def test_a_reply_that_never_comes_times_out_as_redis_py_reports_it(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=2, wait_for_connection=False)
    pool = client.connection_pool
    pool.connection_kwargs["socket_timeout"] = 0.1
    try:
        blocked = pool.batcher.send(("BLPOP", f"corral-test-batch-{uuid.uuid4()}", 5))
        with pytest.raises(RedisTimeoutError, match="Timeout reading from"):
            await blocked
        assert await pool.batcher.send(("ECHO", "after")) == "after"
        (connection,) = pool._available_connections
        assert connection.socket_timeout == 0.1
    finally:
        await client.aclose()
