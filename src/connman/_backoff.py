"""The reconnect backoff policy: a frozen value object that computes delays and never sleeps.

Randomness is injected (`rng`), so a schedule is reproducible from a seed; unlike websockets' `backoff()`
and urllib3's `Retry`, nothing here calls the global `random`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = ["JITTER_MODES", "Backoff", "Jitter"]

Jitter: TypeAlias = Literal["none", "full", "equal", "decorrelated"]
JITTER_MODES: Final[tuple[Jitter, ...]] = ("none", "full", "equal", "decorrelated")


def _check_seconds(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        accepted = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {accepted}, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """How long to wait before each reconnect attempt.

    The n-th wait (`attempt` counts from 0) is `min(cap, initial * factor ** attempt)`, then jittered.
    The attempt count resets only once a connection has stayed up for `min_uptime` seconds.

    The defaults (0.1 s growing x1.6 to 1 s, "equal" jitter, 1 s minimum uptime) are argued in
    `docs/decisions.md`. For comparison, the node.js original waited 20 ms doubling to 163.84 s with
    no jitter, and reset on every TCP connect; `Backoff.original()` reproduces that schedule.

    Args:
        initial: First delay, in seconds, before jitter. Must be > 0.
        factor: Growth per attempt. Must be >= 1; 1 means a constant delay.
        cap: Largest delay, in seconds, before jitter. Must be >= `initial`.
        jitter: "none" (exact delays), "full" (uniform in [0, d]), "equal" (uniform in [d/2, d]) or
            "decorrelated" (AWS's: uniform in [initial, 3 * previous], capped).
        min_uptime: Seconds a connection must stay up before the attempt count resets. 0 resets on
            every successful connect, as the original did.
    """

    initial: float = 0.1
    factor: float = 1.6
    cap: float = 1.0
    jitter: Jitter = "equal"
    min_uptime: float = 1.0

    def __post_init__(self) -> None:
        _check_seconds("initial", self.initial, positive=True)
        _check_seconds("cap", self.cap, positive=True)
        _check_seconds("min_uptime", self.min_uptime, positive=False)
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)):
            raise TypeError(f"factor must be a number, not {self.factor!r}")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"factor must be a finite number >= 1, not {self.factor!r}")
        if self.cap < self.initial:
            raise ValueError(f"cap must be >= initial ({self.initial!r}), not {self.cap!r}")
        if self.jitter not in JITTER_MODES:
            raise ValueError(f"jitter must be one of {JITTER_MODES!r}, not {self.jitter!r}")

    @classmethod
    def original(cls) -> Backoff:
        """The node.js original's schedule: 20 ms doubling to 163.84 s, no jitter, reset on connect.

        The original started at 10 ms and doubled *before* every wait while under 128 s, so its first
        wait was 20 ms and its last 163.84 s.
        """
        return cls(initial=0.02, factor=2.0, cap=163.84, jitter="none", min_uptime=0.0)

    def base_delay(self, attempt: int) -> float:
        """The delay before the `attempt`-th wait (from 0) without jitter, in seconds."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {attempt!r}")
        # Compare exponents rather than computing factor ** attempt, which overflows for long outages.
        if self.factor == 1 or attempt * math.log(self.factor) < math.log(self.cap / self.initial):
            return min(self.cap, self.initial * self.factor**attempt)
        return self.cap

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        """The jittered delay before the `attempt`-th wait, in seconds.

        Args:
            attempt: How many waits came before this one since the count last reset (from 0).
            rng: The source of randomness; pass `random.Random(seed)` for a reproducible schedule.
            previous: The delay returned for the wait before; used by "decorrelated" jitter only.
                `None` means there was none.

        Returns:
            A delay in seconds, never negative, never above `cap`.
        """
        base = self.base_delay(attempt)
        if self.jitter == "none":
            return base
        if self.jitter == "full":
            return rng.uniform(0.0, base)
        if self.jitter == "equal":
            return base / 2 + rng.uniform(0.0, base / 2)
        # "decorrelated": https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
        last = self.initial if previous is None else max(previous, self.initial)
        return min(self.cap, rng.uniform(self.initial, last * 3))

    def schedule(self, until: float, rng: random.Random, attempt_time: float = 0.0) -> list[float]:
        """The attempt start times of one client that retries after a drop at time 0, all failing.

        Up to `until` seconds, each attempt taking `attempt_time` seconds. Pure, for planning and for
        reconnect-storm estimates over many clients.
        """
        times: list[float] = []
        now = 0.0
        previous: float | None = None
        attempt = 0
        while True:
            previous = self.delay(attempt, rng, previous)
            now += previous
            if now > until:
                return times
            times.append(now)
            now += attempt_time
            attempt += 1


def peak_window_share(times: list[float], window: float, after: float, of: int) -> float:
    """The largest number of attempts in one `window`-second bucket after time `after`, as a share of
    `of` (the number of clients, or of attempts). 0.0 if there are none."""
    buckets: dict[int, int] = {}
    for t in times:
        if t >= after:
            bucket = int(t / window)
            buckets[bucket] = buckets.get(bucket, 0) + 1
    return max(buckets.values(), default=0) / of
