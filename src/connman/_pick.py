"""Choosing a pool member: round-robin, or rendezvous hashing by key. Pure: no IO, no clock.

Rendezvous (highest random weight) hashing gives each (key, member) pair a score and picks the live
member with the highest. When a member goes down, only the keys it owned move, each to its runner-up;
when it comes back, they move back. A memcache-style client needs exactly this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["key_bytes", "rendezvous", "round_robin"]


def key_bytes(key: object) -> bytes:
    """The bytes a pick key hashes as: str (UTF-8), bytes-like or int."""
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode()
    raise TypeError(f"key must be str, bytes or int, not {key!r}")


def score(key: bytes, member: bytes) -> int:
    """The weight of `member` for `key`: 64 bits of BLAKE2b, stable across processes and runs."""
    digest = hashlib.blake2b(member + b"\x00" + key, digest_size=8, person=b"connman").digest()
    return int.from_bytes(digest, "big")


def rendezvous(key: bytes, members: Sequence[bytes], live: Sequence[bool]) -> int | None:
    """The index of the live member with the highest score for `key`; None if none is live."""
    best: int | None = None
    best_score = -1
    for index, member in enumerate(members):
        if live[index]:
            weight = score(key, member)
            if weight > best_score:
                best, best_score = index, weight
    return best


def round_robin(counter: int, live: Sequence[bool]) -> tuple[int | None, int]:
    """The next live member after position `counter`; returns (index or None, the new counter)."""
    count = len(live)
    for step in range(count):
        index = (counter + step) % count
        if live[index]:
            return index, index + 1
    return None, counter
