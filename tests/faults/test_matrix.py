"""The fault matrix: every fault injected for real, in three variants each.

- recover: the callbacks fire in order (connect, reset, connect), `last_cause` names the fault, the
  connection comes back, and every record the application queued while down reaches the server once,
  in order.
- disconnect: `disconnect()` races the fault: the connection ends CLOSED, its socket closed, and no
  callback fires after the call.
- raising: every callback raises; each error is reported to `on_error`, and recovery goes on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

import connman
from connman import Cause, State
from connman.testing import EchoServer, FaultProxy
from tests.conftest import BOUND, FAST, MS, Recorder

QUEUED = [b"<q%d>" % n for n in range(5)]


@dataclass
class Lab:
    server: EchoServer
    proxy: FaultProxy


@dataclass(frozen=True)
class Fault:
    name: str
    via_proxy: bool
    causes: frozenset[Cause]
    inject: Callable[[Lab], Awaitable[None]]
    heal: Callable[[Lab], Awaitable[None]]
    idle_timeout: float | None = None


async def nothing(lab: Lab) -> None:
    pass


async def stop_server(lab: Lab) -> None:
    await lab.server.stop()


async def stop_server_with_rst(lab: Lab) -> None:
    await lab.server.stop(reset=True)


async def start_server(lab: Lab) -> None:
    await lab.server.start()


async def proxy_rst(lab: Lab) -> None:
    lab.proxy.reset_all()


async def proxy_fin(lab: Lab) -> None:
    lab.proxy.close_all()


async def proxy_refuse(lab: Lab) -> None:
    await lab.proxy.refuse()
    lab.proxy.reset_all()


async def proxy_accept(lab: Lab) -> None:
    await lab.proxy.start()


async def proxy_limit(lab: Lab) -> None:
    lab.proxy.limit_bytes = 8  # the next record goes over it; later connections are cut the same way
    lab.server.broadcast(b"0123456789")


async def proxy_unlimit(lab: Lab) -> None:
    lab.proxy.limit_bytes = None


async def proxy_stall(lab: Lab) -> None:
    lab.proxy.stall(True)


async def proxy_unstall(lab: Lab) -> None:
    lab.proxy.stall(False)


async def proxy_blackhole(lab: Lab) -> None:
    lab.proxy.blackhole = True


async def proxy_no_blackhole(lab: Lab) -> None:
    lab.proxy.blackhole = False


FAULTS = [
    Fault("server-restart", False, frozenset({Cause.EOF}), stop_server, start_server),
    Fault("server-rst", False, frozenset({Cause.RESET}), stop_server_with_rst, start_server),
    Fault("rst-mid-stream", True, frozenset({Cause.RESET}), proxy_rst, nothing),
    Fault("fin-mid-stream", True, frozenset({Cause.EOF}), proxy_fin, nothing),
    Fault("refuse-a-while", True, frozenset({Cause.RESET}), proxy_refuse, proxy_accept),
    Fault("limit-bytes", True, frozenset({Cause.EOF}), proxy_limit, proxy_unlimit),
    Fault("stall", True, frozenset({Cause.HALF_OPEN}), proxy_stall, proxy_unstall, idle_timeout=100 * MS),
    Fault("blackhole", True, frozenset({Cause.HALF_OPEN}), proxy_blackhole, proxy_no_blackhole, 100 * MS),
]


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    server = await EchoServer(keep_data=True).start()
    proxy = await FaultProxy(server.port).start()
    yield Lab(server, proxy)
    await proxy.stop()
    await server.stop()


def open_connection(
    lab: Lab, fault: Fault, cm: connman.ConnectionManager, recorder: Recorder, *, raising: bool = False
) -> tuple[connman.Connection, list[BaseException]]:
    errors: list[BaseException] = []
    causes: list[Cause | None] = []

    def on_connect(conn: connman.Connection) -> None:
        recorder.on_connect(conn)
        if raising:
            raise RuntimeError("on_connect failed")

    def on_data(data: bytes) -> None:
        recorder.on_data(data)
        if raising:
            raise RuntimeError("on_data failed")

    def on_reset() -> None:
        causes.append(conn.last_cause)
        recorder.add("reset", conn.last_cause)
        if recorder.count("reset") == 1:
            for record in QUEUED:  # down now: these wait in the queue for the next connection
                conn.write(record)
        if raising:
            raise RuntimeError("on_reset failed")

    port = lab.proxy.port if fault.via_proxy else lab.server.port
    conn = cm.connect(
        port,
        "127.0.0.1",
        on_connect=on_connect,
        on_data=on_data,
        on_reset=on_reset,
        on_error=errors.append,
        backoff=FAST,
        queue_while_down=1024,
        idle_timeout=fault.idle_timeout,
    )
    return conn, errors


async def establish(conn: connman.Connection, recorder: Recorder) -> None:
    await recorder.wait("connect")
    conn.write(b"<hello>")
    await recorder.wait_bytes(len(b"<hello>"))


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_recovers_and_loses_no_queued_byte(
    fault: Fault, lab: Lab, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn, errors = open_connection(lab, fault, cm, recorder)
    await establish(conn, recorder)
    await fault.inject(lab)
    await recorder.wait("reset")
    assert recorder.events[-1][1] in fault.causes
    await fault.heal(lab)
    await recorder.until(lambda: conn.is_connected and recorder.count("connect") >= 2)
    kinds = [kind for kind in recorder.kinds() if kind != "data"]
    assert kinds[:3] == ["connect", "reset", "connect"]
    assert all(a != b for a, b in itertools.pairwise(kinds))  # they alternate
    await recorder.until(lambda: all(record in lab.server.data for record in QUEUED))
    received = bytes(lab.server.data)
    positions = [received.index(record) for record in QUEUED]
    assert positions == sorted(positions)
    assert all(received.count(record) == 1 for record in QUEUED)
    assert conn.stats.queued == 0
    assert errors == []


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_disconnect_racing_the_fault(
    fault: Fault, lab: Lab, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn, _ = open_connection(lab, fault, cm, recorder)
    await establish(conn, recorder)
    await fault.inject(lab)
    await asyncio.sleep(0)  # let the fault reach the client's loop: the race is with its handling
    conn.disconnect()
    seen = len(recorder.events)
    await fault.heal(lab)
    assert await conn.wait_closed(BOUND)
    assert conn.state is State.CLOSED
    assert conn.transport is None
    with pytest.raises(connman.Disconnected):
        conn.write(b"late")
    await asyncio.sleep(50 * MS)  # a window for a late callback to show itself; none may
    assert len(recorder.events) == seen


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_callbacks_raising_during_the_fault_are_isolated(
    fault: Fault, lab: Lab, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn, errors = open_connection(lab, fault, cm, recorder, raising=True)
    await establish(conn, recorder)
    await fault.inject(lab)
    await recorder.wait("reset")
    await fault.heal(lab)
    await recorder.until(lambda: conn.is_connected and recorder.count("connect") >= 2)
    await recorder.until(lambda: all(record in lab.server.data for record in QUEUED))
    messages = {str(error) for error in errors}
    assert {"on_connect failed", "on_data failed", "on_reset failed"} <= messages
    assert all(isinstance(error, RuntimeError) for error in errors)
