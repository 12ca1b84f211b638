"""connman.framing: any split of a stream yields the same frames; an oversized or malformed frame is a
protocol error (Cause.PROTOCOL, reconnected, nothing after the bad byte delivered); no frame spans two
connections."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connman
from connman import Cause, ProtocolError, framing
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def feed(framer: framing.Framer[Any], chunks: list[bytes]) -> None:
    for chunk in chunks:
        assert framer(chunk) is None


# ---- any split yields the same frames (pure, no IO) ------------------------------------------------

MESSAGES = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r\n", b"")), max_size=20)
CUTS = st.lists(st.integers(min_value=0, max_value=2000), max_size=30)


@settings(max_examples=300, deadline=None)
@given(MESSAGES, CUTS, st.sampled_from([b"\n", b"\r\n", b"END\r\n"]))
def test_any_split_of_lines_yields_the_same_lines(
    messages: list[bytes], cuts: list[int], delimiter: bytes
) -> None:
    messages = [m.replace(delimiter, b"").replace(delimiter[:1], b"") for m in messages]
    stream = b"".join(m + delimiter for m in messages)
    got: list[bytes] = []
    framer = framing.lines(got.append, delimiter=delimiter, max_length=64)
    feed(framer, chunked(stream, cuts))
    assert got == messages
    assert framer.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), CUTS, st.sampled_from([1, 2, 4, 8]), st.booleans())
def test_any_split_of_length_prefixed_frames_yields_the_same_frames(
    frames: list[bytes], cuts: list[int], header: int, little: bool
) -> None:
    order: Literal["big", "little"] = "little" if little else "big"
    frames = [f[: 2 ** (8 * header) - 1] for f in frames]
    stream = b"".join(len(f).to_bytes(header, order) + f for f in frames)
    got: list[bytes] = []
    framer = framing.length_prefixed(got.append, header=header, byteorder=order, max_length=300)
    feed(framer, chunked(stream, cuts))
    assert got == frames
    assert framer.buffered == 0


def netstring(buffer: bytes, start: int) -> tuple[bytes, int] | None:
    """`5:hello,`: a custom splitter, malformed input raises ProtocolError."""
    colon = buffer.find(b":", start, start + 8)
    if colon < 0:
        if len(buffer) - start >= 8:
            raise ProtocolError("no length")
        return None
    digits = buffer[start:colon]
    if not digits.isdigit():
        raise ProtocolError(f"bad length {digits!r}")
    end = colon + 1 + int(digits)
    if len(buffer) < end + 1:
        return None
    if buffer[end : end + 1] != b",":
        raise ProtocolError("no comma")
    return buffer[colon + 1 : end], end + 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=12), CUTS)
def test_any_split_with_a_custom_splitter_yields_the_same_frames(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(b"%d:%s," % (len(f), f) for f in frames)
    got: list[bytes] = []
    framer = framing.split_by(got.append, netstring, max_length=100)
    feed(framer, chunked(stream, cuts))
    assert got == frames


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=10).filter(lambda b: b"\n" not in b), min_size=1, max_size=8),
    CUTS,
)
def test_an_oversized_line_stops_delivery_at_the_bad_frame_whatever_the_split(
    good: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(m + b"\n" for m in good) + b"x" * 11 + b"\nafter\n"
    got: list[bytes] = []
    framer = framing.lines(got.append, max_length=10)
    errors = 0
    for chunk in chunked(stream, cuts):
        try:
            framer(chunk)
        except ProtocolError:
            errors += 1
    assert errors == 1
    assert got == good  # nothing after the bad byte
    framer.reset()
    framer(b"fresh\n")
    assert got == [*good, b"fresh"]


def test_a_partial_line_longer_than_max_length_is_refused_before_its_delimiter_arrives() -> None:
    framer = framing.lines(lambda line: None, max_length=4)
    framer(b"abc")
    with pytest.raises(ProtocolError, match="exceeds max_length"):
        framer(b"de")
    assert framer.buffered == 0  # bounded memory: the bad frame is not kept
    assert framer(b"more\n") is None  # ignored until reset()


def test_a_length_header_over_max_length_is_refused_before_the_payload_arrives() -> None:
    framer = framing.length_prefixed(lambda frame: None, header=4, max_length=1000)
    with pytest.raises(ProtocolError):
        framer((10**6).to_bytes(4, "big"))
    assert framer.buffered == 0


def test_a_frame_of_exactly_max_length_passes() -> None:
    got: list[bytes] = []
    prefixed = framing.length_prefixed(got.append, header=2, max_length=5)
    prefixed(b"\x00\x05abc")
    prefixed(b"de")
    line = framing.lines(got.append, max_length=5)
    line(b"fghij")
    line(b"\n")
    assert got == [b"abcde", b"fghij"]


def test_frames_before_a_failing_callback_and_after_it_are_all_delivered_then_the_error_raised() -> None:
    got: list[bytes] = []

    def on_line(line: bytes) -> None:
        got.append(line)
        if line == b"bad":
            raise ValueError("bug in on_line")

    framer = framing.lines(on_line)
    with pytest.raises(ValueError, match="bug in on_line"):
        framer(b"a\nbad\nc\n")
    assert got == [b"a", b"bad", b"c"]
    framer(b"d\n")  # not a protocol error: the stream goes on
    assert got[-1] == b"d"


def test_bad_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match="on_frame must be callable"):
        framing.lines(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="delimiter must be bytes"):
        framing.lines(print, delimiter="\n")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delimiter"):
        framing.lines(print, delimiter=b"")
    with pytest.raises(ValueError, match="max_length"):
        framing.lines(print, max_length=0)
    with pytest.raises(TypeError, match="max_length"):
        framing.lines(print, max_length=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="header must be 1, 2, 4 or 8"):
        framing.length_prefixed(print, header=3)
    with pytest.raises(ValueError, match="byteorder"):
        framing.length_prefixed(print, byteorder="middle")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="split must be callable"):
        framing.split_by(print, "netstring")  # type: ignore[arg-type]


# ---- on a real connection ------------------------------------------------------------------------


async def test_an_oversized_frame_is_a_protocol_error_and_the_connection_comes_back(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(mode="silent") as server:
        lines: list[bytes] = []
        conn = cm.connect(
            server.port,
            "127.0.0.1",
            on_connect=recorder.on_connect,
            on_reset=recorder.on_reset,
            on_data=framing.lines(lines.append, max_length=8),
            backoff=FAST,
        )
        await recorder.wait("connect")
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"one\ntwo\n" + b"x" * 9 + b"\nafter-the-bad-byte\n")
        await recorder.wait("reset")
        assert conn.last_cause is Cause.PROTOCOL
        assert isinstance(conn.last_error, ProtocolError)
        await recorder.wait("connect", 2)
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"fresh\n")
        await recorder.until(lambda: b"fresh" in lines)
        assert lines == [b"one", b"two", b"fresh"]


async def test_a_frame_cut_by_a_reset_is_dropped_not_glued_to_the_next_connection(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(mode="silent") as server:
        lines: list[bytes] = []
        framer = framing.lines(lines.append)
        cm.connect(
            server.port,
            "127.0.0.1",
            on_connect=recorder.on_connect,
            on_reset=recorder.on_reset,
            on_data=framer,
            backoff=FAST,
        )
        await recorder.wait("connect")
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"whole\nhalf-a-li")
        await recorder.until(lambda: framer.buffered > 0)
        server.drop_clients()
        await recorder.wait("reset")
        assert framer.buffered == 0
        await recorder.wait("connect", 2)
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"ne\nnext\n")
        await recorder.until(lambda: b"next" in lines)
        assert lines == [b"whole", b"ne", b"next"]


async def test_a_peer_that_sends_garbage_is_dropped_with_cause_protocol_and_on_error_is_not_called(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    errors: list[BaseException] = []
    async with EchoServer(mode="silent") as server:
        frames: list[bytes] = []
        conn = cm.connect(
            server.port,
            "127.0.0.1",
            on_connect=recorder.on_connect,
            on_reset=recorder.on_reset,
            on_data=framing.split_by(frames.append, netstring),
            on_error=errors.append,
            backoff=FAST,
        )
        await recorder.wait("connect")
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"2:ok,\x00\xff garbage \x07:bad,")
        await recorder.wait("reset")
        assert conn.last_cause is Cause.PROTOCOL
        assert frames == [b"ok"]
        assert errors == []
        assert conn.stats.resets == 1


async def test_an_async_on_frame_is_awaited_in_order_with_reading_paused(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    seen: list[bytes] = []

    async def on_line(line: bytes) -> None:
        await asyncio.sleep(0)
        seen.append(line)
        recorder.add("line", line)

    async with EchoServer() as server:
        conn = cm.connect(
            server.port, "127.0.0.1", on_connect=recorder.on_connect, on_data=framing.lines(on_line)
        )
        await recorder.wait("connect")
        conn.write(b"a\nb\nc\n")
        await recorder.wait("line", 3, timeout=BOUND)
        assert seen == [b"a", b"b", b"c"]
