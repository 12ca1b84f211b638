"""`Connection`, the asyncio driver: it executes the actions of the pure state machine.

The driver owns every asyncio object of a managed connection: the attempt task, the retry timer, the
transport and its protocol. Each attempt gets a fresh `_Protocol`; when the machine says
`CloseTransport` or `AbortConnect`, the protocol is deactivated first, so nothing a stale transport
reports later can reach the machine or the application.

Thread safety: methods called on the loop's own thread run inline; from any other thread they are
marshalled onto the loop (see `_thread.py`). `write()` from other threads appends to a locked list that
one loop callback flushes, so a thread's writes keep their order and one call's bytes never interleave
with another's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import mmap
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from ._callbacks import Callbacks, Dispatcher, report, resume_caller
from ._causes import Cause
from ._options import Endpoint, Options, check_timeout
from ._state import (
    AbortConnect,
    Action,
    CancelRetry,
    CloseTransport,
    ConnectFailed,
    ConnectionLost,
    ConnectionMachine,
    ConnectSucceeded,
    DisconnectRequested,
    Event,
    NotifyConnected,
    NotifyGaveUp,
    NotifyReset,
    ReconnectRequested,
    RetryDue,
    ScheduleRetry,
    StartConnect,
    State,
)
from ._thread import Wait, run_wait
from .errors import BufferFull, ConnectTimeout, Disconnected, GaveUp, IdleTimeout, NotConnected, QueueFull

if TYPE_CHECKING:
    from .manager import ConnectionManager

__all__ = ["Connection", "Stats"]

logger: Final = logging.getLogger("connman")

#: Guards every connection's list of writes from other threads. One lock for all: the critical
#: sections are a few bytecodes long, and a lock per connection costs memory in a 10,000-connection pool.
_FOREIGN_WRITES_LOCK: Final = threading.Lock()

#: After `disconnect()`, unsent bytes get this long to drain before the transport is aborted, so a
#: peer that stopped reading cannot keep `wait_closed()` waiting forever.
CLOSE_LINGER: Final = 2.0

Bytes = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of one connection's counters (trio's `statistics()`: immutable, named fields).

    Attributes:
        state: The state when the snapshot was taken.
        connects: Times the connection was established.
        resets: Times an established connection was lost (each fired `on_reset`).
        failed_attempts: Attempts that never connected.
        bytes_in: Bytes received and handed to `on_data`.
        bytes_out: Bytes handed to the transport by `write()` / `writelines()`.
        queued: Bytes waiting in the write queue (`queue_while_down`).
        last_error: Why the last attempt failed or the last connection was lost; None for a clean EOF.
        last_cause: `last_error` as a `Cause` (eof, reset, refused, timeout, half-open, dns, tls, ...).
        connected_since: Wall-clock time (`time.time()`) of the current connection; None when down.
        in_state_for: Seconds spent in `state` so far.
        connect_latency: Seconds the last successful attempt took (resolution, TCP connect and TLS
            handshake); None before the first connect.
        last_outage: Seconds the connection was down before its last (re)connect: from the loss, or
            from the first failed attempt, to the connect. None if it never was down.
    """

    state: State
    connects: int
    resets: int
    failed_attempts: int
    bytes_in: int
    bytes_out: int
    queued: int
    last_error: BaseException | None
    last_cause: Cause | None
    connected_since: float | None
    in_state_for: float
    connect_latency: float | None
    last_outage: float | None


class _Protocol(asyncio.Protocol):
    """The protocol of one attempt; inert once `active` is cleared."""

    __slots__ = ("active", "owner", "transport")

    def __init__(self, owner: Connection) -> None:
        self.owner = owner
        self.active = True
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self.owner
        transport = cast(asyncio.Transport, transport)
        owner._live += 1
        if not self.active:
            transport.abort()
            return
        self.transport = transport
        owner._made(self)

    def data_received(self, data: bytes) -> None:
        if self.active:
            owner = self.owner
            owner._bytes_in += len(data)
            owner._dispatcher.deliver(owner._callbacks.on_data, data)

    def eof_received(self) -> bool:
        return False  # close our side too: a half-closed managed connection is a lost one

    def connection_lost(self, exc: Exception | None) -> None:
        owner = self.owner
        owner._live -= 1
        if self.active:
            self.active = False
            owner._lost(exc)
        elif owner._linger is not None and owner._live == 0:
            owner._linger.cancel()
            owner._linger = None
        owner._changed()

    def pause_writing(self) -> None:
        if self.active:
            self.owner._writing_paused = True

    def resume_writing(self) -> None:
        if self.active:
            self.owner._writing_paused = False
            self.owner._changed()


class _BufferedProtocol(_Protocol, asyncio.BufferedProtocol):
    """The receive path for the default event loop: asyncio reads into one reused buffer.

    With a plain `Protocol`, asyncio's selector loop asks for a fresh 256 KiB `bytes` on every read
    and then shrinks it; with a `BufferedProtocol` it calls `recv_into()` on a buffer we keep, and we
    copy out only the bytes that arrived. One buffer serves every connection of a loop: the loop
    calls `get_buffer()`, reads and calls `buffer_updated()` in one go, and `on_data` gets its own
    copy before anything else can run. The buffer is an anonymous `mmap`, so it starts on a page
    boundary (a `bytearray` does not, and that alone costs bulk reads about 40 %).
    """

    __slots__ = ("buffer",)

    def __init__(self, owner: Connection, buffer: memoryview) -> None:
        super().__init__(owner)
        self.buffer = buffer

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.active:
            owner = self.owner
            owner._bytes_in += nbytes
            owner._dispatcher.deliver(owner._callbacks.on_data, self.buffer[:nbytes].tobytes())


RECEIVE_BUFFER_SIZE: Final = 256 * 1024

#: CONNMAN_BUFFERED=0 uses a plain `Protocol` everywhere (for comparisons; see `_receive_buffer`).
_USE_BUFFERED: Final = os.environ.get("CONNMAN_BUFFERED", "1") != "0"

#: The shared receive buffer of each event loop that uses `_BufferedProtocol` (see there).
_receive_buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = (
    weakref.WeakKeyDictionary()
)


def _receive_buffer(loop: asyncio.AbstractEventLoop, options: Options) -> memoryview | None:
    """The buffer for `_BufferedProtocol`, or None where a plain `Protocol` is faster or needed.

    uvloop already reads into a buffer of its own and hands over `bytes`; TLS goes through asyncio's
    SSL protocol, which has its own buffering. Set CONNMAN_BUFFERED=0 to use `Protocol` everywhere.
    """
    if not _USE_BUFFERED or "ssl" in options.create_connection or type(loop).__module__.startswith("uvloop"):
        return None
    buffer = _receive_buffers.get(loop)
    if buffer is None:
        buffer = _receive_buffers[loop] = memoryview(mmap.mmap(-1, RECEIVE_BUFFER_SIZE))
    return buffer


class Connection:
    """A managed TCP connection that re-establishes itself until `disconnect()`.

    Made by `connman.connect()` / `ConnectionManager.connect()` / `Pool.add_connection()`, never directly.
    It starts connecting at once, in the background.
    """

    __slots__ = (
        "__weakref__",
        "_attempt_started",
        "_bytes_in",
        "_bytes_out",
        "_callbacks",
        "_change",
        "_connect_latency",
        "_connect_task",
        "_dispatcher",
        "_endpoint",
        "_foreign_bytes",
        "_foreign_writes",
        "_idle",
        "_idle_mark",
        "_linger",
        "_live",
        "_loop",
        "_machine",
        "_manager",
        "_options",
        "_protocol",
        "_queue",
        "_queued",
        "_receive_buffer",
        "_resume",
        "_state_since",
        "_thread_id",
        "_timer",
        "_transport",
        "_writing_paused",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        callbacks: Callbacks,
        options: Options,
        loop: asyncio.AbstractEventLoop,
        thread_id: int,
        manager: ConnectionManager | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._callbacks = callbacks
        self._options = options
        self._loop = loop
        self._thread_id = thread_id
        self._manager = manager
        self._machine = ConnectionMachine(
            options.backoff, options.max_attempts, give_up_after=options.give_up_after
        )
        self._dispatcher = Dispatcher(loop, callbacks.on_error, self._callbacks_busy)
        self._connect_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._idle_mark = 0
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._resume: Callable[[], object] | None = None
        self._change: asyncio.Future[None] | None = None
        self._live = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._queue: deque[bytes] | None = None  # the write queue, made on first use
        self._queued = 0
        self._state_since = loop.time()
        self._attempt_started = 0.0
        self._connect_latency: float | None = None
        self._writing_paused = False
        self._foreign_writes: list[bytes] | None = None  # made by the first write from another thread
        self._foreign_bytes = 0
        self._receive_buffer = _receive_buffer(loop, options)

    def __repr__(self) -> str:
        return f"<Connection {self._endpoint} {self._machine.state.value}>"

    # ---- properties ------------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        """Where this connection goes (`port`, `host`)."""
        return self._endpoint

    @property
    def state(self) -> State:
        """The current `State`: CONNECTING, CONNECTED, WAITING, FAILED or CLOSED."""
        return self._machine.state

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now. Never waits."""
        return self._machine.state is State.CONNECTED

    @property
    def transport(self) -> asyncio.Transport | None:
        """The current asyncio transport, or None while down. Closing it counts as a drop."""
        return self._transport

    @property
    def socket(self) -> socket.socket | None:
        """The current socket (asyncio's wrapper; `setsockopt` works on it), or None while down."""
        transport = self._transport
        return None if transport is None else transport.get_extra_info("socket")

    @property
    def peername(self) -> Any:
        """The address of the peer (`(host, port)` for IPv4), or None while down."""
        transport = self._transport
        return None if transport is None else transport.get_extra_info("peername")

    @property
    def last_error(self) -> BaseException | None:
        """Why the last attempt failed or the last connection was lost (None for a clean EOF)."""
        return self._machine.last_error

    @property
    def last_cause(self) -> Cause | None:
        """`last_error` as one word (`Cause.RESET`, `Cause.HALF_OPEN`, `Cause.REFUSED`, ...)."""
        return self._machine.last_cause

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this connection lives on (connman's own thread's for sync callers)."""
        return self._loop

    @property
    def stats(self) -> Stats:
        """A `Stats` snapshot of the counters."""
        machine = self._machine
        in_state = self._loop.time() - self._state_since
        return Stats(
            state=machine.state,
            connects=machine.connects,
            resets=machine.resets,
            failed_attempts=machine.failed_attempts,
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
            queued=self._queued,
            last_error=machine.last_error,
            last_cause=machine.last_cause,
            # Derived from the loop's clock rather than stored: one float less per connection.
            connected_since=time.time() - in_state if machine.state is State.CONNECTED else None,
            in_state_for=in_state,
            connect_latency=self._connect_latency,
            last_outage=machine.last_outage,
        )

    # ---- writing ---------------------------------------------------------------------------------

    def write(self, data: Bytes) -> bool:
        """Send `data` (bytes-like) now, or queue it while down if `queue_while_down` allows.

        Returns:
            True while the transport's send buffer is below its high-water mark; False once it is above
            (the peer or the network is slower than the writer): stop writing until `drain()`. Like
            node's `socket.write()`, the data was accepted either way.

        Raises:
            TypeError: `data` is not bytes-like.
            BufferFull: The send buffer would exceed `max_write_buffer` bytes (the peer is not
                reading); nothing of `data` was sent.
            NotConnected: The connection is down and queueing is off (`queue_while_down=0`).
            QueueFull: Queueing `data` would exceed `queue_while_down` bytes; the queue is unchanged.
            Disconnected: `disconnect()` was called.
            GaveUp: The connection failed for good (`max_attempts`).
        """
        if threading.get_ident() != self._thread_id:
            self._write_from_thread((data,))
            return not self._writing_paused
        transport = self._transport
        if transport is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
            if self._writing_paused:
                self._check_buffer(transport, len(data))
            self._bytes_out += len(data)
            transport.write(data)
            return not self._writing_paused
        self._write_while_down(_as_bytes(data))
        return True

    def writelines(self, chunks: Iterable[Bytes]) -> bool:
        """Send several bytes-like chunks, in order, as one write; see `write()`."""
        if isinstance(chunks, (bytes, bytearray, memoryview)) or not isinstance(chunks, Iterable):
            raise TypeError(f"chunks must be an iterable of bytes-like objects, not {type(chunks).__name__}")
        data = b"".join(_as_bytes(chunk) for chunk in chunks)
        if data:
            return self.write(data)
        return not self._writing_paused

    def _check_buffer(self, transport: asyncio.Transport, size: int) -> None:
        # Only called above the high-water mark, so the common case costs one attribute test.
        limit = self._options.max_write_buffer
        buffered = transport.get_write_buffer_size()
        if limit is not None and buffered + size > limit:
            raise BufferFull(
                f"write of {size} bytes to {self._endpoint} would grow the send buffer past"
                f" max_write_buffer={limit} ({buffered} bytes buffered: the peer is not reading);"
                " wait for drain()"
            )

    @property
    def writable(self) -> bool:
        """False while the send buffer is above its high-water mark (see `write()` and `drain()`)."""
        return not self._writing_paused

    def drain(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until the send buffer is below its low-water mark again.

        Returns:
            A `Wait` that is True once writing may go on, False if `timeout` passed first or the
            connection went down (its buffer is gone with it).
        """
        check_timeout(timeout)
        return run_wait(self._loop, lambda: self._wait_for(_is_drained, timeout), timeout)

    def _write_while_down(self, data: bytes) -> None:
        state = self._machine.state
        if state is State.CLOSED:
            raise Disconnected(f"connection to {self._endpoint} was disconnected by the application")
        if state is State.FAILED:
            raise GaveUp(
                f"connection to {self._endpoint} gave up after {self._options.max_attempts} attempts"
                f" (last error: {self._machine.last_error!r}); call reconnect() to try again"
            )
        limit = self._options.queue_while_down
        if not limit:
            raise NotConnected(
                f"connection to {self._endpoint} is {state.value}, not connected"
                " (pass queue_while_down=N to queue writes while down)"
            )
        if self._queued + len(data) > limit:
            raise QueueFull(
                f"write of {len(data)} bytes to {self._endpoint} would exceed queue_while_down="
                f"{limit} ({self._queued} bytes queued already)"
            )
        if self._queue is None:
            self._queue = deque()
        self._queue.append(data)
        self._queued += len(data)

    def _write_from_thread(self, chunks: tuple[Bytes, ...]) -> None:
        data = b"".join(_as_bytes(chunk) for chunk in chunks)
        state = self._machine.state
        down = state is not State.CONNECTED
        if down:
            # Decide here, in the caller's thread, so the error reaches the caller. Queueing is
            # checked again on the loop, where the state is authoritative.
            if state in (State.CLOSED, State.FAILED) or not self._options.queue_while_down:
                self._write_while_down(data)
        elif self._writing_paused and (transport := self._transport) is not None:
            self._check_buffer(transport, len(data))  # a racy read, but the bound only needs to hold roughly
        with _FOREIGN_WRITES_LOCK:
            limit = self._options.queue_while_down
            if down and self._queued + self._foreign_bytes + len(data) > limit:
                raise QueueFull(
                    f"write of {len(data)} bytes to {self._endpoint} would exceed queue_while_down={limit}"
                    f" ({self._queued + self._foreign_bytes} bytes queued already)"
                )
            pending = self._foreign_writes
            first = not pending
            if pending is None:
                pending = self._foreign_writes = []
            pending.append(data)
            self._foreign_bytes += len(data)
        if first:
            self._loop.call_soon_threadsafe(self._flush_foreign_writes)

    def _flush_foreign_writes(self) -> None:
        with _FOREIGN_WRITES_LOCK:
            chunks, self._foreign_writes = self._foreign_writes or [], None
            self._foreign_bytes = 0
        data = b"".join(chunks)
        transport = self._transport
        if transport is not None:
            self._bytes_out += len(data)
            transport.write(data)
            return
        try:
            self._write_while_down(data)
        except (NotConnected, QueueFull, Disconnected, GaveUp) as exc:
            # The connection went down between the caller's check and this callback: these bytes
            # are lost as bytes in the kernel's send buffer are lost when a connection drops.
            logger.warning("%d bytes written from another thread were lost: %s", len(data), exc)

    def _flush_queue(self, transport: asyncio.Transport) -> None:
        queue = self._queue
        if queue:
            self._bytes_out += self._queued
            transport.writelines(queue)
            queue.clear()
            self._queued = 0

    # ---- control ---------------------------------------------------------------------------------

    def disconnect(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Close this connection for good: nothing reconnects and no callback fires after this.

        Works in every state (connecting, connected, waiting to retry, failed) and is idempotent.
        Queued writes (`queue_while_down`) are discarded; bytes already written are flushed for up to
        2 s before the socket is aborted.

        Args:
            timeout: For sync callers, how long to block until the socket is closed, in seconds;
                `None` waits as long as it takes.

        Returns:
            A `Wait`: in async code, `await conn.disconnect()` waits until the socket is closed (or
            just call it and carry on); in sync code the call blocked already. True once closed.
        """
        check_timeout(timeout)
        if threading.get_ident() == self._thread_id:
            self._disconnect()
            return Wait(factory=lambda: self._wait_closed(timeout))

        async def disconnect_and_wait() -> bool:
            self._disconnect()
            return await self._wait_closed(timeout)

        return run_wait(self._loop, disconnect_and_wait, timeout)

    def _disconnect(self) -> None:
        if self._machine.state is State.CLOSED:
            return
        self._handle(DisconnectRequested())
        self._dispatcher.clear()
        self._resume = None
        if self._queue:
            logger.info("discarding %d queued bytes to %s at disconnect()", self._queued, self._endpoint)
            self._queue.clear()
            self._queued = 0
        if self._manager is not None:
            self._manager._forget(self)

    def reconnect(self) -> None:
        """Drop the connection now (firing `on_reset` if it was up) and connect again at once.

        From WAITING it skips the rest of the wait; from FAILED it starts retrying afresh.

        Raises:
            Disconnected: `disconnect()` was called.
        """
        if self._machine.state is State.CLOSED:
            raise Disconnected(f"connection to {self._endpoint} was disconnected by the application")
        if threading.get_ident() == self._thread_id:
            self._handle(ReconnectRequested())
        else:
            self._loop.call_soon_threadsafe(self._handle, ReconnectRequested())

    def wait_connected(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until the connection is up.

        Args:
            timeout: Seconds to wait at most; `None` waits as long as it takes.

        Returns:
            A `Wait` that is True once connected, False if `timeout` passed first, and False at once
            if the connection was disconnected or gave up. Await it in async code; in sync code the
            call blocks and the result is truthy or not (`if conn.wait_connected(5): ...`).
        """
        check_timeout(timeout)
        return run_wait(self._loop, lambda: self._wait_for(_is_up, timeout), timeout)

    def wait_closed(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until `disconnect()` has completed: socket closed, attempt cancelled, callbacks done.

        Returns:
            A `Wait` that is True once closed and False if `timeout` seconds passed first.
        """
        check_timeout(timeout)
        return run_wait(self._loop, lambda: self._wait_closed(timeout), timeout)

    async def _wait_closed(self, timeout: float | None) -> bool:
        return await self._wait_for(_is_closed, timeout)

    async def _wait_for(self, done: Callable[[Connection], bool | None], timeout: float | None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    outcome = done(self)
                    if outcome is not None:
                        return outcome
                    await self.changed()
        except TimeoutError:
            return False

    def changed(self) -> asyncio.Future[None]:
        """A future that completes at the next change of state (or of closing progress).

        Call it on the connection's loop. Pools use it to wait on several connections at once.
        """
        change = self._change
        if change is None or change.done():
            change = self._change = self._loop.create_future()
        return asyncio.shield(change)

    def _changed(self) -> None:
        change = self._change
        if change is not None:
            self._change = None
            if not change.done():
                change.set_result(None)

    # ---- driving the machine ---------------------------------------------------------------------

    def _start(self) -> None:
        logger.debug("= %s is CONNECTING", self._endpoint)
        self._execute(StartConnect())

    def _handle(self, event: Event) -> None:
        machine = self._machine
        before = machine.state
        actions = machine.handle(event)
        after = machine.state
        if after is not before:
            self._state_since = self._loop.time()
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("= %s is %s", self._endpoint, after.name)
            self._changed()
        for action in actions:
            if machine.state is not after:
                # A callback moved the machine on re-entrantly (disconnect() or reconnect() from
                # on_reset, say); that call already ran its own actions, so ours are stale.
                break
            self._execute(action)

    def _execute(self, action: Action) -> None:
        match action:
            case StartConnect():
                task = self._connect_task = self._loop.create_task(self._attempt())
                # Not a `finally` in _attempt(): a task cancelled before its first step never runs.
                task.add_done_callback(self._attempt_done)
            case NotifyConnected():
                self._dispatcher.call("on_connect", self._call_on_connect)
            case NotifyReset():
                logger.info("connection to %s lost: %r", self._endpoint, self._machine.last_error)
                self._dispatcher.call("on_reset", self._callbacks.on_reset, (), self._set_resume)
            case ScheduleRetry(delay=delay):
                logger.info(
                    "reconnecting to %s in %.2f seconds: %r",
                    self._endpoint,
                    delay,
                    self._machine.last_error,
                )
                self._timer = self._loop.call_later(delay, self._retry_due)
            case CancelRetry():
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            case AbortConnect():
                self._deactivate()
                if self._connect_task is not None:
                    self._connect_task.cancel()
            case CloseTransport():
                transport = self._transport
                self._deactivate()
                if transport is not None:
                    self._close(transport)
            case NotifyGaveUp(error=error):
                logger.warning(
                    "giving up on %s after %d attempts: %r",
                    self._endpoint,
                    self._machine.failures,
                    error,
                )
                on_give_up = self._options.on_give_up
                if on_give_up is not None:
                    self._dispatcher.call("on_give_up", on_give_up, (error,))

    def _deactivate(self) -> None:
        self._stop_idle_timer()
        protocol = self._protocol
        if protocol is not None:
            protocol.active = False
        self._protocol = None
        self._transport = None
        self._writing_paused = False

    def _close(self, transport: asyncio.Transport) -> None:
        if transport.get_write_buffer_size():
            transport.close()
            # Close flushes first; a peer that stopped reading must not hold the socket forever.
            self._linger = self._loop.call_later(CLOSE_LINGER, transport.abort)
        else:
            transport.close()

    def _retry_due(self) -> None:
        self._timer = None
        self._handle(RetryDue())

    async def _attempt(self) -> None:
        loop = self._loop
        self._attempt_started = loop.time()
        buffer = self._receive_buffer
        protocol = self._protocol = _Protocol(self) if buffer is None else _BufferedProtocol(self, buffer)
        endpoint = self._endpoint
        options = self._options
        timeout = options.connect_timeout
        error: BaseException | None = None
        try:
            async with asyncio.timeout(timeout) as deadline:
                host = endpoint.host
                extra = options.create_connection
                if options.resolver is not None:
                    host = await _resolve(options.resolver, endpoint)
                    if "ssl" in extra and "server_hostname" not in extra:
                        # Check the certificate against the name asked for, not the address.
                        extra = {**extra, "server_hostname": endpoint.host}
                await loop.create_connection(lambda: protocol, host, endpoint.port, **extra)
        except TimeoutError as exc:
            error = exc
            if deadline.expired():
                error = ConnectTimeout(f"connect to {endpoint} timed out after {timeout} s (connect_timeout)")
                error.__cause__ = exc
        except Exception as exc:  # OSError, socket.gaierror, ssl.SSLError, ...
            error = exc
        if error is not None and protocol.active and protocol.transport is None:
            # Kept in last_error: drop the frames, which hold this connection (and its whole attempt)
            # alive for as long as anyone keeps the exception, a log handler for instance.
            error.__traceback__ = None
            if error.__cause__ is not None:
                error.__cause__.__traceback__ = None
            self._protocol = None
            self._handle(ConnectFailed(error=error, now=loop.time()))

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        if self._connect_task is task:
            self._connect_task = None
        self._changed()

    def _made(self, protocol: _Protocol) -> None:
        transport = protocol.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            _set_tcp_options(sock, self._options)
        if self._options.idle_timeout is not None:
            self._idle_mark = self._bytes_in
            self._idle = self._loop.call_later(self._options.idle_timeout, self._idle_check)
        self._transport = transport
        self._connect_latency = self._loop.time() - self._attempt_started
        # Queued writes go out before anything else, before on_connect can write.
        self._flush_queue(transport)
        if self._dispatcher.busy:
            transport.pause_reading()
        self._handle(ConnectSucceeded(now=self._loop.time()))

    def _idle_check(self) -> None:
        # One timer per connection, re-armed only when it fires: the data path pays nothing. A dead
        # peer is therefore found between idle_timeout and twice idle_timeout after its last byte.
        timeout = self._options.idle_timeout
        transport = self._transport
        if transport is None or timeout is None:
            return
        if self._bytes_in != self._idle_mark:
            self._idle_mark = self._bytes_in
            self._idle = self._loop.call_later(timeout, self._idle_check)
            return
        self._idle = None
        protocol = self._protocol
        assert protocol is not None
        protocol.active = False  # we report the loss ourselves, with its cause
        transport.abort()
        self._lost(IdleTimeout(f"no data received for {timeout} s (idle_timeout): peer presumed dead"))

    def _stop_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _lost(self, exc: BaseException | None) -> None:
        self._deactivate()
        self._handle(ConnectionLost(error=exc, now=self._loop.time()))

    def _call_on_connect(self) -> object:
        resume = self._resume
        if resume is not None:
            self._resume = None
            return resume()
        return self._callbacks.on_connect(self)

    def _set_resume(self, result: object) -> None:
        if result is None:
            return
        try:
            self._resume = resume_caller(result, self)
        except TypeError as exc:
            report("on_reset", exc, self._callbacks.on_error)

    def _callbacks_busy(self, busy: bool) -> None:
        # While an async callback runs, reading is paused: backpressure for async on_data.
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if busy:
                transport.pause_reading()
            else:
                transport.resume_reading()
        if not busy:
            self._changed()


def _set_tcp_options(sock: Any, options: Options) -> None:
    if not options.nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    if options.keepalive is not None:
        idle, interval, count = options.keepalive
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS has TCP_KEEPALIVE instead
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, round(idle)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, round(interval)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    if options.user_timeout is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, round(options.user_timeout * 1000))


async def _resolve(resolver: Any, endpoint: Endpoint) -> str:
    address = resolver(endpoint.host, endpoint.port)
    if inspect.isawaitable(address):
        address = await address
    if not isinstance(address, str):
        raise TypeError(f"resolver must return an address str, not {address!r}")
    return address


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)  # a copy: the caller may reuse its buffer before we send it
    raise TypeError(f"data must be bytes-like, not {type(data).__name__}")


def _is_up(conn: Connection) -> bool | None:
    state = conn._machine.state
    if state is State.CONNECTED:
        return True
    if state in (State.CLOSED, State.FAILED):
        return False
    return None


def _is_drained(conn: Connection) -> bool | None:
    if conn._transport is None:
        return False
    return True if not conn._writing_paused else None


def _is_closed(conn: Connection) -> bool | None:
    if (
        conn._machine.state is State.CLOSED
        and conn._connect_task is None
        and conn._live == 0
        and not conn._dispatcher.busy
    ):
        return True
    return None
