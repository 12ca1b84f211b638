"""Framing: turn the byte stream that `on_data` receives into whole messages.

TCP delivers bytes, not messages: one `on_data` call may hold half a line, or three replies at once.
Each function here returns an `on_data` callable (a `Framer`) that calls your callback once per
complete frame and keeps the rest until more bytes arrive:

    conn = connman.connect(port, host, on_data=connman.framing.lines(on_line))

- `lines(on_line, delimiter=b"\\n", max_length=65536)`: frames end with a delimiter (dropped).
- `length_prefixed(on_frame, header=4, byteorder="big", max_length=4 MiB)`: a big- or little-endian
  length header, then that many bytes.
- `split_by(on_frame, split, max_length=1 MiB)`: your own splitter, for anything else (RESP, the
  memcached text protocol).

A framer is cleared automatically when its connection goes away (connman calls its `reset()`), so no
frame ever spans two connections. A frame longer than `max_length`, or one the splitter calls malformed
(it raises `connman.ProtocolError`), is a protocol error: the connection is dropped and
re-established, its `last_cause` is `Cause.PROTOCOL`, and nothing after the bad byte is delivered.
Memory is bounded by `max_length` per connection. Frames are the only copies made: a frame that arrives
whole in one chunk is one slice of it.

`on_frame` is called synchronously, in order, on the connection's loop. If it returns an awaitable
(an `async def`), the frames of that chunk are awaited in order and reading is paused meanwhile, as for
an async `on_data`. An exception it raises is reported like any callback's (logged, `on_error`) after
the other frames of the chunk were delivered; a `ProtocolError` it raises drops the connection at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, Literal, TypeVar

from .errors import ProtocolError

__all__ = ["Framer", "Split", "length_prefixed", "lines", "split_by"]

F = TypeVar("F")

Split = Callable[[bytes, int], "tuple[F, int] | None"]
"""A splitter: `split(buffer, start)` looks for one frame in `buffer[start:]` and returns
`(frame, end)` (the frame, any object, and the offset just past it), or None if the frame is not
complete yet. It raises `ProtocolError` if the bytes cannot be a frame."""

#: Default `max_length` of `lines()`: 64 KiB.
LINE_MAX: Final = 65536
#: Default `max_length` of `length_prefixed()`: 4 MiB (gRPC's default message limit).
PREFIXED_MAX: Final = 4 * 1024 * 1024
#: Default `max_length` of `split_by()`: 1 MiB.
SPLIT_MAX: Final = 1024 * 1024


def _check_max_length(max_length: object) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(f"max_length must be an int (bytes), not {type(max_length).__name__}")
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1 byte, not {max_length}")
    return max_length


def _check_callable(name: str, value: object) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {value!r}")


class Framer(Generic[F]):
    """An `on_data` callable that splits the stream into frames.

    Made by `lines()`, `length_prefixed()` or `split_by()`.

    Calling it with bytes delivers every frame they complete; `reset()` drops the partial frame
    (connman calls it when the connection goes away). After a protocol error it ignores everything
    until `reset()`.
    """

    __slots__ = ("_broken", "_need", "_on_frame", "_overhead", "_pending", "max_length")

    def __init__(self, on_frame: Callable[[F], object], max_length: int) -> None:
        _check_callable("on_frame", on_frame)
        self.max_length = _check_max_length(max_length)
        self._on_frame = on_frame
        self._pending = bytearray()  # the start of a frame, waiting for the rest
        self._need = 0  # bytes the pending frame needs at least before it is worth splitting again
        self._overhead = 0  # bytes of a frame that max_length does not count (a length header)
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes received and kept for a frame not complete yet."""
        return len(self._pending)

    def reset(self) -> None:
        """Forget the partial frame and any protocol error: the next bytes start a new stream."""
        self._pending = bytearray()
        self._need = 0
        self._broken = False

    def __call__(self, data: bytes) -> object:
        """Deliver every frame that `data` completes; keep the rest."""
        if self._broken:
            return None
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._need:
                return None  # still short of what the frame announced: not worth a look
            data = bytes(pending)
            pending.clear()
        frames, rest, error = self._split(data)
        if error is None and rest:
            if len(rest) > self.max_length + self._overhead:
                error = self._too_long(len(rest))
            else:
                self._pending += rest
        if error is not None:
            self._broken = True
            self._pending = bytearray()
        if frames:
            return self._deliver(frames, error)
        if error is not None:
            raise error
        return None

    def _split(self, data: bytes) -> tuple[list[F], bytes, ProtocolError | None]:
        """The frames `data` holds, the bytes after them, and the protocol error that stopped it."""
        raise NotImplementedError

    def _too_long(self, size: int) -> ProtocolError:
        return ProtocolError(f"a frame of {size} bytes exceeds max_length ({self.max_length} bytes)")

    def _deliver(self, frames: list[F], error: ProtocolError | None) -> object:
        # Every frame goes to on_frame, even after one raised (reported once all are delivered);
        # a ProtocolError from on_frame stops at once: what follows it is out of step.
        on_frame = self._on_frame
        failure: BaseException | None = error
        awaitables: list[Awaitable[object]] | None = None
        for frame in frames:
            try:
                result = on_frame(frame)
            except ProtocolError:
                self._broken = True
                self._pending = bytearray()
                raise
            except Exception as exc:
                failure = failure or exc
                continue
            if result is not None and inspect.isawaitable(result):
                if awaitables is None:
                    awaitables = []
                awaitables.append(result)
        if awaitables is not None:
            return self._await_each(awaitables, failure)
        if failure is not None:
            raise failure
        return None

    async def _await_each(self, awaitables: list[Awaitable[object]], failure: BaseException | None) -> None:
        for awaitable in awaitables:
            try:
                await awaitable
            except ProtocolError:
                self._broken = True
                self._pending = bytearray()
                raise
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


class _Delimited(Framer[bytes]):
    __slots__ = ("_delimiter",)

    def __init__(self, on_frame: Callable[[bytes], object], delimiter: bytes, max_length: int) -> None:
        super().__init__(on_frame, max_length)
        self._delimiter = delimiter

    def __call__(self, data: bytes) -> object:
        if self._broken:
            return None
        pending = self._pending
        if pending:
            # Search only the new bytes, and the seam: a delimiter may straddle the two chunks.
            start = max(0, len(pending) - len(self._delimiter) + 1)
            pending += data
            if pending.find(self._delimiter, start) < 0:
                if len(pending) > self.max_length:
                    error = self._too_long(len(pending))
                    self.reset()
                    self._broken = True
                    raise error
                return None
            data = bytes(pending)
            pending.clear()
        return Framer.__call__(self, data)

    def _split(self, data: bytes) -> tuple[list[bytes], bytes, ProtocolError | None]:
        parts = data.split(self._delimiter)
        rest = parts.pop()
        limit = self.max_length
        for index, part in enumerate(parts):
            if len(part) > limit:
                return parts[:index], b"", self._too_long(len(part))
        return parts, rest, None


def lines(
    on_line: Callable[[bytes], object], *, delimiter: bytes = b"\n", max_length: int = LINE_MAX
) -> Framer[bytes]:
    """An `on_data` callable that calls `on_line(line)` once per complete line.

    Args:
        on_line: Called with each line, as bytes, without its delimiter.
        delimiter: What ends a line (bytes, at least one byte): `b"\\n"` by default, `b"\\r\\n"`
            for memcached, SMTP, RESP. With `b"\\n"`, a `\\r` before it stays in the line.
        max_length: The longest line accepted, in bytes, delimiter not counted: 65536 by default. A
            longer one is a protocol error (`Cause.PROTOCOL`): the connection is re-established.

    Raises:
        TypeError: `on_line` is not callable, or `delimiter` is not bytes.
        ValueError: `delimiter` is empty, or `max_length` is below 1.
    """
    if not isinstance(delimiter, bytes):
        raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
    if not delimiter:
        raise ValueError("delimiter must be at least one byte, not b''")
    return _Delimited(on_line, delimiter, max_length)


class _LengthPrefixed(Framer[bytes]):
    __slots__ = ("_byteorder", "_header")

    def __init__(
        self,
        on_frame: Callable[[bytes], object],
        header: int,
        byteorder: Literal["big", "little"],
        max_length: int,
    ) -> None:
        super().__init__(on_frame, max_length)
        self._header = self._overhead = header
        self._byteorder: Literal["big", "little"] = byteorder

    def _split(self, data: bytes) -> tuple[list[bytes], bytes, ProtocolError | None]:
        header, byteorder, limit = self._header, self._byteorder, self.max_length
        frames: list[bytes] = []
        position, size = 0, len(data)
        self._need = 0
        while size - position >= header:
            length = int.from_bytes(data[position : position + header], byteorder)
            if length > limit:  # known from the header: nothing of it is buffered
                return frames, b"", self._too_long(length)
            end = position + header + length
            if end > size:
                self._need = header + length
                break
            frames.append(data[position + header : end])
            position = end
        return frames, data[position:] if position < size else b"", None


def length_prefixed(
    on_frame: Callable[[bytes], object],
    *,
    header: int = 4,
    byteorder: Literal["big", "little"] = "big",
    max_length: int = PREFIXED_MAX,
) -> Framer[bytes]:
    """An `on_data` callable for frames that start with their length: `on_frame(payload)` per frame.

    Args:
        on_frame: Called with each frame's payload (bytes, without the header).
        header: Size of the length header in bytes: 1, 2, 4 (the default) or 8. The length it holds
            counts the payload only, unsigned.
        byteorder: "big" (network order, the default) or "little".
        max_length: The largest payload accepted, in bytes: 4 MiB by default. A header announcing more
            is a protocol error (`Cause.PROTOCOL`), detected before the payload is buffered.

    Raises:
        TypeError: `on_frame` is not callable, or `header` is not an int.
        ValueError: `header` is not 1, 2, 4 or 8, `byteorder` is neither "big" nor "little", or
            `max_length` is below 1.
    """
    if isinstance(header, bool) or not isinstance(header, int):
        raise TypeError(f"header must be an int (bytes), not {type(header).__name__}")
    if header not in (1, 2, 4, 8):
        raise ValueError(f"header must be 1, 2, 4 or 8 bytes, not {header}")
    if byteorder not in ("big", "little"):
        raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
    return _LengthPrefixed(on_frame, header, byteorder, max_length)


class _SplitBy(Framer[Any]):
    __slots__ = ("_split_one",)

    def __init__(self, on_frame: Callable[[Any], object], split: Split[Any], max_length: int) -> None:
        super().__init__(on_frame, max_length)
        _check_callable("split", split)
        self._split_one = split

    def _split(self, data: bytes) -> tuple[list[Any], bytes, ProtocolError | None]:
        split, limit = self._split_one, self.max_length
        frames: list[Any] = []
        position, size = 0, len(data)
        while position < size:
            try:
                found = split(data, position)
            except ProtocolError as exc:
                return frames, b"", exc
            if found is None:
                break
            frame, end = found
            if not (isinstance(end, int) and position < end <= size):
                error = ProtocolError(
                    f"the splitter returned end {end!r} for a frame at {position} of {size}"
                )
                return frames, b"", error
            if end - position > limit:
                return frames, b"", self._too_long(end - position)
            frames.append(frame)
            position = end
        return frames, data[position:] if position < size else b"", None


def split_by(on_frame: Callable[[F], object], split: Split[F], *, max_length: int = SPLIT_MAX) -> Framer[F]:
    """An `on_data` callable that uses your splitter: `on_frame(frame)` per frame it finds.

    Args:
        on_frame: Called with each frame, as `split` returned it (bytes, or a parsed reply).
        split: `split(buffer, start)` looks at `buffer[start:]` (bytes) and returns
            `(frame, end)`, `end` being the offset just past the frame, or None while the frame is
            incomplete. It raises `connman.ProtocolError` for bytes that cannot be a frame. It may be
            called again on the same incomplete bytes once more arrive.
        max_length: The longest frame accepted, in bytes: 1 MiB by default. An incomplete frame that
            grows past it is a protocol error too.

    Raises:
        TypeError: `on_frame` or `split` is not callable.
        ValueError: `max_length` is below 1.
    """
    return _SplitBy(on_frame, split, max_length)
