"""The reconnect storm, computed from the pure backoff for 10,000 clients dropped at the same instant
and kept out for 30 s: with the default policy no 10 ms window after the first second holds attempts
from more than 5 % of them; without jitter, each wave hits one window; the original likewise."""

from __future__ import annotations

import random

import pytest

from connman import Backoff
from connman._backoff import peak_window_share

CLIENTS = 10_000


def all_attempts(backoff: Backoff, until: float = 30.0) -> list[float]:
    rng = random.Random(2026)
    times: list[float] = []
    for _ in range(CLIENTS):
        times.extend(backoff.schedule(until, rng))
    return times


def test_default_policy_spreads_10000_clients() -> None:
    share = peak_window_share(all_attempts(Backoff()), window=0.01, after=1.0, of=CLIENTS)
    assert share <= 0.05, share


@pytest.mark.parametrize(
    "backoff", [Backoff(jitter="none"), Backoff.original()], ids=["no-jitter", "original"]
)
def test_without_jitter_every_client_hits_the_same_window(backoff: Backoff) -> None:
    share = peak_window_share(all_attempts(backoff), window=0.01, after=1.0, of=CLIENTS)
    assert share == 1.0


def test_schedule_follows_the_delays() -> None:
    exact = Backoff(initial=0.1, factor=2, cap=0.4, jitter="none")
    assert exact.schedule(1.5, random.Random(0)) == pytest.approx([0.1, 0.3, 0.7, 1.1, 1.5])
    assert exact.schedule(1.5, random.Random(0), attempt_time=0.1) == pytest.approx([0.1, 0.4, 0.9, 1.4])
    assert exact.schedule(0.05, random.Random(0)) == []


def test_peak_window_share_counts_only_after_the_start() -> None:
    assert peak_window_share([0.5, 0.5, 1.001, 1.002, 1.5], window=0.01, after=1.0, of=4) == 0.5
    assert peak_window_share([], window=0.01, after=1.0, of=4) == 0.0
