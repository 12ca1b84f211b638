"""Random sequences of connect / write / server stop / server start / reconnect / disconnect, driven by
hypothesis against a real loopback server, with the invariants checked after every step:

- the state machine only takes transitions of its table;
- on_connect and on_reset alternate, starting with on_connect; nothing fires after disconnect();
- the records the server receives are in the order they were written, none twice, and every record
  that was queued while down arrives once the connection is back.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from hypothesis.strategies import booleans

import connman
from connman import State
from connman._state import TRANSITIONS
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST

RECORD = re.compile(rb"<(\d+)>")
ALLOWED = {(a, b) for a, row in TRANSITIONS.items() for b in row.values()}


class ConnectionUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.server = EchoServer(keep_data=True)
        self.run(self.server.start())
        self.cm = connman.ConnectionManager()
        self.events: list[str] = []
        self.states: list[State] = [State.CONNECTING]
        self.written: list[int] = []
        self.queued: list[int] = []  # records written while down, due after the next connect
        self.closed_at: int | None = None
        self.next_record = 0

        def on_connect(conn: connman.Connection) -> None:
            self.events.append("connect")

        def on_reset() -> None:
            self.events.append("reset")

        async def open_connection() -> connman.Connection:
            return self.cm.connect(
                self.server.port,
                "127.0.0.1",
                on_connect=on_connect,
                on_reset=on_reset,
                backoff=FAST,
                queue_while_down=1 << 20,
            )

        self.conn = self.run(open_connection())
        self.settle()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        """Let the connection reach what the server's state implies: up if serving, down if not."""

        async def settle() -> None:
            async with asyncio.timeout(BOUND):
                while True:
                    state = self.conn.state
                    self.note_state(state)
                    if state is State.CLOSED or (state is State.CONNECTED) == self.server.is_serving:
                        return
                    await self.conn.wait_changed(0.01)

        self.run(settle())

    def note_state(self, state: State) -> None:
        if state is not self.states[-1]:
            self.states.append(state)

    @rule(data=booleans())
    def write(self, data: bool) -> None:
        record = self.next_record
        self.next_record += 1
        up = self.conn.is_connected
        try:
            self.conn.write(b"<%d>" % record)
        except connman.Disconnected:
            assert self.conn.state is State.CLOSED
            return
        self.written.append(record)
        if not up:
            self.queued.append(record)
        if data:
            self.run(asyncio.sleep(0.001))

    @precondition(lambda self: self.server.is_serving)
    @rule(reset=booleans())
    def stop_server(self, reset: bool) -> None:
        self.run(self.server.stop(reset=reset))
        self.settle()

    @precondition(lambda self: not self.server.is_serving)
    @rule()
    def start_server(self) -> None:
        self.run(self.server.start())
        self.settle()
        if self.conn.is_connected:
            self.check_queued_arrive()

    @rule()
    def reconnect(self) -> None:
        if self.conn.state is State.CLOSED:
            return
        self.conn.reconnect()
        self.settle()

    @precondition(lambda self: self.closed_at is None)
    @rule()
    def disconnect(self) -> None:
        self.run(self.conn.disconnect())
        self.closed_at = len(self.events)
        self.note_state(self.conn.state)

    def check_queued_arrive(self) -> None:
        async def arrived() -> None:
            async with asyncio.timeout(BOUND):
                # The server's data has no event to wait on: poll it.
                while not set(self.queued) <= set(self.received()):  # noqa: ASYNC110
                    await asyncio.sleep(0.001)

        self.run(arrived())
        self.queued.clear()

    def received(self) -> list[int]:
        return [int(n) for n in RECORD.findall(bytes(self.server.data))]

    @invariant()
    def transitions_are_legal(self) -> None:
        self.note_state(self.conn.state)
        for before, after in zip(self.states, self.states[1:], strict=False):
            assert (before, after) in ALLOWED or before is after, (before, after)

    @invariant()
    def callbacks_alternate_and_stop_at_disconnect(self) -> None:
        expected = ["connect", "reset"] * len(self.events)
        assert self.events == expected[: len(self.events)]
        if self.closed_at is not None:
            assert len(self.events) == self.closed_at

    @invariant()
    def records_arrive_in_order_once(self) -> None:
        received = self.received()
        assert len(received) == len(set(received))
        assert received == sorted(received)
        assert set(received) <= set(self.written)

    def teardown(self) -> None:
        self.run(self.cm.aclose())
        self.run(self.server.stop())
        self.loop.close()


ConnectionUnderFaults.TestCase.settings = settings(
    max_examples=40, stateful_step_count=20, deadline=None, database=None
)
test_connection_under_random_faults = ConnectionUnderFaults.TestCase
