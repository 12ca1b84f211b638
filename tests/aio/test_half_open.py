"""Half-open detection: TCP keepalive and TCP_USER_TIMEOUT are set on the socket; idle_timeout drops
a connection on which nothing arrives (the only way to notice a paused peer, whose kernel still
answers keepalive probes)."""

from __future__ import annotations

import asyncio
import socket

import pytest

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, MS, Recorder


async def test_keepalive_is_on_by_default_with_the_documented_values(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    conn = cm.connect(server.port, "127.0.0.1")
    assert await conn.wait_connected(BOUND)
    sock = conn.socket
    assert sock is not None
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 15
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


async def test_keepalive_and_user_timeout_options(server: EchoServer, cm: connman.ConnectionManager) -> None:
    conn = cm.connect(server.port, "127.0.0.1", keepalive=(1, 1, 3), user_timeout=2.5)
    off = cm.connect(server.port, "127.0.0.1", keepalive=None)
    assert await conn.wait_connected(BOUND)
    assert await off.wait_connected(BOUND)
    assert conn.socket is not None and off.socket is not None
    assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 1
    assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
    assert off.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


async def test_idle_timeout_drops_a_silent_peer_and_says_why(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    errors: list[BaseException | None] = []

    def on_reset() -> None:
        errors.append(conn.last_error)
        recorder.on_reset()

    async with EchoServer(mode="silent") as silent:
        conn = cm.connect(
            silent.port,
            "127.0.0.1",
            on_connect=recorder.on_connect,
            on_reset=on_reset,
            idle_timeout=50 * MS,
            backoff=FAST,
        )
        await recorder.wait("reset")
        await recorder.wait("connect", 2)
    assert isinstance(errors[0], TimeoutError)
    assert "no data received for 0.05 s (idle_timeout)" in str(errors[0])


async def test_idle_timeout_keeps_a_talking_peer(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), idle_timeout=30 * MS)
    await recorder.wait("connect")
    for n in range(1, 11):  # ten round trips, 10 ms apart: about three idle periods
        conn.write(b"x")
        await recorder.wait_bytes(n)
        await asyncio.sleep(10 * MS)  # pacing the traffic, not synchronising
    assert recorder.count("reset") == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keepalive": (1, 1)}, "keepalive must be"),
        ({"keepalive": (0, 1, 3)}, "keepalive idle must be"),
        ({"keepalive": (1, 1, 0)}, "keepalive count must be >= 1"),
        ({"user_timeout": 0}, "user_timeout must be"),
        ({"idle_timeout": -1}, "idle_timeout must be"),
    ],
)
async def test_bad_half_open_options(
    cm: connman.ConnectionManager, options: dict[str, object], message: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        cm.connect(80, "127.0.0.1", **options)  # type: ignore[arg-type]
