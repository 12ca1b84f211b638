"""The state machine, driven without a loop, a socket or a clock: every (state, event) pair."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from connman import Backoff, Cause, State
from connman._state import (
    TRANSITIONS,
    AbortConnect,
    CancelRetry,
    CloseTransport,
    ConnectFailed,
    ConnectionLost,
    ConnectionMachine,
    ConnectSucceeded,
    DisconnectRequested,
    Event,
    NotifyConnected,
    NotifyGaveUp,
    NotifyReset,
    ReconnectRequested,
    RetryDue,
    ScheduleRetry,
    StartConnect,
)

FIXED = Backoff(initial=1.0, factor=2.0, cap=8.0, jitter="none", min_uptime=10.0)
ERROR = ConnectionRefusedError(111, "refused")


def machine(max_attempts: int | None = None) -> ConnectionMachine:
    return ConnectionMachine(FIXED, max_attempts, random.Random(0))


def in_state(state: State) -> ConnectionMachine:
    m = machine(max_attempts=1 if state is State.FAILED else None)
    setup: dict[State, list[Event]] = {
        State.CONNECTING: [],
        State.CONNECTED: [ConnectSucceeded(now=0.0)],
        State.WAITING: [ConnectFailed(error=ERROR, now=0.0)],
        State.FAILED: [ConnectFailed(error=ERROR, now=0.0)],
        State.CLOSED: [DisconnectRequested()],
    }
    for event in setup[state]:
        m.handle(event)
    assert m.state is state
    return m


EVENTS: list[Callable[[], Event]] = [
    lambda: ConnectSucceeded(now=1.0),
    lambda: ConnectFailed(error=ERROR, now=1.0),
    lambda: ConnectionLost(error=None, now=1.0),
    lambda: RetryDue(),
    lambda: DisconnectRequested(),
    lambda: ReconnectRequested(),
]

# (state, event type) -> (next state, action types): the whole behaviour, written out by hand.
EXPECTED: dict[tuple[State, type], tuple[State, list[type]]] = {
    (State.CONNECTING, ConnectSucceeded): (State.CONNECTED, [NotifyConnected]),
    (State.CONNECTING, ConnectFailed): (State.WAITING, [ScheduleRetry]),
    (State.CONNECTING, DisconnectRequested): (State.CLOSED, [AbortConnect]),
    (State.CONNECTING, ReconnectRequested): (State.CONNECTING, []),
    (State.CONNECTED, ConnectionLost): (State.WAITING, [NotifyReset, ScheduleRetry]),
    (State.CONNECTED, DisconnectRequested): (State.CLOSED, [CloseTransport]),
    (State.CONNECTED, ReconnectRequested): (State.CONNECTING, [CloseTransport, NotifyReset, StartConnect]),
    (State.WAITING, RetryDue): (State.CONNECTING, [StartConnect]),
    (State.WAITING, DisconnectRequested): (State.CLOSED, [CancelRetry]),
    (State.WAITING, ReconnectRequested): (State.CONNECTING, [CancelRetry, StartConnect]),
    (State.FAILED, DisconnectRequested): (State.CLOSED, []),
    (State.FAILED, ReconnectRequested): (State.CONNECTING, [StartConnect]),
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("make_event", EVENTS)
def test_every_state_and_event(state: State, make_event: Callable[[], Event]) -> None:
    m = in_state(state)
    event = make_event()
    expected = EXPECTED.get((state, type(event)))
    if expected is None:
        if state is State.CLOSED:
            assert m.handle(event) == []  # late events after disconnect() are normal
            assert m.state is State.CLOSED
        else:
            with pytest.raises(RuntimeError, match=f"can't handle {type(event).__name__} in state"):
                m.handle(event)
        assert type(event) not in TRANSITIONS[state]
        return
    next_state, action_types = expected
    actions = m.handle(event)
    assert m.state is next_state
    assert [type(action) for action in actions] == action_types
    assert TRANSITIONS[state][type(event)] is next_state


def test_expected_table_covers_the_transition_table() -> None:
    table = {(state, event) for state, row in TRANSITIONS.items() for event in row}
    assert table == set(EXPECTED)


def test_failed_attempts_back_off_exponentially_to_the_cap() -> None:
    m = machine()
    delays = []
    for _ in range(6):
        (action,) = m.handle(ConnectFailed(error=ERROR, now=0.0))
        assert isinstance(action, ScheduleRetry)
        delays.append(action.delay)
        assert m.handle(RetryDue()) == [StartConnect()]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert m.failed_attempts == 6
    assert m.last_error is ERROR


def test_flap_guard_keeps_growing_delays_for_a_server_that_closes_at_once() -> None:
    m = machine()
    delays = []
    now = 0.0
    for _ in range(5):
        m.handle(ConnectSucceeded(now=now))
        actions = m.handle(ConnectionLost(error=None, now=now + 0.001))  # up for 1 ms < min_uptime
        assert isinstance(actions[0], NotifyReset)
        assert isinstance(actions[1], ScheduleRetry)
        delays.append(actions[1].delay)
        now += actions[1].delay
        m.handle(RetryDue())
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert m.connects == 5
    assert m.resets == 5


def test_a_stable_connection_resets_the_backoff() -> None:
    m = machine()
    m.handle(ConnectFailed(error=ERROR, now=0.0))
    m.handle(RetryDue())
    m.handle(ConnectFailed(error=ERROR, now=1.0))
    m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=3.0))
    actions = m.handle(ConnectionLost(error=ERROR, now=13.0))  # up exactly min_uptime
    assert actions == [NotifyReset(), ScheduleRetry(delay=1.0)]


def test_max_attempts_gives_up_with_the_last_error() -> None:
    m = machine(max_attempts=3)
    for _ in range(2):
        m.handle(ConnectFailed(error=OSError("first"), now=0.0))
        m.handle(RetryDue())
    last = OSError("last")
    assert m.handle(ConnectFailed(error=last, now=0.0)) == [
        NotifyGaveUp(error=last, reason="max_attempts", attempts=3)
    ]
    assert m.state is State.FAILED
    assert m.give_up_reason == "max_attempts"
    assert m.last_error is last


def test_a_successful_connect_resets_the_attempt_count() -> None:
    m = machine(max_attempts=2)
    m.handle(ConnectFailed(error=ERROR, now=0.0))
    m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=1.0))
    m.handle(ConnectionLost(error=None, now=2.0))
    m.handle(RetryDue())
    assert isinstance(m.handle(ConnectFailed(error=ERROR, now=3.0))[0], ScheduleRetry)
    assert m.state is State.WAITING


def test_reconnect_revives_a_failed_connection_with_a_fresh_count() -> None:
    m = in_state(State.FAILED)
    assert m.handle(ReconnectRequested()) == [StartConnect()]
    assert m.failures == 0
    assert isinstance(m.handle(ConnectFailed(error=ERROR, now=0.0))[0], NotifyGaveUp)


def test_reconnect_while_connected_counts_a_reset_and_keeps_the_backoff() -> None:
    m = machine()
    m.handle(ConnectFailed(error=ERROR, now=0.0))
    m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=1.0))
    m.handle(ReconnectRequested())
    assert m.resets == 1
    assert m.last_error is None
    (action,) = m.handle(ConnectFailed(error=ERROR, now=100.0))
    assert action == ScheduleRetry(delay=2.0)


def test_on_reset_is_never_asked_for_attempts_that_did_not_connect() -> None:
    m = machine()
    for _ in range(10):
        actions = m.handle(ConnectFailed(error=ERROR, now=0.0))
        assert not any(isinstance(action, NotifyReset) for action in actions)
        m.handle(RetryDue())


def test_state_repr_is_readable() -> None:
    assert repr(State.WAITING) == "State.WAITING"


def test_the_lifecycle_diagram_in_the_docs_is_the_transition_table() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md").read_text()
    drawn = set(re.findall(r"^\s+(\w+) --> (\w+): (\w+)$", doc, re.MULTILINE))
    table = {
        (state.name, next_state.name, event.__name__)
        for state, row in TRANSITIONS.items()
        for event, next_state in row.items()
    }
    assert drawn == table


def test_give_up_after_stops_before_an_attempt_would_start_past_the_deadline() -> None:
    m = ConnectionMachine(FIXED, None, random.Random(0), give_up_after=6.0)
    now = 0.0
    delays = []
    while True:
        actions = m.handle(ConnectFailed(error=ERROR, now=now))
        if m.state is State.FAILED:
            break
        (retry,) = actions
        assert isinstance(retry, ScheduleRetry)
        delays.append(retry.delay)
        now += retry.delay
        m.handle(RetryDue())
    # Waits of 1, 2 s put attempts at 0, 1, 3 s; the next wait (4 s) would start one at 7 s > 6 s.
    assert delays == [1.0, 2.0]
    assert now == 3.0
    assert actions == [NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=3)]


def test_give_up_after_counts_from_the_loss_and_restarts_on_reconnect() -> None:
    m = ConnectionMachine(FIXED, None, random.Random(0), give_up_after=2.5)
    m.handle(ConnectSucceeded(now=0.0))
    m.handle(ConnectionLost(error=ERROR, now=100.0))  # down since 100; first wait 1 s
    m.handle(RetryDue())
    assert m.handle(ConnectFailed(error=ERROR, now=101.0)) == [
        NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=1)
    ]
    assert m.state is State.FAILED  # the next attempt would start at 103 > 102.5
    m.handle(ReconnectRequested())  # the application asks again: a fresh deadline
    assert m.down_since is None
    assert m.give_up_reason is None
    # The deadline is fresh; the backoff goes on where it was (the wait it gave up before).
    assert m.handle(ConnectFailed(error=ERROR, now=500.0)) == [ScheduleRetry(delay=2.0)]
    assert m.down_since == 500.0


def test_last_cause_follows_each_loss_and_failure() -> None:
    m = machine()
    causes = []
    m.handle(ConnectFailed(error=ConnectionRefusedError(111, "refused"), now=0.0))
    causes.append(m.last_cause)
    m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=1.0))
    m.handle(ConnectionLost(error=None, now=2.0))
    causes.append(m.last_cause)
    m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=3.0))
    m.handle(ReconnectRequested())
    causes.append(m.last_cause)
    assert causes == [Cause.REFUSED, Cause.EOF, Cause.RECONNECT]


def test_last_outage_is_the_time_from_the_loss_to_the_reconnect() -> None:
    m = machine()
    m.handle(ConnectSucceeded(now=0.0))
    assert m.last_outage is None
    m.handle(ConnectionLost(error=ERROR, now=20.0))
    m.handle(RetryDue())
    m.handle(ConnectFailed(error=ERROR, now=21.0))
    m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=23.5))
    assert m.last_outage == 3.5
