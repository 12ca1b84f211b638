"""alternates=: failover across endpoints; every resolved address within one attempt."""

from __future__ import annotations

import pytest

import connman
from connman import Cause, Endpoint
from connman._endpoints import Route
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder


def test_route_moves_on_failure_and_stays_on_success() -> None:
    a, b, c = Endpoint(1, "a"), Endpoint(2, "b"), Endpoint(3, "c")
    route = Route([a, b, c])
    assert route.current == a
    assert route.failed() == b
    assert route.current == b  # it worked: a later loss starts here again
    assert route.failed() == c
    assert route.failed() == a  # wraps around
    assert route.endpoints == (a, b, c)
    with pytest.raises(ValueError, match="at least one endpoint"):
        Route([])


async def test_fails_over_and_starts_again_with_the_endpoint_that_last_worked(
    down_server: EchoServer, server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    first, second = down_server, server
    conn = cm.connect(
        first.port, "127.0.0.1", **recorder.callbacks(), alternates=[(second.port, "127.0.0.1")], backoff=FAST
    )
    assert await conn.wait_connected(BOUND)
    assert conn.stats.failed_attempts == 1  # the first endpoint, refused
    assert conn.last_cause is Cause.REFUSED
    assert conn.peername == ("127.0.0.1", second.port)
    assert conn.stats.endpoint == Endpoint(second.port, "127.0.0.1")
    assert conn.endpoint == Endpoint(first.port, "127.0.0.1")  # its identity stays the first

    await first.start()  # both up now: a loss goes back to the one that worked, the second
    second.drop_clients()
    await recorder.wait("connect", 2)
    assert conn.peername == ("127.0.0.1", second.port)
    assert conn.stats.failed_attempts == 1  # no attempt went to the first meanwhile

    await second.stop()  # the second is gone: the next attempt to it fails, the one after goes first
    await recorder.wait("connect", 3)
    assert conn.peername == ("127.0.0.1", first.port)
    assert conn.stats.endpoint == Endpoint(first.port, "127.0.0.1")
    conn.write(b"still here")
    await recorder.wait_bytes(10)


async def test_every_endpoint_down_keeps_rotating(
    down_server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    other = EchoServer()
    await other.start()
    await other.stop()
    conn = cm.connect(
        down_server.port,
        "127.0.0.1",
        **recorder.callbacks(),
        alternates=[(other.port, "127.0.0.1")],
        backoff=FAST,
    )
    await recorder.until(lambda: conn.stats.failed_attempts >= 4)
    await other.start()
    try:
        assert await conn.wait_connected(BOUND)
        assert conn.peername == ("127.0.0.1", other.port)
    finally:
        await other.stop()


async def test_a_resolver_list_is_tried_in_order_within_one_attempt(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # The server listens on 127.0.0.1 only: 127.0.0.2 (loopback too) refuses its port.
    listening = EchoServer("127.0.0.1")
    await listening.start()
    try:
        seen: list[tuple[str, int]] = []

        async def resolver(host: str, port: int) -> list[str]:
            seen.append((host, port))
            return ["127.0.0.2", "127.0.0.1"]

        conn = cm.connect(listening.port, "svc.test", **recorder.callbacks(), resolver=resolver, backoff=FAST)
        assert await conn.wait_connected(BOUND)
        assert conn.stats.failed_attempts == 0
        assert conn.peername == ("127.0.0.1", listening.port)
        assert seen == [("svc.test", listening.port)]

        sync = cm.connect(listening.port, "svc.test", resolver=lambda host, port: ("127.0.0.3", "127.0.0.1"))
        assert await sync.wait_connected(BOUND)
        empty = cm.connect(listening.port, "svc.test", resolver=lambda host, port: [], max_attempts=1)
        await empty.wait_connected(BOUND)
        assert "resolver returned no address (an empty list)" in str(empty.last_error)
    finally:
        await listening.stop()


@pytest.mark.parametrize(
    ("alternates", "error", "message"),
    [
        ("127.0.0.1:80", TypeError, r"alternates must be a list of \(port, host\) pairs, not '127"),
        ([("127.0.0.1", 80)], TypeError, "entry 0: port must be an int"),
        ([(80, "127.0.0.1"), (0, "127.0.0.1")], ValueError, r"entry 1: port must be in 1\.\.65535"),
        ([(80,)], TypeError, r"entry 0 is \(80,\)"),
        ([(80, "db:80")], ValueError, "entry 0: host must be"),
    ],
)
def test_bad_alternates(alternates: object, error: type[Exception], message: str) -> None:
    manager = connman.ConnectionManager()
    with pytest.raises(error, match=message):
        manager.connect(1, "127.0.0.1", alternates=alternates)  # type: ignore[arg-type]
    assert len(manager) == 0
