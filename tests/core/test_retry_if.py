"""`retry_if` in the state machine: the driver asks it and passes the answer in; the machine decides."""

from __future__ import annotations

import random
import ssl

import pytest

from connman import Backoff, Cause, State
from connman._flow import Admit, refusal
from connman._options import DEFAULT_OPTIONS
from connman._state import (
    ConnectFailed,
    ConnectionLost,
    ConnectionMachine,
    ConnectSucceeded,
    NotifyGaveUp,
    NotifyReset,
    ReconnectRequested,
    ScheduleRetry,
    StartConnect,
)
from connman.errors import GaveUp

FIXED = Backoff(initial=1.0, factor=2.0, cap=8.0, jitter="none", min_uptime=10.0)
TLS_ERROR = ssl.SSLCertVerificationError(1, "certificate verify failed: Hostname mismatch")


def machine(max_attempts: int | None = None) -> ConnectionMachine:
    return ConnectionMachine(FIXED, max_attempts, random.Random(0))


def test_a_failed_attempt_that_retry_if_refuses_gives_up_at_once() -> None:
    m = machine(max_attempts=5)
    actions = m.handle(ConnectFailed(error=TLS_ERROR, now=0.0, retry=False))
    assert actions == [NotifyGaveUp(error=TLS_ERROR, reason="retry_if", attempts=1)]
    assert (m.state, m.give_up_reason, m.last_cause) == (State.FAILED, "retry_if", Cause.TLS)


def test_a_failed_attempt_that_retry_if_accepts_waits_as_usual() -> None:
    m = machine()
    assert m.handle(ConnectFailed(error=TLS_ERROR, now=0.0, retry=True)) == [ScheduleRetry(delay=1.0)]
    assert m.state is State.WAITING


def test_retry_if_yes_does_not_override_max_attempts() -> None:
    m = machine(max_attempts=1)
    (action,) = m.handle(ConnectFailed(error=TLS_ERROR, now=0.0, retry=True))
    assert action == NotifyGaveUp(error=TLS_ERROR, reason="max_attempts", attempts=1)


def test_a_loss_that_retry_if_refuses_resets_then_gives_up() -> None:
    m = machine()
    m.handle(ConnectSucceeded(now=0.0))
    error = ConnectionResetError(104, "reset")
    actions = m.handle(ConnectionLost(error=error, now=5.0, retry=False))
    assert actions == [NotifyReset(), NotifyGaveUp(error=error, reason="retry_if", attempts=0)]
    assert (m.state, m.resets, m.last_cause) == (State.FAILED, 1, Cause.RESET)


def test_a_clean_eof_that_retry_if_refuses_gives_up_with_an_eof_error() -> None:
    m = machine()
    m.handle(ConnectSucceeded(now=0.0))
    reset, gave_up = m.handle(ConnectionLost(error=None, now=5.0, retry=False))
    assert reset == NotifyReset()
    assert isinstance(gave_up, NotifyGaveUp) and isinstance(gave_up.error, EOFError)
    assert m.last_error is None and m.last_cause is Cause.EOF


def test_reconnect_revives_what_retry_if_gave_up_on() -> None:
    m = machine()
    m.handle(ConnectFailed(error=TLS_ERROR, now=0.0, retry=False))
    assert m.handle(ReconnectRequested()) == [StartConnect()]
    assert (m.state, m.give_up_reason, m.failures) == (State.CONNECTING, None, 0)


@pytest.mark.parametrize("connected", [False, True])
def test_the_refusal_says_retry_if_said_no_and_why(connected: bool) -> None:
    m = machine()
    if connected:
        m.handle(ConnectSucceeded(now=0.0))
        m.handle(ConnectionLost(error=TLS_ERROR, now=1.0, retry=False))
    else:
        m.handle(ConnectFailed(error=TLS_ERROR, now=0.0, retry=False))
    error = refusal(Admit.GAVE_UP, "db:5432", 10, 0, 0, m, DEFAULT_OPTIONS)
    assert isinstance(error, GaveUp)
    assert error.reason == "retry_if"
    assert error.last_error is TLS_ERROR
    assert str(error) == (
        f"connection to db:5432 gave up because retry_if returned False for {TLS_ERROR!r} (cause tls);"
        " call reconnect() to try again"
    )
