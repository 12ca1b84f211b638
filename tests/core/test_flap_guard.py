"""The flap guard and giving up, driven without a loop: how long a lost connection counts as alive,
and what `NotifyGaveUp` and `give_up_reason` say, in every state."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from connman import Backoff, IdleTimeout, State
from connman._flow import IdleWatch, last_alive
from connman._state import (
    TRANSITIONS,
    ConnectFailed,
    ConnectionLost,
    ConnectionMachine,
    ConnectSucceeded,
    DisconnectRequested,
    Event,
    NotifyGaveUp,
    NotifyReset,
    ReconnectRequested,
    RetryDue,
    ScheduleRetry,
)

#: Waits of 1, 2, 4, 8, 16, ... s; a connection is stable once alive for 1 s.
DOUBLING = Backoff(initial=1.0, factor=2.0, cap=64.0, jitter="none", min_uptime=1.0)
ERROR = ConnectionRefusedError(111, "refused")


def machine(max_attempts: int | None = None, give_up_after: float | None = None) -> ConnectionMachine:
    return ConnectionMachine(DOUBLING, max_attempts, random.Random(0), give_up_after=give_up_after)


def retry_delay(actions: Sequence[object]) -> float:
    (retry,) = [action for action in actions if isinstance(action, ScheduleRetry)]
    return retry.delay


# ---- the uptime that counts: up to `alive_until` -----------------------------------------------

# (connected at, lost at, alive_until) -> the wait after the loss. Three failed attempts came first
# (waits of 1, 2 and 4 s): a stable connection starts again at 1 s, an unstable one goes on to 8 s.
UPTIMES: dict[tuple[float, float, float | None], float] = {
    (0.0, 10.0, None): 1.0,  # alive until the loss, 10 s
    (0.0, 10.0, 0.5): 8.0,  # dropped at 10 s, but its last sign of life was at 0.5 s
    (0.0, 10.0, 0.999): 8.0,
    (0.0, 10.0, 1.0): 1.0,  # exactly min_uptime
    (0.0, 10.0, 10.0): 1.0,
    (0.0, 10.0, 50.0): 1.0,  # later than the loss counts as the loss
    (0.0, 0.5, None): 8.0,  # short-lived
    (0.0, 0.5, 50.0): 8.0,  # clamped to the loss: still short-lived
    (5.0, 10.0, 3.0): 8.0,  # before the connect: no uptime at all
    (5.0, 10.0, 5.0): 8.0,
    (5.0, 10.0, 6.0): 1.0,
}


@pytest.mark.parametrize(("connected", "lost", "alive_until"), list(UPTIMES))
def test_only_the_uptime_up_to_alive_until_proves_a_connection_stable(
    connected: float, lost: float, alive_until: float | None
) -> None:
    m = machine()
    for _ in range(3):
        m.handle(ConnectFailed(error=ERROR, now=-100.0))
        m.handle(RetryDue())
    m.handle(ConnectSucceeded(now=connected))
    actions = m.handle(ConnectionLost(error=None, now=lost, alive_until=alive_until))
    assert isinstance(actions[0], NotifyReset)
    assert retry_delay(actions) == UPTIMES[connected, lost, alive_until]


@pytest.mark.parametrize(
    ("alive_until", "delays"),
    [
        (None, [1.0, 1.0, 1.0, 1.0, 1.0]),  # up 10 s each time: stable, the backoff resets
        (0.5, [1.0, 2.0, 4.0, 8.0, 16.0]),  # dropped at 10 s, dead since 0.5 s: keeps growing
    ],
)
def test_a_connection_dropped_long_after_its_last_sign_of_life_does_not_reset_the_backoff(
    alive_until: float | None, delays: list[float]
) -> None:
    m = machine()
    seen = []
    now = 0.0
    for _ in range(5):
        m.handle(ConnectSucceeded(now=now))
        lost_alive_until = None if alive_until is None else now + alive_until
        actions = m.handle(ConnectionLost(error=None, now=now + 10.0, alive_until=lost_alive_until))
        seen.append(retry_delay(actions))
        now += 10.0 + seen[-1]
        m.handle(RetryDue())
    assert seen == delays


def test_a_peer_silent_after_each_connect_never_looks_stable_to_the_idle_deadline() -> None:
    # The core end to end: the peer answers once at once, then goes silent; the idle deadline (8 s)
    # drops it, last_alive() says it was alive only at the connect, and the waits keep growing.
    m = machine()
    seen = []
    now = 0.0
    for _ in range(4):
        m.handle(ConnectSucceeded(now=now))
        watch = IdleWatch(8.0, now, 0)
        assert watch.check(now + 8.0, 1) == 8.0  # one byte, right after the connect
        assert watch.check(now + 16.0, 1) is None
        error = IdleTimeout("idle_timeout")
        alive_until = last_alive(error, now + 16.0, idle=watch, keepalive=None, user_timeout=None)
        assert alive_until == now
        actions = m.handle(ConnectionLost(error=error, now=now + 16.0, alive_until=alive_until))
        seen.append(retry_delay(actions))
        now += 16.0 + seen[-1]
        m.handle(RetryDue())
    assert seen == [1.0, 2.0, 4.0, 8.0]


# ---- giving up: why, and after how many attempts ------------------------------------------------

# (max_attempts, give_up_after, connect first) -> the NotifyGaveUp, by hand. Attempts fail at
# 0, 1, 3, 7, 15, ... s (waits of 1, 2, 4, 8 s); a loss at 0 s comes first when "connect first".
GIVE_UPS: dict[tuple[int | None, float | None, bool], NotifyGaveUp] = {
    (1, None, False): NotifyGaveUp(error=ERROR, reason="max_attempts", attempts=1),
    (3, None, False): NotifyGaveUp(error=ERROR, reason="max_attempts", attempts=3),
    # The attempt after the one at 3 s would start at 7 s, past 5 s after the first failure.
    (None, 5.0, False): NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=3),
    (None, 7.0, False): NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=4),  # 15 > 7
    (None, 0.5, False): NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=1),
    # Both reached at the same failure: max_attempts is named.
    (3, 5.0, False): NotifyGaveUp(error=ERROR, reason="max_attempts", attempts=3),
    (4, 5.0, False): NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=3),
    # After a loss the deadline counts from the loss (waits 1, 2, 4: attempts at 1, 3, 7 s) and
    # the attempts only since the last connect.
    (2, None, True): NotifyGaveUp(error=ERROR, reason="max_attempts", attempts=2),
    (None, 5.0, True): NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=2),
}


@pytest.mark.parametrize(("max_attempts", "give_up_after", "connect_first"), list(GIVE_UPS))
def test_notify_gave_up_says_why_and_after_how_many_attempts(
    max_attempts: int | None, give_up_after: float | None, connect_first: bool
) -> None:
    m = machine(max_attempts, give_up_after)
    now = 0.0
    if connect_first:
        m.handle(ConnectFailed(error=ERROR, now=-50.0))  # counted before the connect, not after it
        m.handle(RetryDue())
        m.handle(ConnectSucceeded(now=-10.0))
        now += retry_delay(m.handle(ConnectionLost(error=None, now=0.0)))
        m.handle(RetryDue())
    while True:
        actions = m.handle(ConnectFailed(error=ERROR, now=now))
        if m.state is State.FAILED:
            break
        now += retry_delay(actions)
        m.handle(RetryDue())
    assert actions == [GIVE_UPS[max_attempts, give_up_after, connect_first]]
    assert m.give_up_reason == GIVE_UPS[max_attempts, give_up_after, connect_first].reason


# ---- give_up_reason in every state --------------------------------------------------------------


def in_state(state: State) -> ConnectionMachine:
    # max_attempts=1: the first failed attempt gives up, so WAITING is reached through a loss.
    m = machine(max_attempts=1)
    setup: dict[State, list[Event]] = {
        State.CONNECTING: [],
        State.CONNECTED: [ConnectSucceeded(now=0.0)],
        State.WAITING: [ConnectSucceeded(now=0.0), ConnectionLost(error=None, now=1.0)],
        State.FAILED: [ConnectFailed(error=ERROR, now=0.0)],
        State.CLOSED: [DisconnectRequested()],
    }
    for event in setup[state]:
        m.handle(event)
    assert m.state is state
    return m


EVENTS: list[Callable[[], Event]] = [
    lambda: ConnectSucceeded(now=2.0),
    lambda: ConnectFailed(error=ERROR, now=2.0),
    lambda: ConnectionLost(error=None, now=2.0),
    lambda: RetryDue(),
    lambda: DisconnectRequested(),
    lambda: ReconnectRequested(),
]

# (state, event type) -> (next state, give_up_reason after it): every expected pair, by hand. The
# reason is set on the way into FAILED and is None everywhere else.
REASONS: dict[tuple[State, type], tuple[State, str | None]] = {
    (State.CONNECTING, ConnectSucceeded): (State.CONNECTED, None),
    (State.CONNECTING, ConnectFailed): (State.FAILED, "max_attempts"),
    (State.CONNECTING, DisconnectRequested): (State.CLOSED, None),
    (State.CONNECTING, ReconnectRequested): (State.CONNECTING, None),
    (State.CONNECTED, ConnectionLost): (State.WAITING, None),
    (State.CONNECTED, DisconnectRequested): (State.CLOSED, None),
    (State.CONNECTED, ReconnectRequested): (State.CONNECTING, None),
    (State.WAITING, RetryDue): (State.CONNECTING, None),
    (State.WAITING, DisconnectRequested): (State.CLOSED, None),
    (State.WAITING, ReconnectRequested): (State.CONNECTING, None),
    (State.FAILED, DisconnectRequested): (State.CLOSED, None),
    (State.FAILED, ReconnectRequested): (State.CONNECTING, None),
}


def test_reasons_table_covers_the_transition_table() -> None:
    assert set(REASONS) == {(state, event) for state, row in TRANSITIONS.items() for event in row}


@pytest.mark.parametrize(
    ("state", "event_type"),
    list(REASONS),
)
def test_give_up_reason_after_every_expected_event(state: State, event_type: type) -> None:
    m = in_state(state)
    assert m.give_up_reason == ("max_attempts" if state is State.FAILED else None)
    (make_event,) = [make for make in EVENTS if type(make()) is event_type]
    m.handle(make_event())
    assert (m.state, m.give_up_reason) == REASONS[state, event_type]


def test_give_up_reason_is_set_again_by_the_next_give_up() -> None:
    m = machine(max_attempts=1, give_up_after=0.5)
    m.handle(ConnectFailed(error=ERROR, now=0.0))
    assert m.give_up_reason == "max_attempts"
    m.handle(ReconnectRequested())
    assert m.give_up_reason is None
    m2 = machine(give_up_after=0.5)
    assert m2.handle(ConnectFailed(error=ERROR, now=0.0)) == [
        NotifyGaveUp(error=ERROR, reason="give_up_after", attempts=1)
    ]
    assert m2.give_up_reason == "give_up_after"
    m2.handle(ReconnectRequested())
    assert m2.give_up_reason is None
    m2.handle(ConnectFailed(error=ERROR, now=100.0))
    assert (m2.state, m2.give_up_reason) == (State.FAILED, "give_up_after")
