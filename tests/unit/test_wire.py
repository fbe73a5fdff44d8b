"""The lean redis-py plumbing (``adapters/bullmq/wire.py``): hiredis packs the very bytes
redis-py's packer does, the pools hand out and take back connections correctly against a real
Redis, and the redis-py internals the pools rely on are still there."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError

from corral.adapters.bullmq.connection import SOCKET_TIMEOUT_S, PoolExhausted, make_client
from corral.adapters.bullmq.wire import LeanPool, LeanWaitingPool, hiredis_packing, run_script

ARGS = [
    ("SET", "k", "v"),
    ("EVALSHA", "abc", 2, "a", "b", 1.5, -3, 10**20, 0.1, 1e300, b"\x00\xff", "é✓ 中"),
    ("HSET", "k", "f", "x" * 100_000),  # above redis-py's 6,000-byte buffer cutoff
    ("CONFIG GET", "maxmemory"),  # multi-word: split by the stock packer
    ("PING",),
]


@pytest.mark.parametrize("args", ARGS, ids=lambda a: str(a[0]))
def test_hiredis_packing_sends_the_bytes_redis_py_would(args: tuple[object, ...]) -> None:
    stock = aioredis.Connection()
    fast = hiredis_packing(aioredis.Connection)()
    assert b"".join(fast.pack_command(*args)) == b"".join(stock.pack_command(*args))
    commands = [args, ("GET", "k")]
    assert b"".join(fast.pack_commands(commands)) == b"".join(stock.pack_commands(commands))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_invalid_arguments_still_raise_redis_pys_error(bad: object) -> None:
    fast = hiredis_packing(aioredis.Connection)()
    with pytest.raises(DataError):
        fast.pack_command("SET", "k", bad)  # type: ignore[arg-type]


def test_every_connection_kind_gets_its_own_packing_class() -> None:
    tcp = hiredis_packing(aioredis.Connection)
    unix = hiredis_packing(aioredis.UnixDomainSocketConnection)
    assert tcp is hiredis_packing(aioredis.Connection)
    assert issubclass(unix, aioredis.UnixDomainSocketConnection)
    assert tcp is not unix


def test_the_redis_py_pool_internals_the_pools_use_are_there() -> None:
    pool = aioredis.ConnectionPool(max_connections=2)
    assert pool._available_connections == []
    assert pool._in_use_connections == set()
    connection = pool.get_available_connection()  # type: ignore[no-untyped-call]
    assert connection in pool._in_use_connections
    assert callable(connection.should_reconnect)
    assert connection.is_connected is False
    blocking = aioredis.BlockingConnectionPool(max_connections=1, timeout=1)
    assert isinstance(blocking._condition, asyncio.Condition)
    assert blocking.can_get_connection()


async def test_the_clients_use_the_lean_pools(redis_url: str) -> None:
    waiting = make_client(redis_url, max_connections=3)
    plain = make_client(redis_url, max_connections=3, wait_for_connection=False)
    try:
        assert isinstance(waiting.connection_pool, LeanWaitingPool)
        assert isinstance(plain.connection_pool, LeanPool)
        assert await waiting.ping()
        assert await plain.ping()
    finally:
        await waiting.aclose()
        await plain.aclose()


async def test_a_waiting_pool_serves_a_thousand_callers_on_three_connections(
    redis_url: str,
) -> None:
    client = make_client(redis_url, max_connections=3)
    try:
        replies = await asyncio.gather(*(client.echo(str(i)) for i in range(1000)))
        assert replies == [str(i) for i in range(1000)]
        pool = client.connection_pool
        assert len(pool._in_use_connections) == 0
        assert len(pool._available_connections) == 3
    finally:
        await client.aclose()


async def test_a_waiting_pool_still_fails_when_no_connection_frees_up(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=1, pool_timeout_s=0.2)
    blocker = asyncio.ensure_future(client.blpop(["corral-test-wire-never"], timeout=2))
    try:
        await asyncio.sleep(0.1)
        with pytest.raises(PoolExhausted):
            await client.connection_pool.get_connection()
    finally:
        blocker.cancel()
        await asyncio.gather(blocker, return_exceptions=True)
        await client.aclose()


async def test_a_connection_cancelled_mid_reply_is_not_reused_dirty(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=1, wait_for_connection=False)
    try:
        waiting = asyncio.ensure_future(client.blpop(["corral-test-wire-never"], timeout=1))
        await asyncio.sleep(0.1)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert await client.echo("after") == "after"
    finally:
        await client.aclose()


async def test_small_and_large_writes_arrive_and_keep_the_socket_timeout(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=1, wait_for_connection=False)
    key = "corral-test-wire-big"
    try:
        assert await client.echo("small") == "small"
        big = "x" * 200_000  # above the write buffer's high-water mark: redis-py's own path
        await client.set(key, big)
        assert await client.get(key) == big
        async with client.pipeline(transaction=False) as pipe:
            pipe.echo("a").echo("b")
            assert await pipe.execute() == ["a", "b"]
        (connection,) = client.connection_pool._available_connections
        assert connection.socket_timeout == SOCKET_TIMEOUT_S
    finally:
        await client.delete(key)
        await client.aclose()


SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
return {redis.call('GET', KEYS[1]), tonumber(ARGV[2]) * 2, false, {ARGV[3]}, #KEYS}
"""


async def test_run_script_answers_as_the_script_object_does(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=2, wait_for_connection=False)
    key = "corral-test-wire-script"
    try:
        script = client.register_script(SCRIPT)
        keys, args = [key, f"{key}-2"], ["é✓", 21, b"\x00x"]
        assert await run_script(script, keys, args) == await script(keys=keys, args=args)
        assert await run_script(script, keys, args) == ["é✓", 42, None, ["\x00x"], 2]
        assert len(client.connection_pool._in_use_connections) == 0
    finally:
        await client.delete(key)
        await client.aclose()


async def test_run_script_loads_a_script_redis_does_not_know(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=1, wait_for_connection=False)
    try:
        unknown = client.register_script(f"return ARGV[1] -- {uuid.uuid4()}")
        assert await client.script_exists(unknown.sha) == [False]
        assert await run_script(unknown, [], ["loaded"]) == "loaded"
        assert await client.script_exists(unknown.sha) == [True]
        assert len(client.connection_pool._in_use_connections) == 0
    finally:
        await client.aclose()


async def test_run_script_raises_the_scripts_error_and_keeps_the_connection(
    redis_url: str,
) -> None:
    client = make_client(redis_url, max_connections=1, wait_for_connection=False)
    try:
        failing = client.register_script("return redis.error_reply('NOPE refused')")
        with pytest.raises(ResponseError, match="NOPE refused"):
            await run_script(failing, [], [])
        assert await client.echo("after") == "after"
        assert len(client.connection_pool._available_connections) == 1
    finally:
        await client.aclose()


@pytest.mark.parametrize("wait", [True, False], ids=["waiting", "plain"])
async def test_a_connection_that_cannot_connect_goes_back_to_the_pool(wait: bool) -> None:
    client = make_client(
        "redis://127.0.0.1:1", max_connections=1, connect_timeout_s=1, wait_for_connection=wait
    )
    pool = client.connection_pool
    try:
        for _ in range(2):  # the second call finds the one connection free again
            with pytest.raises(RedisConnectionError):
                await pool.get_connection()
            assert len(pool._in_use_connections) == 0
            assert len(pool._available_connections) == 1
    finally:
        await client.aclose()


async def test_a_due_health_check_still_pings_first_and_only_when_due(redis_url: str) -> None:
    client = make_client(redis_url, max_connections=1, wait_for_connection=False)
    try:
        assert await client.echo("connect") == "connect"
        (connection,) = client.connection_pool._available_connections
        assert connection.health_check_interval > 0
        pings: list[int] = []
        send_ping = connection._send_ping

        async def counted_ping() -> None:
            pings.append(1)
            await send_ping()

        connection._send_ping = counted_ping
        assert await client.echo("not due") == "not due"
        assert pings == []
        connection.next_health_check = -1.0  # due
        assert await client.echo("due") == "due"
        assert pings == [1]
    finally:
        await client.aclose()
