"""Pools against several real servers: membership, liveness, picking, waiting, disconnecting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder


@pytest.fixture
async def servers() -> AsyncIterator[list[EchoServer]]:
    started = [await EchoServer().start() for _ in range(3)]
    yield started
    for server in started:
        await server.stop()


async def all_up(pool: connman.Pool) -> None:
    for conn in pool:
        assert await conn.wait_connected(BOUND)


async def test_create_and_get_pools(cm: connman.ConnectionManager) -> None:
    pool = cm.create_pool("cache")
    assert cm.get_pool("cache") is pool
    assert pool.name == "cache"
    assert cm.pools == {"cache": pool}
    with pytest.raises(connman.PoolExists, match="pool 'cache' already exists; use get_pool\\('cache'\\)"):
        cm.create_pool("cache")
    with pytest.raises(connman.PoolNotFound, match="no pool named 'other' \\(pools: 'cache'\\)"):
        cm.get_pool("other")
    with pytest.raises(LookupError):
        cm.get_pool("other")


async def test_seed_readme_pool_example_keeps_callbacks_straight(
    servers: list[EchoServer], cm: connman.ConnectionManager
) -> None:
    # The original's Pool.addConnection passed onData to the reset slot; keywords make that impossible.
    recorder = Recorder()
    pool = cm.create_pool("myPool")
    conn = pool.add_connection(
        servers[0].port,
        "127.0.0.1",
        on_connect=lambda c: c.write(b"ping\r\n"),
        on_reset=recorder.on_reset,
        on_data=recorder.on_data,
    )
    await recorder.wait_bytes(6)
    assert bytes(recorder.data) == b"ping\r\n"
    assert recorder.count("reset") == 0
    assert cm.get_pool("myPool") is pool
    assert list(pool) == [conn]
    assert await cm.get_pool("myPool").disconnect()
    assert len(pool) == 0


async def test_members_go_down_and_come_back_and_pick_follows(
    servers: list[EchoServer], cm: connman.ConnectionManager
) -> None:
    pool = cm.create_pool("p")
    members = [pool.add_connection(s.port, "127.0.0.1", backoff=FAST) for s in servers]
    await all_up(pool)
    assert len(pool) == 3
    assert pool.connected() == members
    assert [pool.pick() for _ in range(6)] == members * 2
    owners = {key: pool.pick(key) for key in range(300)}
    assert set(owners.values()) == set(members)

    down = members[1]
    await servers[1].stop()
    rec = Recorder()
    await rec.until(lambda: not down.is_connected)
    assert pool.connected() == [members[0], members[2]]
    assert {pool.pick() for _ in range(10)} == {members[0], members[2]}
    for key, owner in owners.items():
        picked = pool.pick(key)
        assert picked is not down
        if owner is not down:
            assert picked is owner  # only the keys of the member that went down move

    await servers[1].start()
    assert await down.wait_connected(BOUND)
    assert {key: pool.pick(key) for key in range(300)} == owners


async def test_pick_with_nobody_up_raises_not_connected(cm: connman.ConnectionManager) -> None:
    pool = cm.create_pool("empty")
    with pytest.raises(connman.NotConnected, match="no member of pool 'empty' is connected \\(0 members\\)"):
        pool.pick()
    pool.add_connection(9, "127.0.0.1", backoff=FAST)
    with pytest.raises(connman.NotConnected, match="\\(1 members\\)"):
        pool.pick("key")


async def test_wait_any_returns_the_first_member_up(
    cm: connman.ConnectionManager, down_server: EchoServer
) -> None:
    server = down_server
    pool = cm.create_pool("p")
    assert await pool.wait_any(0.05) is None
    conn = pool.add_connection(server.port, "127.0.0.1", backoff=FAST)
    assert await pool.wait_any(0.05) is None
    await server.start()
    assert await pool.wait_any(BOUND) is conn


async def test_wait_any_sees_members_added_while_waiting(
    servers: list[EchoServer], cm: connman.ConnectionManager
) -> None:
    import asyncio

    pool = cm.create_pool("p")
    waiter = asyncio.ensure_future(pool.wait_any(BOUND))
    await asyncio.sleep(0)
    conn = pool.add_connection(servers[0].port, "127.0.0.1")
    assert await waiter is conn


async def test_remove_and_membership(servers: list[EchoServer], cm: connman.ConnectionManager) -> None:
    pool = cm.create_pool("p")
    first = pool.add_connection(servers[0].port, "127.0.0.1")
    second = pool.add_connection(servers[0].port, "127.0.0.1")  # same endpoint twice
    assert first in pool and second in pool
    pool.remove(first)
    assert first not in pool
    assert len(pool) == 1
    assert first in cm.connections  # still managed
    with pytest.raises(ValueError, match="is not a member of pool 'p'"):
        pool.remove(first)
    assert repr(pool).startswith("<Pool 'p' [")


async def test_disconnect_all_reaches_pools_and_single_connections(servers: list[EchoServer]) -> None:
    cm = connman.ConnectionManager()
    a = cm.create_pool("a")
    b = cm.create_pool("b")
    conns = [
        a.add_connection(servers[0].port, "127.0.0.1"),
        a.add_connection(servers[1].port, "127.0.0.1"),
        b.add_connection(servers[2].port, "127.0.0.1"),
        cm.connect(servers[0].port, "127.0.0.1"),
        cm.connect(servers[0].port, "127.0.0.1"),
    ]
    for conn in conns:
        assert await conn.wait_connected(BOUND)
    assert sum(s.clients for s in servers) == 5
    assert await cm.disconnect_all()
    assert all(conn.state is connman.State.CLOSED for conn in conns)
    assert len(cm) == len(a) == len(b) == 0
    rec = Recorder()
    await rec.until(lambda: sum(s.clients for s in servers) == 0)
