"""The data-path policy (`_flow.py`), driven without a loop, a socket or a clock.

Write admission is a table over every state, both transport situations and every limit situation,
written out by hand, and then its rules are checked over every small input. The idle deadline is
driven with explicit times, firing its timer exactly as `connection.py` does.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import random
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest

from connman import Backoff, BufferFull, ConnectTimeout, IdleTimeout, State
from connman._flow import (
    CLOSE_LINGER,
    DEFAULT_HIGH_WATER,
    Admit,
    IdleWatch,
    Outbox,
    admit_write,
    failed_attempts,
    high_water,
    last_alive,
    refusal,
)
from connman._options import DEFAULT_OPTIONS
from connman._state import ConnectionMachine

CONNECTING, CONNECTED, WAITING, FAILED, CLOSED = (
    State.CONNECTING,
    State.CONNECTED,
    State.WAITING,
    State.FAILED,
    State.CLOSED,
)
SEND, QUEUE, BUFFER_FULL, NOT_CONNECTED, QUEUE_FULL, DISCONNECTED, GAVE_UP = (
    Admit.SEND,
    Admit.QUEUE,
    Admit.BUFFER_FULL,
    Admit.NOT_CONNECTED,
    Admit.QUEUE_FULL,
    Admit.DISCONNECTED,
    Admit.GAVE_UP,
)
KiB = 1024
MiB = 1024 * KiB

# ---- 1. write admission ------------------------------------------------------------------------

#: name -> (size, unflushed, queued, max_buffer, queue_limit).
SITUATIONS: dict[str, tuple[int, int, int, int | None, int]] = {
    "both fit": (10, 50, 20, 100, 50),
    "buffer exactly at the limit": (10, 90, 0, 100, 50),
    "buffer one byte over": (11, 90, 0, 100, 50),
    "no buffer limit": (10**9, 10**9, 0, None, 50),
    "queueing off": (10, 0, 0, 100, 0),
    "queue exactly at the limit": (10, 0, 40, 100, 50),
    "queue one byte over": (11, 0, 40, 100, 50),
    "both over": (200, 0, 60, 100, 50),
    "one write larger than the whole limit": (64 * MiB, 0, 0, 1 * MiB, 128 * MiB),
    "an empty write, queueing off, buffer full": (0, 100, 0, 100, 0),
}

# (situation, state) -> (verdict with the transport open, verdict with it closing or gone): by hand.
# An open transport sends whatever the state says (the driver decides whether an open transport can
# coexist with CLOSED or FAILED; admit_write does not look). Without one, CONNECTED is down for
# writing, like WAITING and CONNECTING.
EXPECTED: dict[tuple[str, State], tuple[Admit, Admit]] = {
    ("both fit", CONNECTING): (SEND, QUEUE),
    ("both fit", CONNECTED): (SEND, QUEUE),
    ("both fit", WAITING): (SEND, QUEUE),
    ("both fit", FAILED): (SEND, GAVE_UP),
    ("both fit", CLOSED): (SEND, DISCONNECTED),
    ("buffer exactly at the limit", CONNECTING): (SEND, QUEUE),
    ("buffer exactly at the limit", CONNECTED): (SEND, QUEUE),
    ("buffer exactly at the limit", WAITING): (SEND, QUEUE),
    ("buffer exactly at the limit", FAILED): (SEND, GAVE_UP),
    ("buffer exactly at the limit", CLOSED): (SEND, DISCONNECTED),
    ("buffer one byte over", CONNECTING): (BUFFER_FULL, QUEUE),
    ("buffer one byte over", CONNECTED): (BUFFER_FULL, QUEUE),
    ("buffer one byte over", WAITING): (BUFFER_FULL, QUEUE),
    ("buffer one byte over", FAILED): (BUFFER_FULL, GAVE_UP),
    ("buffer one byte over", CLOSED): (BUFFER_FULL, DISCONNECTED),
    ("no buffer limit", CONNECTING): (SEND, QUEUE_FULL),
    ("no buffer limit", CONNECTED): (SEND, QUEUE_FULL),
    ("no buffer limit", WAITING): (SEND, QUEUE_FULL),
    ("no buffer limit", FAILED): (SEND, GAVE_UP),
    ("no buffer limit", CLOSED): (SEND, DISCONNECTED),
    ("queueing off", CONNECTING): (SEND, NOT_CONNECTED),
    ("queueing off", CONNECTED): (SEND, NOT_CONNECTED),
    ("queueing off", WAITING): (SEND, NOT_CONNECTED),
    ("queueing off", FAILED): (SEND, GAVE_UP),
    ("queueing off", CLOSED): (SEND, DISCONNECTED),
    ("queue exactly at the limit", CONNECTING): (SEND, QUEUE),
    ("queue exactly at the limit", CONNECTED): (SEND, QUEUE),
    ("queue exactly at the limit", WAITING): (SEND, QUEUE),
    ("queue exactly at the limit", FAILED): (SEND, GAVE_UP),
    ("queue exactly at the limit", CLOSED): (SEND, DISCONNECTED),
    ("queue one byte over", CONNECTING): (SEND, QUEUE_FULL),
    ("queue one byte over", CONNECTED): (SEND, QUEUE_FULL),
    ("queue one byte over", WAITING): (SEND, QUEUE_FULL),
    ("queue one byte over", FAILED): (SEND, GAVE_UP),
    ("queue one byte over", CLOSED): (SEND, DISCONNECTED),
    ("both over", CONNECTING): (BUFFER_FULL, QUEUE_FULL),
    ("both over", CONNECTED): (BUFFER_FULL, QUEUE_FULL),
    ("both over", WAITING): (BUFFER_FULL, QUEUE_FULL),
    ("both over", FAILED): (BUFFER_FULL, GAVE_UP),
    ("both over", CLOSED): (BUFFER_FULL, DISCONNECTED),
    ("one write larger than the whole limit", CONNECTING): (BUFFER_FULL, QUEUE),
    ("one write larger than the whole limit", CONNECTED): (BUFFER_FULL, QUEUE),
    ("one write larger than the whole limit", WAITING): (BUFFER_FULL, QUEUE),
    ("one write larger than the whole limit", FAILED): (BUFFER_FULL, GAVE_UP),
    ("one write larger than the whole limit", CLOSED): (BUFFER_FULL, DISCONNECTED),
    ("an empty write, queueing off, buffer full", CONNECTING): (SEND, NOT_CONNECTED),
    ("an empty write, queueing off, buffer full", CONNECTED): (SEND, NOT_CONNECTED),
    ("an empty write, queueing off, buffer full", WAITING): (SEND, NOT_CONNECTED),
    ("an empty write, queueing off, buffer full", FAILED): (SEND, GAVE_UP),
    ("an empty write, queueing off, buffer full", CLOSED): (SEND, DISCONNECTED),
}


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_every_state_and_transport_in_each_limit_situation(situation: str) -> None:
    size, unflushed, queued, max_buffer, queue_limit = SITUATIONS[situation]
    for state in State:
        verdicts = tuple(
            admit_write(
                state, transport_open, size, unflushed, queued, max_buffer=max_buffer, queue_limit=queue_limit
            )
            for transport_open in (True, False)
        )
        assert verdicts == EXPECTED[situation, state], state


def test_expected_table_covers_every_state_and_situation() -> None:
    assert set(EXPECTED) == set(itertools.product(SITUATIONS, State))


def every_input() -> Iterator[tuple[State, bool, int, int, int, int | None, int]]:
    """Every input over small ranges: 5 states x 2 x 5 sizes x 5 x 5 x 6 buffer limits x 5 queue limits."""
    small = range(5)
    return itertools.product(State, [True, False], small, small, small, [None, *small], small)


def test_an_open_transport_sends_or_refuses_by_the_buffer_alone() -> None:
    for state, transport_open, size, unflushed, queued, max_buffer, queue_limit in every_input():
        if not transport_open:
            continue
        verdict = admit_write(
            state, True, size, unflushed, queued, max_buffer=max_buffer, queue_limit=queue_limit
        )
        over = max_buffer is not None and unflushed + size > max_buffer
        # Never QUEUE, whatever the state; the queue and its limit play no part.
        assert verdict is (BUFFER_FULL if over else SEND), (state, size, unflushed, max_buffer)


def test_without_an_open_transport_a_write_is_queued_or_refused_never_sent() -> None:
    for state, transport_open, size, unflushed, queued, max_buffer, queue_limit in every_input():
        if transport_open:
            continue
        verdict = admit_write(
            state, False, size, unflushed, queued, max_buffer=max_buffer, queue_limit=queue_limit
        )
        if state is CLOSED:
            expected = DISCONNECTED  # whatever the sizes
        elif state is FAILED:
            expected = GAVE_UP
        elif queue_limit == 0:
            expected = NOT_CONNECTED
        elif queued + size > queue_limit:
            expected = QUEUE_FULL
        else:
            expected = QUEUE
        # The buffer and its limit play no part: nothing is written to a transport that is not open.
        assert verdict is expected, (state, size, queued, queue_limit)


def test_a_closing_transport_in_state_connected_is_down_for_writing_like_waiting() -> None:
    # `conn.transport.close()` before connman saw the loss: queued or refused, never sent or dropped.
    for state, transport_open, size, unflushed, queued, max_buffer, queue_limit in every_input():
        if state is not CONNECTED or transport_open:
            continue
        connected, waiting, connecting = (
            admit_write(down, False, size, unflushed, queued, max_buffer=max_buffer, queue_limit=queue_limit)
            for down in (CONNECTED, WAITING, CONNECTING)
        )
        assert connected is waiting is connecting
        assert connected in {QUEUE, NOT_CONNECTED, QUEUE_FULL}


# ---- 2. the high-water mark and the linger ------------------------------------------------------


@pytest.mark.parametrize(
    ("max_buffer", "mark"),
    [
        (None, 64 * KiB),
        (1, 0),
        (1000, 500),
        (64 * KiB, 32 * KiB),
        (128 * KiB - 1, 64 * KiB - 1),
        (128 * KiB, 64 * KiB),
        (16 * MiB, 64 * KiB),
    ],
)
def test_the_high_water_mark_is_64_kib_or_half_a_smaller_limit(max_buffer: int | None, mark: int) -> None:
    assert DEFAULT_HIGH_WATER == 64 * KiB
    assert high_water(max_buffer) == mark


@pytest.mark.parametrize("max_buffer", [1000, 64 * KiB])
def test_a_writer_is_told_to_stop_before_a_small_limit_refuses(max_buffer: int) -> None:
    # The module docstring: "Above it write() returns False". asyncio pauses (and `_writable()` says
    # "not yet") only when the unsent bytes are *above* the mark; admission keeps them at or below
    # `max_buffer`. So some admitted write must be able to leave them above the mark.
    above = [
        (unflushed, size)
        for unflushed, size in itertools.product(range(0, max_buffer + 1, max_buffer // 20), range(1, 200))
        if admit_write(CONNECTED, True, size, unflushed, 0, max_buffer=max_buffer, queue_limit=0) is SEND
        and unflushed + size > high_water(max_buffer)
    ]
    assert above


def test_a_close_lingers_two_seconds_at_most() -> None:
    assert CLOSE_LINGER == 2.0


# ---- 3. the outbox -------------------------------------------------------------------------------


def test_the_queue_gives_back_its_writes_oldest_first_and_empties() -> None:
    outbox = Outbox()
    assert (outbox.take_queue(), outbox.queued) == ([], 0)
    for chunk in (b"one", b"", b"three", b"four"):
        outbox.enqueue(chunk)
    assert outbox.queued == 12
    assert outbox.take_queue() == [b"one", b"", b"three", b"four"]
    assert (outbox.take_queue(), outbox.queued) == ([], 0)
    outbox.enqueue(b"again")
    assert (outbox.take_queue(), outbox.queued) == ([b"again"], 0)


def test_the_batch_says_which_write_is_first_joins_and_resets() -> None:
    outbox = Outbox()
    assert (outbox.take_batch(), outbox.batched) == (b"", 0)
    firsts = [outbox.add_to_batch(chunk) for chunk in (b"ab", b"cde", b"f")]
    assert firsts == [True, False, False]  # one flush scheduled per batch
    assert outbox.batched == 6
    assert outbox.take_batch() == b"abcdef"
    assert (outbox.take_batch(), outbox.batched) == (b"", 0)
    assert outbox.add_to_batch(b"g") is True  # a new batch: schedule a flush again
    assert (outbox.take_batch(), outbox.batched) == (b"g", 0)


def test_the_queue_and_the_batch_are_counted_apart() -> None:
    outbox = Outbox()
    outbox.enqueue(b"queued")
    outbox.add_to_batch(b"batch")
    assert (outbox.queued, outbox.batched) == (6, 5)
    assert outbox.take_batch() == b"batch"
    assert (outbox.queued, outbox.batched) == (6, 0)
    assert outbox.take_queue() == [b"queued"]
    assert (outbox.queued, outbox.batched) == (0, 0)


# ---- 4. the idle deadline ------------------------------------------------------------------------

T = 8.0  # the idle timeout; times below are multiples of 1/4 s, exact in binary floating point


def expire(
    watch: IdleWatch,
    start: float,
    arrivals: Sequence[float] = (),
    pauses: Sequence[tuple[float, float]] = (),
    horizon: float = 10_000.0,
) -> float:
    """Fire the idle timer as `connection.py` does and return when the peer is declared dead.

    The first check is `watch.timeout` after `start`, each next one after the delay the last one
    returned. A byte arriving at a check's time is counted by it; reading is paused by connman over each
    `(begin, end)` of `pauses`, and resumed at `end` with the bytes received by then.
    """
    received = 0
    marks = sorted([(begin, "pause") for begin, _ in pauses] + [(end, "resume") for _, end in pauses])
    at = start + watch.timeout
    while at < horizon:
        while marks and marks[0][0] <= at:
            when, what = marks.pop(0)
            if what == "pause":
                watch.pause()
            else:
                watch.resume(when, bisect.bisect_right(arrivals, when))
        received = bisect.bisect_right(arrivals, at)
        delay = watch.check(at, received)
        if delay is None:
            return at
        assert 0 < delay <= watch.timeout
        at += delay
    raise AssertionError(f"not declared dead by {horizon}")


def test_a_silent_peer_is_declared_dead_exactly_at_the_timeout_after_connect() -> None:
    watch = IdleWatch(T, 100.0, 0)
    assert expire(watch, 100.0) == 100.0 + T
    assert watch.alive_until == 100.0


# A fresh watch (connected at 100, nothing received), checked once at 100 + after: the verdict.
@pytest.mark.parametrize(
    ("after", "verdict"),
    [
        (0.25, T - 0.25),
        (4.0, 4.0),
        (T - 0.5, 0.5),
        (T - 0.0011, pytest.approx(0.0011)),  # too early: check again in 1.1 ms
        (T - 0.0009, None),  # up to 1 ms early still expires (a coarse loop clock)
        (T - 0.0005, None),
        (T, None),
        (T + 0.25, None),  # late
        (10 * T, None),
    ],
)
def test_one_check_on_a_silent_peer(after: float, verdict: object) -> None:
    assert IdleWatch(T, 100.0, 0).check(100.0 + after, 0) == verdict


def test_a_check_a_hair_early_then_at_the_delay_it_gave_expires() -> None:
    watch = IdleWatch(T, 0.0, 0)
    delay = watch.check(T - 0.002, 0)
    assert delay == pytest.approx(0.002)
    assert delay is not None
    assert watch.check(T - 0.002 + delay, 0) is None


# The last byte at every quarter second: alone, within the first timeout (a later one would come after
# the peer was declared dead); or after a byte a second since the connect, over five timeouts.
QUARTERS = [n / 4 for n in range(1, int(5 * T * 4) + 1)]


@pytest.mark.parametrize("steady", [False, True], ids=["one byte", "a byte a second before it"])
def test_a_peer_gone_silent_is_found_between_one_and_two_timeouts_after_its_last_byte(steady: bool) -> None:
    for last in QUARTERS if steady else [q for q in QUARTERS if q <= T]:
        arrivals = [float(s) for s in range(1, int(last) + 1) if steady and s < last] + [last]
        watch = IdleWatch(T, 0.0, 0)
        dead = expire(watch, 0.0, arrivals)
        assert T <= dead - last < 2 * T, (last, dead)
        # The evidence of life is a lower bound of the last byte, at most one timeout below it.
        assert watch.alive_until <= last, (last, watch.alive_until)
        assert last - watch.alive_until <= T, (last, watch.alive_until)


def test_a_peer_silent_right_after_connect_was_alive_only_at_the_connect() -> None:
    for first_check_sees in (0.25, T / 2, T):  # bytes before (or at) the first check
        watch = IdleWatch(T, 50.0, 0)
        expire(watch, 50.0, [50.0 + first_check_sees])
        assert watch.alive_until == 50.0  # never later than the connect: it cannot look stable


def test_alive_until_is_the_connect_time_when_no_byte_ever_arrived() -> None:
    watch = IdleWatch(T, 7.0, 123)  # bytes received before the watch started do not count
    assert watch.alive_until == 7.0
    assert watch.check(7.0 + T / 2, 123) == T / 2
    assert watch.check(7.0 + T, 123) is None
    assert watch.alive_until == 7.0


@pytest.mark.parametrize("paused_for", [T / 4, T, 3 * T, 100 * T, 10_000 * T])
def test_a_pause_stops_the_count_however_long_it_lasts(paused_for: float) -> None:
    watch = IdleWatch(T, 0.0, 0)
    watch.pause()
    at = T
    while at < 0.25 + paused_for:
        assert watch.check(at, 0) == T  # a delay, never None, while paused
        at += T
    # Resumed: the count restarts from the resume, whatever happened before.
    resumed = 0.25 + paused_for
    watch.resume(resumed, 0)
    assert watch.check(resumed + T - 0.25, 0) == 0.25
    assert watch.check(resumed + T, 0) is None


def test_a_silent_peer_is_declared_dead_one_timeout_after_a_resume() -> None:
    for begin, end in itertools.product([0.25, 3.0, T - 0.25, T], [n / 4 for n in range(1, 20 * 4)]):
        watch = IdleWatch(T, 0.0, 0)
        dead = expire(watch, 0.0, [begin], pauses=[(begin, begin + end)])
        assert dead == begin + end + T, (begin, end, dead)


def test_checks_while_paused_return_the_timeout_even_when_bytes_arrived() -> None:
    watch = IdleWatch(T, 0.0, 0)
    watch.pause()
    assert watch.check(T, 5) == T
    assert watch.alive_until == 0.0  # the bytes came after the connect: the lower bound stays there
    assert watch.check(2 * T, 9) == T
    assert watch.alive_until == T  # they came after the check at T


def test_bytes_read_before_a_pause_are_evidence_of_life() -> None:
    # A byte at 0.25, 1.25, ..., 99.25 s, each handed to an async on_data that pauses reading for
    # 0.5 s (what `_callbacks_busy` does), then silence. The checks (at 8, 16, ... s) fall between
    # the pauses; the same stream without the pauses gives alive_until == 96.0.
    arrivals = [s + 0.25 for s in range(100)]
    watch = IdleWatch(T, 0.0, 0)
    dead = expire(watch, 0.0, arrivals, pauses=[(s, s + 0.5) for s in arrivals])
    assert dead == 99.75 + T
    # The module docstring: alive_until is "the check before the one that last saw bytes arrive",
    # at most one timeout before the last byte, even when resume() is what sees them first.
    assert watch.alive_until >= 99.25 - T


# ---- 5. how long a lost connection was alive ----------------------------------------------------


def os_error(code: int) -> OSError:
    return OSError(code, "x")  # Python picks the subclass: TimeoutError for ETIMEDOUT, ...


ETIMEDOUT = os_error(errno.ETIMEDOUT)
NOW = 1000.0
KEEPALIVE = (60.0, 10.0, 3)  # idle 60 s, then 3 probes 10 s apart: a window of 90 s


@pytest.mark.parametrize(
    ("error", "keepalive", "user_timeout", "alive_until"),
    [
        # The kernel's half-open detection: now minus the shortest window that could have fired.
        (ETIMEDOUT, KEEPALIVE, None, NOW - 90.0),
        (ETIMEDOUT, None, 30.0, NOW - 30.0),
        (ETIMEDOUT, KEEPALIVE, 30.0, NOW - 30.0),
        (ETIMEDOUT, KEEPALIVE, 120.0, NOW - 90.0),
        (ETIMEDOUT, KEEPALIVE, 90.0, NOW - 90.0),
        (ETIMEDOUT, (1.0, 0.5, 4), None, NOW - 3.0),
        (ETIMEDOUT, None, None, None),  # no window configured: nothing to subtract
        # Anything else says the connection was alive until now.
        (None, KEEPALIVE, 30.0, None),  # EOF
        (os_error(errno.ECONNRESET), KEEPALIVE, 30.0, None),
        (os_error(errno.EPIPE), KEEPALIVE, 30.0, None),
        (os_error(errno.ECONNREFUSED), KEEPALIVE, 30.0, None),
        (os_error(errno.EHOSTUNREACH), KEEPALIVE, 30.0, None),
        (TimeoutError(), KEEPALIVE, 30.0, None),  # no errno: not the kernel's detection
        (ConnectTimeout("connect_timeout"), KEEPALIVE, 30.0, None),
        (ssl.SSLError(1, "bad record mac"), KEEPALIVE, 30.0, None),
        (RuntimeError("other"), KEEPALIVE, 30.0, None),
    ],
)
def test_last_alive_after_each_kind_of_loss(
    error: BaseException | None,
    keepalive: tuple[float, float, int] | None,
    user_timeout: float | None,
    alive_until: float | None,
) -> None:
    watch = IdleWatch(T, 500.0, 0)  # passed but not consulted: only an IdleTimeout reads it
    assert last_alive(error, NOW, idle=watch, keepalive=keepalive, user_timeout=user_timeout) == alive_until
    assert last_alive(error, NOW, idle=None, keepalive=keepalive, user_timeout=user_timeout) == alive_until


def test_after_the_idle_deadline_the_last_evidence_of_life_is_the_watchs() -> None:
    watch = IdleWatch(T, 500.0, 0)
    dead = expire(watch, 500.0, [503.0, 509.0, 517.25])
    assert watch.alive_until == 516.0  # the check at 516 came before the one that saw 517.25
    error = IdleTimeout("idle_timeout")
    # keepalive and user_timeout are not consulted: the watch saw the silence itself.
    assert last_alive(error, dead, idle=watch, keepalive=KEEPALIVE, user_timeout=30.0) == 516.0
    assert last_alive(error, dead, idle=None, keepalive=KEEPALIVE, user_timeout=30.0) is None


def test_a_batch_being_flushed_stays_counted_until_the_transport_has_it() -> None:
    # A writer in another thread reads `batched`: bytes taken by the loop must not vanish from it
    # before the transport's buffer holds them (wait_writable() from another thread saw True).
    outbox = Outbox()
    outbox.add_to_batch(b"abc")
    data = outbox.begin_flush()
    assert (data, outbox.batched, outbox.batch) == (b"abc", 3, [])
    assert outbox.add_to_batch(b"de") is True  # a new batch starts: schedule another flush
    outbox.end_flush(len(data))
    assert outbox.batched == 2


def test_a_write_larger_than_max_write_buffer_is_told_it_can_never_fit() -> None:
    # The refusal used to say "the peer is not reading fast enough; wait for wait_writable()", which
    # can never help a write that alone exceeds the limit (a huge request through a Pipeline).
    options = replace(DEFAULT_OPTIONS, max_write_buffer=1000)
    machine = ConnectionMachine(Backoff(), None, random.Random(0))
    too_big = refusal(BUFFER_FULL, "db:5432", 1001, 0, 0, machine, options)
    assert isinstance(too_big, BufferFull)
    assert "larger than max_write_buffer=1000" in str(too_big)
    assert "wait_writable" not in str(too_big)
    behind = refusal(BUFFER_FULL, "db:5432", 600, 600, 0, machine, options)
    assert "wait for wait_writable()" in str(behind)  # a write that fits once the peer reads


@pytest.mark.parametrize(
    ("count", "phrase"), [(0, "0 failed attempts"), (1, "1 failed attempt"), (2, "2 failed attempts")]
)
def test_failed_attempts_are_counted_in_words(count: int, phrase: str) -> None:
    assert failed_attempts(count) == phrase
