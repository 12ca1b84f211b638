"""The attempt that connects its socket itself (asyncio's selector loop, a numeric address).

`ManagedProtocol.connect` replaces `create_connection(host, port)` there (W4, #16). The promises are
those of any attempt: the transport is the same (TCP_NODELAY set, the socket exposed), a refusal is
`ConnectionRefusedError` like asyncio's, a blackholed connect times out after `connect_timeout`,
and an attempt stopped while its socket connects leaves nothing behind: no socket, no writer
callback, no task, no timer.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

import pytest

import connman
from connman import Cause
from connman._dial import direct_address
from connman._options import check_endpoint, check_options
from connman.testing import EchoServer, SynBlackhole
from tests.conftest import BOUND, MS, SLOW, assert_nothing_pending


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def until(conn: connman.Connection, done: object) -> None:
    async with asyncio.timeout(BOUND):
        while not done():  # type: ignore[operator]
            await conn.wait_changed()


def test_which_attempts_connect_their_socket_themselves() -> None:
    loop = asyncio.new_event_loop()
    try:
        plain = check_options({})
        assert direct_address(loop, check_endpoint(80, "127.0.0.1"), plain) == (
            socket.AF_INET,
            ("127.0.0.1", 80),
        )
        assert direct_address(loop, check_endpoint(80, "::1"), plain) == (socket.AF_INET6, ("::1", 80, 0, 0))
        assert direct_address(loop, check_endpoint(80, "localhost"), plain) is None  # a name
        with_option = check_options({"local_addr": ("127.0.0.1", 0)})
        assert direct_address(loop, check_endpoint(80, "127.0.0.1"), with_option) is None
    finally:
        loop.close()


async def test_the_transport_is_create_connections(cm: connman.ConnectionManager) -> None:
    async with EchoServer() as server:
        conn = cm.connect(server.port, "127.0.0.1")
        await until(conn, lambda: conn.is_connected)
        sock = conn.socket
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert conn.peername == ("127.0.0.1", server.port)
        await conn.disconnect()
    assert_nothing_pending()


async def test_a_refusal_is_asyncios_error(cm: connman.ConnectionManager) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: refused
        conn = cm.connect(port, "127.0.0.1", backoff=SLOW)
        await until(conn, lambda: conn.stats.failed_attempts == 1)
    error = conn.last_error
    assert isinstance(error, ConnectionRefusedError), repr(error)
    assert error.errno == errno.ECONNREFUSED
    assert f"Connect call failed ('127.0.0.1', {port})" in str(error)
    assert conn.last_cause is Cause.REFUSED
    await conn.disconnect()
    assert_nothing_pending()


@pytest.mark.parametrize("stop", ["disconnect", "reconnect", "timeout"])
async def test_an_attempt_stopped_while_its_socket_connects_leaves_nothing(
    cm: connman.ConnectionManager, stop: str
) -> None:
    with SynBlackhole() as hole:
        before = open_descriptors()
        conn = cm.connect(
            hole.port, "127.0.0.1", backoff=SLOW, connect_timeout=None if stop != "timeout" else 50 * MS
        )
        await asyncio.sleep(20 * MS)  # the SYN is out, unanswered
        assert open_descriptors() == before + 1
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert tasks == []  # no task while the socket connects
        if stop == "disconnect":
            await conn.disconnect()
        elif stop == "reconnect":
            conn.reconnect()  # a new attempt, the old socket closed
            await asyncio.sleep(20 * MS)
            assert open_descriptors() == before + 1
            await conn.disconnect()
        else:
            await until(conn, lambda: conn.stats.failed_attempts == 1)
            assert isinstance(conn.last_error, connman.ConnectTimeout), repr(conn.last_error)
            assert open_descriptors() == before  # closed; the next attempt waits 30 s (SLOW)
            await conn.disconnect()
        assert open_descriptors() == before
    assert_nothing_pending()
