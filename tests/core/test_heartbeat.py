"""The heartbeat policy (`_heartbeat.py`), driven with explicit times: no loop, no socket, no clock.

`drive()` fires the watch's one timer exactly as `connection.py` does (at the delay each check returns)
and counts the bytes that arrived before each check; a peer that answers pings adds an arrival one
round trip after each ping.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Sequence

import pytest

import connman
from connman._heartbeat import Beat, Heartbeat, HeartbeatWatch

IV, TO = 1.0, 0.5  # interval, timeout
BEAT = Heartbeat(IV, TO, b"ping")


def drive(
    watch: HeartbeatWatch,
    start: float,
    arrivals: Sequence[float] = (),
    *,
    answer_after: float | None = None,
    until: float = 1e9,
    pauses: Sequence[tuple[float, float]] = (),
) -> tuple[list[float], float | None]:
    """Fire the timer until the watch says DEAD or `until`; return the ping times and the death time."""
    arrived = sorted(arrivals)
    pings: list[float] = []
    pause_edges = sorted([(begin, "pause") for begin, _ in pauses] + [(end, "resume") for _, end in pauses])
    at = start + IV  # the first check is due `interval` after the connect
    for _ in range(100_000):
        if at > until:
            return pings, None
        while pause_edges and pause_edges[0][0] <= at:
            edge_at, edge = pause_edges.pop(0)
            if edge == "pause":
                watch.pause()
            else:
                watch.resume(edge_at, bisect.bisect_right(arrived, edge_at))
        beat, delay = watch.check(at, bisect.bisect_right(arrived, at))
        if beat is Beat.DEAD:
            return pings, at
        if beat is Beat.PING:
            pings.append(at)
            if answer_after is not None:
                bisect.insort(arrived, at + answer_after)
        assert delay > 0
        at += delay
    raise AssertionError("the watch never settled")


def test_a_silent_peer_is_pinged_after_interval_and_dropped_timeout_later() -> None:
    pings, dead = drive(HeartbeatWatch(BEAT, 100.0, 0), 100.0)
    assert pings == [100.0 + IV]
    assert dead == pytest.approx(100.0 + IV + TO)


def test_a_busy_peer_is_never_pinged() -> None:
    arrivals = [i * 0.1 for i in range(1, 1000)]  # a byte every 100 ms for 100 s
    pings, dead = drive(HeartbeatWatch(BEAT, 0.0, 0), 0.0, arrivals, until=99.9)
    assert pings == []
    assert dead is None


def test_a_quiet_peer_that_answers_every_ping_is_never_dropped() -> None:
    watch = HeartbeatWatch(BEAT, 0.0, 0)
    pings, dead = drive(watch, 0.0, answer_after=0.01, until=30 * (IV + TO))
    assert dead is None
    assert len(pings) >= 20  # it asked, and was answered, about once per interval + min(interval, timeout)
    assert all(later - earlier >= IV for earlier, later in itertools.pairwise(pings))


@pytest.mark.parametrize(("interval", "timeout"), [(1.0, 0.5), (1.0, 3.0), (0.2, 0.2)])
def test_a_peer_that_stops_is_dropped_within_two_intervals_plus_timeout_of_its_last_byte(
    interval: float, timeout: float
) -> None:
    rng = random.Random(13)
    for _ in range(300):
        # A chatty peer (never silent for a whole interval) that stops at a random moment.
        arrivals = [rng.uniform(0, interval * 0.99)]
        for _ in range(rng.randrange(0, 60)):
            arrivals.append(arrivals[-1] + rng.uniform(0.001, interval * 0.99))
        last = arrivals[-1]
        watch = HeartbeatWatch(Heartbeat(interval, timeout, b"."), 0.0, 0)
        pings, dead = _drive_with(watch, interval, arrivals)
        assert dead is not None
        assert all(ping > last for ping in pings)  # never pinged while it was chatty
        assert interval + timeout <= dead - last + 1e-9 <= 2 * interval + timeout + 1e-9, (last, dead)
        final_ping = pings[-1]
        assert interval <= final_ping - last + 1e-9 <= 2 * interval + 1e-9, (last, final_ping)
        assert dead == pytest.approx(final_ping + timeout)
        # The evidence of life is a lower bound of the last byte.
        assert watch.alive_until <= last


def _drive_with(
    watch: HeartbeatWatch, interval: float, arrivals: Sequence[float]
) -> tuple[list[float], float | None]:
    pings: list[float] = []
    at = interval
    for _ in range(100_000):
        beat, delay = watch.check(at, bisect.bisect_right(arrivals, at))
        if beat is Beat.DEAD:
            return pings, at
        if beat is Beat.PING:
            pings.append(at)
        at += delay
    raise AssertionError("never settled")


def test_a_peer_that_answers_a_ping_late_but_within_timeout_stays() -> None:
    pings, dead = drive(HeartbeatWatch(BEAT, 0.0, 0), 0.0, answer_after=TO * 0.9, until=50.0)
    assert dead is None
    assert pings


def test_a_peer_that_answers_after_the_timeout_is_dropped() -> None:
    pings, dead = drive(HeartbeatWatch(BEAT, 0.0, 0), 0.0, answer_after=TO * 1.5)
    assert pings == [IV]
    assert dead == pytest.approx(IV + TO)


def test_a_long_timeout_is_checked_every_interval_so_a_reply_is_seen_early() -> None:
    watch = HeartbeatWatch(Heartbeat(1.0, 10.0, b"."), 0.0, 0)
    assert watch.check(1.0, 0) == (Beat.PING, 1.0)
    assert watch.check(2.0, 0) == (Beat.WAIT, 1.0)  # unanswered, checked again after `interval`
    assert watch.check(3.0, 1) == (Beat.WAIT, 1.0)  # the reply: a full interval of silence needed again
    assert watch.check(4.0, 1) == (Beat.PING, 1.0)


def test_a_check_a_hair_early_says_how_long_is_left() -> None:
    watch = HeartbeatWatch(BEAT, 0.0, 0)
    beat, delay = watch.check(0.4, 0)
    assert beat is Beat.WAIT
    assert delay == pytest.approx(IV - 0.4)
    pinged = IV - 0.0005
    assert watch.check(pinged, 0)[0] is Beat.PING  # within the loop clock's grain
    beat, delay = watch.check(pinged + TO - 0.2, 0)
    assert beat is Beat.WAIT
    assert delay == pytest.approx(0.2)
    assert watch.check(pinged + TO, 0)[0] is Beat.DEAD


def test_bytes_received_before_the_watch_started_do_not_count() -> None:
    watch = HeartbeatWatch(BEAT, 7.0, 123)
    assert watch.check(7.0 + IV, 123)[0] is Beat.PING
    assert watch.alive_until == 7.0


def test_no_ping_and_no_death_while_connman_pauses_reading() -> None:
    # An async callback pauses reading for 10 s: no ping, no verdict; a full interval after the resume.
    pings, dead = drive(HeartbeatWatch(BEAT, 0.0, 0), 0.0, pauses=[(0.5, 10.5)])
    assert pings == [pytest.approx(10.5 + IV)]
    assert dead == pytest.approx(10.5 + IV + TO)


def test_a_pause_while_a_ping_is_unanswered_keeps_the_ping_with_its_timeout_from_the_resume() -> None:
    watch = HeartbeatWatch(BEAT, 0.0, 0)
    assert watch.check(IV, 0)[0] is Beat.PING
    watch.pause()
    assert watch.check(IV + TO, 0) == (Beat.WAIT, IV)  # no verdict while the reply could not be read
    resumed = IV + TO + 5
    watch.resume(resumed, 0)
    assert watch.ping_at == resumed
    assert watch.check(resumed + TO * 0.9, 0)[0] is Beat.WAIT  # the reply may still come
    assert watch.check(resumed + TO, 0)[0] is Beat.DEAD


def test_a_reply_read_at_the_resume_answers_the_ping_kept_over_the_pause() -> None:
    watch = HeartbeatWatch(BEAT, 0.0, 0)
    assert watch.check(IV, 0)[0] is Beat.PING
    watch.pause()
    watch.resume(IV + 5, 0)
    assert watch.check(IV + 5 + TO * 0.5, 3) == (Beat.WAIT, IV)  # answered: a full interval again


def test_an_async_send_that_pauses_reading_at_every_ping_still_finds_a_silent_peer() -> None:
    # The ping's own async `send` pauses reading from the ping until it returns (here 10 ms): the
    # pause used to forget the ping, so a silent peer was pinged forever and never dropped.
    watch = HeartbeatWatch(BEAT, 0.0, 0)
    at, dead = IV, None
    for _ in range(100):
        beat, delay = watch.check(at, 0)
        if beat is Beat.DEAD:
            dead = at
            break
        if beat is Beat.PING:
            watch.pause()
            watch.resume(at + 0.01, 0)
            delay = watch.due_at - at
        at += delay
    assert dead == pytest.approx(IV + 0.01 + TO)


# ---- the value object --------------------------------------------------------------------------


def test_heartbeat_keeps_its_numbers_as_floats_and_copies_a_buffer() -> None:
    buffer = bytearray(b"PING\r\n")
    beat = connman.Heartbeat(5, 2, buffer)  # type: ignore[arg-type]
    buffer[:] = b"xxxxxx"
    assert beat == connman.Heartbeat(5.0, 2.0, b"PING\r\n")
    assert isinstance(beat.interval, float)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 1, b"."), ValueError, "interval must be a finite number > 0, not 0"),
        ((1, -1, b"."), ValueError, "timeout must be a finite number > 0, not -1"),
        ((float("inf"), 1, b"."), ValueError, "interval must be a finite number > 0"),
        (("1", 1, b"."), TypeError, "interval must be a number of seconds, not '1'"),
        ((1, True, b"."), TypeError, "timeout must be a number of seconds, not True"),
        ((1, 1, b""), ValueError, "send must be non-empty bytes or a callable"),
        ((1, 1, "PING"), TypeError, "send must be bytes or a callable taking the connection, not 'PING'"),
    ],
)
def test_bad_heartbeats_are_refused_naming_the_argument(
    args: tuple[object, object, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        connman.Heartbeat(*args)  # type: ignore[arg-type]


def test_the_heartbeat_option_must_be_a_heartbeat() -> None:
    with pytest.raises(TypeError, match=re.escape("heartbeat must be a connman.Heartbeat or None, not 5")):
        connman.ConnectionManager().connect(1, "127.0.0.1", heartbeat=5)  # type: ignore[arg-type]
