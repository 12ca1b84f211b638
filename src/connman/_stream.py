"""`Stream`: the bytes of a managed connection as an iterator, with reading paused while it lags.

A `Stream` is an `on_data` callable: connman hands it each chunk, and it keeps them for a consumer
that iterates (`async for`, or `for` in sync code). When more than `max_buffer` bytes wait, it returns
an awaitable to connman's dispatcher, which pauses reading until the consumer has caught up (half of
`max_buffer`): TCP's flow control then slows the peer, and memory stays bounded.

Across resets the iteration goes on: connman calls `reset()` when a connection ends, and if that
connection delivered bytes the stream yields one `b""` there, a marker that the bytes before it and
after it come from different connections (no real chunk is ever empty). The iteration ends once the
stream is closed or its connection is disconnected, after the chunks already received.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

from ._portal import Signal, wait_until
from ._state import State
from .connection import Connection
from .manager import ConnectionManager, default_manager

__all__ = ["Stream"]

#: Default `max_buffer` of `Stream`: bytes kept for the consumer before reading is paused.
DEFAULT_MAX_BUFFER: Final = 256 * 1024


class Stream:
    """The bytes received on a connection, as an iterator of chunks; see the module docstring.

    Use it as the `on_data` of a connection, or let it make one (`stream.connect(port, host)`): only
    then does the iteration end at `disconnect()`; otherwise `close()` ends it::

        stream = connman.Stream()
        conn = stream.connect(port, host)
        async for chunk in stream:      # `for chunk in stream:` in sync code
            if not chunk:
                ...                     # b"": the connection was lost here; the next chunk is from a new one

    Args:
        max_buffer: Bytes kept for a lagging consumer before reading is paused: 256 KiB by default.
            Reading resumes once half of it is consumed. A single chunk larger than this is kept
            whole (asyncio reads at most 256 KiB at once).

    Raises:
        TypeError: `max_buffer` is not an int.
        ValueError: `max_buffer` is below 1.
    """

    __slots__ = (
        "_chunks",
        "_closed",
        "_conn",
        "_delivered",
        "_lock",
        "_loop",
        "_resume",
        "_signal",
        "_size",
        "_thread",
        "max_buffer",
    )

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int):
            raise TypeError(f"max_buffer must be an int (bytes), not {type(max_buffer).__name__}")
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1 byte, not {max_buffer}")
        self.max_buffer = max_buffer
        """Bytes kept before reading is paused."""
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._delivered = False  # bytes arrived since the last reset marker
        self._closed = False
        self._conn: Connection | None = None
        self._signal = Signal()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0  # the loop's thread
        self._resume: asyncio.Future[None] | None = None  # reading paused until it is done
        self._lock = threading.Lock()  # the producer's loop thread and a consumer in another thread

    def connect(
        self, port: int, host: str, *, manager: ConnectionManager | None = None, **options: Any
    ) -> Connection:
        """Open a managed connection whose bytes this stream yields.

        The iteration ends when it is disconnected. `options` are `connect()`'s, `on_connect` and
        `on_reset` included.

        Raises:
            ValueError: The stream has a connection already.
            TypeError: `on_data` or `handler` given.
        """
        if self._conn is not None:
            raise ValueError("this stream has a connection already")
        given = sorted({"on_data", "handler"} & options.keys())
        if given:
            raise TypeError(f"the stream is the connection's on_data; do not pass {', '.join(given)}")
        self._conn = (manager if manager is not None else default_manager()).connect(
            port, host, on_data=self, **options
        )
        return self._conn

    @property
    def buffered(self) -> int:
        """Bytes received and not consumed yet."""
        return self._size

    # ---- the producer side: connman's calls, on the connection's loop -------------------------

    def __call__(self, data: bytes) -> object:
        """Keep `data` for the consumer; past `max_buffer`, return an awaitable (reading pauses)."""
        if self._closed:
            return None
        resume = None
        # Under the lock with the consumer's `_take()` (any thread): the count stays exact, and a
        # consumer that empties the buffer either runs before this chunk is counted or sees `_resume`.
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            self._delivered = True
            if self._size > self.max_buffer:
                loop = self._loop = asyncio.get_running_loop()
                self._thread = threading.get_ident()
                resume = self._resume = loop.create_future()
        self._signal.fire()
        return resume

    def reset(self) -> None:
        """The connection ended: mark it with `b""` if it delivered bytes.

        Not at disconnect: the iteration ends there."""
        conn = self._conn
        if conn is not None and conn.state is State.CLOSED:
            return
        if self._delivered and not self._closed:
            self._delivered = False
            self._chunks.append(b"")
            self._signal.fire()

    def close(self) -> None:
        """End the iteration once the chunks received so far are consumed (does not disconnect)."""
        self._closed = True
        self._signal.fire()
        self._wake_producer()

    # ---- the consumer side: any thread or loop -------------------------------------------------

    def _next_or_end(self) -> bool | None:
        # True: a chunk waits; False: the end; None: wait.
        if self._chunks:
            return True
        conn = self._conn
        if self._closed or (conn is not None and conn.state is State.CLOSED):
            return False
        return None

    def _signals(self) -> tuple[Signal, ...]:
        conn = self._conn
        return (self._signal,) if conn is None else (self._signal, conn.signal)

    def _take(self) -> bytes:
        with self._lock:
            chunk = self._chunks.popleft()
            self._size -= len(chunk)
            caught_up = self._resume is not None and self._size <= self.max_buffer // 2
        if caught_up:
            self._wake_producer()
        return chunk

    def _wake_producer(self) -> None:
        with self._lock:
            resume, loop = self._resume, self._loop
            if resume is None or loop is None:
                return
            self._resume = None

        def wake() -> None:
            if not resume.done():  # cancelled when the connection was disconnected
                resume.set_result(None)

        if threading.get_ident() == self._thread:
            wake()
        else:
            try:
                loop.call_soon_threadsafe(wake)
            except RuntimeError:  # the loop has closed: nothing waits for it
                pass

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            waited = await wait_until(self._signals(), self._next_or_end, None, False)
            if not waited:
                raise StopAsyncIteration
        return self._take()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if not self._chunks:
            waited = wait_until(self._signals(), self._next_or_end, None, False)
            if not waited.result():
                raise StopIteration
        return self._take()
