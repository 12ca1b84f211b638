"""The two steps every write and every chunk take, in C when `connman._speedups` is built.

`Writer.write` is `Connection.write`'s fast path; `Receiver.data_received` and
`Receiver.buffer_updated` are a protocol's receive path, with `Dispatcher.deliver`'s common case for
`on_data`. They are base classes, so that their fields live where the C code reads them without a
lookup: `Connection` is a `Writer`, `ManagedProtocol` a `Receiver`, `Dispatcher` a
`DispatcherBase`.

The Python classes here are the reference; `_speedups.c` mirrors them field for field and step for
step, and hands everything but the common case back to the same Python methods (`_write_slow`,
`Dispatcher._run`, `Dispatcher._delivered`, `BufferedManagedProtocol._filled`). In pure Python each
step is a frame of bytecode, and on uvloop those frames were most of what connman added to a round
trip (decision 54).

`CONNMAN_PURE_PYTHON=1` in the environment, at import, selects the Python classes; `ACCELERATED`
says which are in use. The test suite runs under both.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable
from threading import get_ident as _get_ident
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import asyncio

__all__ = ["ACCELERATED", "REFERENCE", "DispatcherBase", "Receiver", "Writer"]


class Writer:
    """`Connection.write()`'s fast path, and the fields it decides on."""

    __slots__ = ("_bytes_out", "_fast", "_headroom", "_thread_id", "_transport", "_writing_paused")

    _transport: asyncio.Transport | None
    #: Bytes handed to transports, all of them.
    _bytes_out: int
    #: The fast path is open: up, writing not paused, nothing batched by another thread.
    _fast: bool
    #: Below the high-water mark, a write of up to this many bytes cannot pass `max_write_buffer`.
    _headroom: int
    #: The loop's thread: only there may the transport be written to.
    _thread_id: int
    _writing_paused: bool

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Send `data` (bytes-like) now, or queue it while down if `queue_while_down` allows.

        Every byte not yet handed to the kernel counts against `max_write_buffer`: the transport's
        buffer, writes from other threads not flushed yet, and this write, whole.

        Returns:
            True while the send buffer is below its high-water mark (64 KiB, or half of
            `max_write_buffer` if smaller); False once it is above (the peer or the network is
            slower than the writer): stop writing until `wait_writable()`. Like node's
            `socket.write()`, the data was accepted either way.

        Raises:
            TypeError: `data` is not bytes-like.
            BufferFull: The unsent bytes would exceed `max_write_buffer`; nothing of `data` was sent.
            NotConnected: The connection is down and queueing is off (`queue_while_down=0`).
            QueueFull: Queueing `data` would exceed `queue_while_down` bytes; the queue is unchanged.
            Disconnected: `disconnect()` was called.
            GaveUp: The connection failed for good (`max_attempts` or `give_up_after`).
        """
        transport = self._transport
        # On the loop's thread, up, below the high-water mark, nothing batched (`_fast`), small
        # enough that the limit cannot be reached. Anything else takes the full decision.
        if (
            transport is not None
            and type(data) is bytes
            and self._fast
            and _get_ident() == self._thread_id
            and (size := len(data)) <= self._headroom
            and not transport.is_closing()
        ):
            self._bytes_out += size
            transport.write(data)
            return not self._writing_paused
        return self._write_slow(data)

    def _write_slow(self, data: bytes | bytearray | memoryview) -> bool:
        raise NotImplementedError  # Connection's


class DispatcherBase:
    """The fields of a `Dispatcher` that the receive path reads."""

    __slots__ = ("_queue", "_running", "_slow")

    #: What was asked for while a callback ran, in order (made on first use).
    _queue: deque[Any] | None
    #: A callback is running (or being awaited): new calls queue.
    _running: bool
    #: Sync callbacks running longer than this many seconds are named in a warning; 0: untimed.
    _slow: float

    def deliver(self, fn: Callable[[bytes], object], data: bytes) -> None:
        raise NotImplementedError  # Dispatcher's


class Receiver:
    """A protocol's receive path: count the chunk, hand it to `on_data` through the dispatcher."""

    __slots__ = ("active", "buffer", "dispatcher", "on_data", "received")

    #: Cleared once the connection is done with this protocol: what arrives then is dropped.
    active: bool
    #: The buffer a `BufferedProtocol` is read into (`buffer_updated`); None for a plain one.
    buffer: memoryview | None
    dispatcher: DispatcherBase
    on_data: Callable[[bytes], object]
    #: Bytes received on this transport and handed to `on_data`.
    received: int

    def data_received(self, data: bytes) -> None:
        if self.active:
            self.received += len(data)
            self.dispatcher.deliver(self.on_data, data)

    def buffer_updated(self, nbytes: int) -> None:
        if self.active:
            buffer = self.buffer
            if buffer is None:
                raise TypeError("buffer_updated: the protocol has no buffer")
            if not 0 <= nbytes <= len(buffer):
                raise ValueError(f"buffer_updated: nbytes must be 0 to {len(buffer)}, not {nbytes}")
            data = buffer[:nbytes].tobytes()  # on_data's own copy: the buffer is read into again
            if nbytes == len(buffer):
                self._filled()
            self.received += nbytes
            self.dispatcher.deliver(self.on_data, data)

    def _filled(self) -> None:
        """A read filled the buffer: more is waiting (`BufferedManagedProtocol`'s)."""
        raise NotImplementedError


#: The Python classes, whichever are in use: the tests hold the C ones to them.
REFERENCE: Final[dict[str, type[Writer | DispatcherBase | Receiver]]] = {
    "Writer": Writer,
    "DispatcherBase": DispatcherBase,
    "Receiver": Receiver,
}

# A free-threaded CPython (3.13+, `sys._is_gil_enabled()` False) would run the C classes without the
# GIL their fields rely on: the Python classes there.
if (
    not TYPE_CHECKING
    and not os.environ.get("CONNMAN_PURE_PYTHON")
    and getattr(sys, "_is_gil_enabled", lambda: True)()
):
    try:
        from ._speedups import DispatcherBase, Receiver, Writer
    except ImportError:  # not built (no C compiler at install): the Python classes above
        pass

#: Whether the C classes are in use.
ACCELERATED: Final = Writer.__module__ == "connman._speedups"
