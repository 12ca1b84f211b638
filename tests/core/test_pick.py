"""Member picking, pure: round-robin and rendezvous hashing."""

from __future__ import annotations

import pytest

from connman._pick import key_bytes, rendezvous, round_robin

MEMBERS = [f"127.0.0.1:{port}#0".encode() for port in range(7000, 7005)]


def test_round_robin_cycles_over_live_members_only() -> None:
    live = [True, False, True, True, False]
    counter, picked = 0, []
    for _ in range(6):
        index, counter = round_robin(counter, live)
        picked.append(index)
    assert picked == [0, 2, 3, 0, 2, 3]


def test_round_robin_with_nobody_live() -> None:
    assert round_robin(3, [False, False]) == (None, 3)
    assert round_robin(0, []) == (None, 0)


def test_rendezvous_is_stable_and_spreads_keys() -> None:
    live = [True] * 5
    owners = [rendezvous(key_bytes(f"key{n}"), MEMBERS, live) for n in range(1000)]
    assert owners == [rendezvous(key_bytes(f"key{n}"), MEMBERS, live) for n in range(1000)]
    counts = [owners.count(index) for index in range(5)]
    assert min(counts) > 120  # about 200 each


def test_rendezvous_moves_only_the_keys_of_a_member_that_went_down() -> None:
    live = [True] * 5
    before = [rendezvous(key_bytes(n), MEMBERS, live) for n in range(1000)]
    live[2] = False
    after = [rendezvous(key_bytes(n), MEMBERS, live) for n in range(1000)]
    for old, new in zip(before, after, strict=True):
        if old != 2:
            assert new == old
        else:
            assert new != 2
    live[2] = True
    assert [rendezvous(key_bytes(n), MEMBERS, live) for n in range(1000)] == before


def test_rendezvous_with_nobody_live() -> None:
    assert rendezvous(b"k", MEMBERS, [False] * 5) is None


@pytest.mark.parametrize(
    ("key", "expected"), [("a", b"a"), (b"a", b"a"), (bytearray(b"a"), b"a"), (42, b"42")]
)
def test_key_types(key: object, expected: bytes) -> None:
    assert key_bytes(key) == expected


@pytest.mark.parametrize("key", [None, 1.5, True, ["a"]])
def test_bad_keys(key: object) -> None:
    with pytest.raises(TypeError, match="key must be str, bytes or int"):
        key_bytes(key)
