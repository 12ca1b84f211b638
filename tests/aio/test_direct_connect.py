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
import subprocess
import sys
import textwrap

import pytest

import connman
from connman import Cause
from connman._dial import direct_address
from connman._options import check_endpoint, check_options
from connman.testing import EchoServer, SynBlackhole
from tests.conftest import BOUND, MS, SLOW, Recorder, assert_nothing_pending, until_conn


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


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
        await until_conn(conn, lambda: conn.is_connected)
        sock = conn.socket
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert conn.peername == ("127.0.0.1", server.port)
        await conn.disconnect()
    assert_nothing_pending()


async def test_an_ipv6_address_connects_directly_and_carries_data(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer("::1") as server:
        conn = cm.connect(server.port, "::1", **recorder.callbacks())
        assert await conn.wait_connected(BOUND)
        sock = conn.socket
        assert sock is not None and sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.write(b"over [::1]")
        await recorder.wait_bytes(10)
        assert bytes(recorder.data) == b"over [::1]"
        await conn.disconnect()
    assert_nothing_pending()


async def test_a_refusal_is_asyncios_error(cm: connman.ConnectionManager) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: refused
        conn = cm.connect(port, "127.0.0.1", backoff=SLOW)
        await until_conn(conn, lambda: conn.stats.failed_attempts == 1)
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
            await until_conn(conn, lambda: conn.stats.failed_attempts == 1)
            assert isinstance(conn.last_error, connman.ConnectTimeout), repr(conn.last_error)
            assert open_descriptors() == before  # closed; the next attempt waits 30 s (SLOW)
            await conn.disconnect()
        assert open_descriptors() == before
    assert_nothing_pending()


async def test_a_connect_refused_at_the_call_is_a_failed_attempt(cm: connman.ConnectionManager) -> None:
    # A link-local address without its scope: connect() fails at once (EINVAL), no packet leaves.
    before = open_descriptors()
    conn = cm.connect(80, "fe80::1", backoff=SLOW)
    await until_conn(conn, lambda: conn.stats.failed_attempts == 1)
    assert isinstance(conn.last_error, OSError) and conn.last_error.errno == errno.EINVAL, repr(
        conn.last_error
    )
    assert open_descriptors() == before
    assert await conn.disconnect()
    assert_nothing_pending()


_OUT_OF_DESCRIPTORS = textwrap.dedent(
    """
    import asyncio, errno, os, resource, sys
    import connman

    async def main(port):
        used = len(os.listdir("/proc/self/fd"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))  # room for a few sockets
        async with connman.ConnectionManager() as cm:
            slow = connman.Backoff(initial=30, cap=30, jitter="none")
            conns = [cm.connect(port, "127.0.0.1", backoff=slow) for _ in range(20)]
            async with asyncio.timeout(5):
                for conn in conns:
                    while not (conn.is_connected or conn.stats.failed_attempts):
                        await conn.wait_changed()
            failed = [conn for conn in conns if not conn.is_connected]
            assert failed, "every connection got a socket: the limit did not bite"
            errors = [conn.last_error for conn in failed]
            assert all(error.errno == errno.EMFILE for error in errors), errors
            assert len(failed) < len(conns)
            assert all(await asyncio.gather(*(conn.disconnect(timeout=5) for conn in conns)))
        print("ok", len(conns) - len(failed), "connected,", len(failed), "out of descriptors")

    asyncio.run(main(int(sys.argv[1])))
    """
)


async def test_out_of_descriptors_is_a_failed_attempt_not_a_stuck_one() -> None:
    # Before: socket() raising EMFILE escaped the attempt; the connection stayed CONNECTING for good
    # and disconnect() waited out its timeout. The client runs alone under a low descriptor limit.
    async with EchoServer() as server:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _OUT_OF_DESCRIPTORS, str(server.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok "), done.stdout


def test_disconnect_while_the_loop_is_not_running_closes_the_socket() -> None:
    # `loop.run_until_complete(conn.disconnect())`: disconnect() acts at the call, between runs.
    loop = asyncio.new_event_loop()
    try:
        with SynBlackhole() as hole:
            cm = connman.ConnectionManager()

            async def connect() -> connman.Connection:
                conn = cm.connect(hole.port, "127.0.0.1", backoff=SLOW, connect_timeout=None)
                await asyncio.sleep(20 * MS)  # the SYN is out, unanswered
                return conn

            before = open_descriptors()
            conn = loop.run_until_complete(connect())
            assert open_descriptors() == before + 1
            assert loop.run_until_complete(conn.disconnect()) is True
            assert open_descriptors() == before
            selector = loop._selector  # type: ignore[attr-defined]
            assert [key for key in selector.get_map().values() if key.data[1] is not None] == []
            loop.run_until_complete(cm.aclose())
    finally:
        loop.close()


def test_a_socket_connecting_when_its_loop_ended_is_closed_by_disconnect() -> None:
    loop = asyncio.new_event_loop()
    with SynBlackhole() as hole:
        cm = connman.ConnectionManager()

        async def connect() -> connman.Connection:
            conn = cm.connect(hole.port, "127.0.0.1", backoff=SLOW, connect_timeout=None)
            await asyncio.sleep(20 * MS)
            return conn

        conn = loop.run_until_complete(connect())
        loop.close()  # the application's loop ended with the connection still connecting
        connecting = open_descriptors()  # the loop's own descriptors are gone, the attempt's socket not
        assert conn.disconnect(timeout=1)  # from plain code now: the loop is gone
        assert open_descriptors() == connecting - 1  # the attempt's socket, closed by hand
