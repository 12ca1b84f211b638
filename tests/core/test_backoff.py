"""The backoff policy, exactly and exhaustively where it is small: no clock, no IO."""

from __future__ import annotations

import random

import pytest

from connman import Backoff
from connman._backoff import JITTER_MODES


def test_defaults_are_the_documented_ones() -> None:
    assert Backoff() == Backoff(initial=0.1, factor=1.6, cap=1.0, jitter="equal", min_uptime=1.0)


def test_no_jitter_grows_by_factor_until_cap() -> None:
    policy = Backoff(initial=0.1, factor=2.0, cap=1.0, jitter="none")
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_original_schedule_is_20ms_doubling_to_163_84s() -> None:
    policy = Backoff.original()
    delays = [policy.base_delay(n) for n in range(16)]
    assert delays[0] == pytest.approx(0.02)
    assert delays[13] == pytest.approx(163.84)
    assert delays[14] == delays[15] == 163.84
    assert policy.min_uptime == 0


def test_factor_one_is_a_constant_delay() -> None:
    policy = Backoff(initial=0.5, factor=1, cap=0.5, jitter="none")
    assert {policy.base_delay(n) for n in range(50)} == {0.5}


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff().base_delay(10**6) == Backoff().cap == 1.0


@pytest.mark.parametrize("jitter", JITTER_MODES)
def test_every_mode_stays_within_its_bounds(jitter: str) -> None:
    policy = Backoff(initial=0.1, factor=1.6, cap=2.0, jitter=jitter)  # type: ignore[arg-type]
    rng = random.Random(1234)
    previous = None
    for attempt in range(40):
        for _ in range(50):
            delay = policy.delay(attempt, rng, previous)
            base = policy.base_delay(attempt)
            if jitter == "none":
                assert delay == base
            elif jitter == "full":
                assert 0 <= delay <= base
            elif jitter == "equal":
                assert base / 2 <= delay <= base
            else:
                assert policy.initial <= delay <= min(policy.cap, 3 * max(previous or 0.1, 0.1))
            assert 0 <= delay <= policy.cap
            previous = delay


@pytest.mark.parametrize("jitter", JITTER_MODES)
def test_same_seed_same_schedule(jitter: str) -> None:
    policy = Backoff(jitter=jitter)  # type: ignore[arg-type]

    def schedule(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [policy.delay(n, rng, 0.3) for n in range(20)]

    assert schedule(7) == schedule(7)
    if jitter != "none":
        assert schedule(7) != schedule(8)


def test_jitter_spreads_1000_clients_over_many_10ms_windows() -> None:
    # Pure version of the reconnect storm: 1,000 clients, each at its 5th wait.
    policy = Backoff()
    rng = random.Random(42)
    windows: dict[int, int] = {}
    for _ in range(1000):
        window = int(policy.delay(5, rng) / 0.01)
        windows[window] = windows.get(window, 0) + 1
    assert max(windows.values()) <= 50  # no 10 ms window holds more than 5 %


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"initial": 0}, ValueError, "initial must be a finite number > 0"),
        ({"initial": -1}, ValueError, "initial must be"),
        ({"initial": float("nan")}, ValueError, "initial must be"),
        ({"initial": "1"}, TypeError, "initial must be a number of seconds"),
        ({"initial": True}, TypeError, "initial must be a number of seconds"),
        ({"factor": 0.5}, ValueError, "factor must be a finite number >= 1"),
        ({"factor": "2"}, TypeError, "factor must be a number"),
        ({"cap": 0.01}, ValueError, "cap must be >= initial"),
        ({"cap": float("inf")}, ValueError, "cap must be"),
        ({"jitter": "random"}, ValueError, "jitter must be one of"),
        ({"min_uptime": -1}, ValueError, "min_uptime must be a finite number >= 0"),
    ],
)
def test_bad_values_are_refused_with_a_clear_error(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 0"):
        Backoff().base_delay(-1)


def test_backoff_is_immutable() -> None:
    policy = Backoff()
    with pytest.raises(AttributeError):
        policy.cap = 5  # type: ignore[misc]
