"""`Connection`, the asyncio driver: it executes what the pure core decides.

The core decides, without IO or clock: the lifecycle and the retries (`_state.py`), and the data-path
policy (`_flow.py`: write admission, back-pressure, the idle deadline, the close linger). This module
owns every asyncio object of a managed connection (the attempt task, the timers, the transport and its
protocol, `_protocol.py`) and does what the core says with them. Where a call runs and how a caller
waits is `_portal.py`'s business: side effects happen at the call, from any thread or loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from . import _flow, events
from ._callbacks import Callbacks, Dispatcher, resume_caller, slow_callback_limit
from ._causes import Cause, classify
from ._datapath import Writer
from ._dial import dial, direct_address
from ._endpoints import Route, UnixEndpoint
from ._flow import Admit, IdleWatch, Outbox, admit_write
from ._heartbeat import Beat, HeartbeatWatch
from ._options import Endpoint, Options, check_timeout
from ._portal import Home, Signal, Wait, on_fork_in_child, wait_until
from ._protocol import ManagedProtocol, new_protocol, set_tcp_options, shut_down
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
from ._stats import Stats

if TYPE_CHECKING:
    from ._hub import Hub
from .errors import (
    ConnectTimeout,
    ConnmanError,
    Disconnected,
    GaveUp,
    HeartbeatTimeout,
    IdleTimeout,
    LoopGone,
    NotConnected,
    ProtocolError,
    QueueFull,
)

__all__ = ["Connection", "Stats", "disconnect_many", "homes_of"]

logger: Final = logging.getLogger("connman")

#: Guards every connection's batch of writes from other threads. One lock for all: the critical
#: sections are a few bytecodes long, and a lock per connection costs memory in a 10,000-connection pool.
_BATCH_LOCK = threading.RLock()  # re-entered: transport.write() may call writing_paused()


#: Guards the making of a connection's `Signal` (`Connection.signal`), from any thread.
_SIGNAL_LOCK = threading.Lock()


def _new_locks() -> None:
    # A forked child: a thread of the parent may have held a lock at the fork.
    global _BATCH_LOCK, _SIGNAL_LOCK
    _BATCH_LOCK = threading.RLock()
    _SIGNAL_LOCK = threading.Lock()


on_fork_in_child(_new_locks)

#: Durations come from this clock, not the loop's (uvloop's is millisecond-grained).
_now: Final = time.monotonic

Bytes = bytes | bytearray | memoryview
_BYTES_LIKE: Final = (bytes, bytearray, memoryview)


class Connection(Writer):
    """A managed TCP connection that re-establishes itself until `disconnect()`.

    Made by `connman.connect()` / `ConnectionManager.connect()` / `Pool.add_connection()`, never directly.
    It starts connecting at once, in the background. Every method may be called from any thread or
    event loop; side effects (`write`, `disconnect`, `reconnect`) happen at the call, and the `Wait`
    that waiting calls return only waits.
    """

    __slots__ = (
        "__weakref__",
        "_attempt",
        "_attempt_started",
        "_beat",
        "_bytes_in",
        "_callbacks",
        "_changes",
        "_connect_latency",
        "_dispatcher",
        "_endpoint",
        "_home",
        "_hub",
        "_idle",
        "_idle_timer",
        "_live",
        "_machine",
        "_options",
        "_outbox",
        "_protocol",
        "_resume",
        "_route",
        "_signal",
        "_state_since",
        "_timer",
    )

    def __init__(
        self,
        endpoint: Endpoint | UnixEndpoint,
        callbacks: Callbacks,
        options: Options,
        home: Home,
        hub: Hub | None = None,
    ) -> None:
        self._endpoint = endpoint
        # Failover (`alternates`): None for the common single endpoint, one slot's worth.
        self._route: Route | None = None
        if options.alternates and isinstance(endpoint, Endpoint):
            self._route = Route([endpoint, *(Endpoint(port, host) for port, host in options.alternates)])
        self._callbacks = callbacks
        self._options = options
        self._home = home
        self._hub = hub
        self._machine = ConnectionMachine(
            options.backoff, options.max_attempts, give_up_after=options.give_up_after
        )
        self._dispatcher = Dispatcher(
            home.loop, callbacks.on_error, self, slow=slow_callback_limit(home.loop, home.owned)
        )
        self._signal: Signal | None = None  # made by the first wait (see `signal`)
        self._changes = 0
        self._attempt: ManagedProtocol | None = None  # the attempt in flight, by its protocol
        self._timer: asyncio.TimerHandle | None = None
        self._idle: IdleWatch | None = None
        self._beat: HeartbeatWatch | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._protocol: ManagedProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._resume: Callable[[], object] | None = None
        self._live = 0  # transports not closed yet, current or stale
        self._bytes_in = 0  # received on transports gone; the current one counts its own
        self._bytes_out = 0
        self._outbox: Outbox | None = None  # made by the first write queued or sent from another thread
        self._state_since = _now()
        self._attempt_started = 0.0
        self._connect_latency: float | None = None
        self._writing_paused = False
        self._fast = True  # see _refresh_fast
        self._thread_id = home.thread_id
        # Below the high-water mark a write of up to this many bytes cannot pass max_write_buffer.
        # (Capped at sys.maxsize, which the C form's field holds: a larger max_write_buffer is no limit.)
        self._headroom = min(_flow.water_marks(options.max_write_buffer)[2], sys.maxsize)
        home.submit(self._start)

    def __repr__(self) -> str:
        return f"<Connection {self._endpoint} {self._machine.state.value}>"

    # ---- properties ------------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint | UnixEndpoint:
        """Where this connection goes (`port`, `host`; or `path` for `connect_unix()`).

        With `alternates` it is the first endpoint; `stats.endpoint` is the one in use."""
        return self._endpoint

    @property
    def _target(self) -> Endpoint | UnixEndpoint:
        # The endpoint of the current connection, or of the next attempt.
        route = self._route
        return self._endpoint if route is None else route.current

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
        return self._home.loop

    @property
    def stats(self) -> Stats:
        """A `Stats` snapshot of the counters."""
        machine = self._machine
        protocol = self._protocol
        outbox = self._outbox
        in_state = _now() - self._state_since
        return Stats(
            state=machine.state,
            connects=machine.connects,
            resets=machine.resets,
            failed_attempts=machine.failed_attempts,
            bytes_in=self._bytes_in + (protocol.received if protocol is not None else 0),
            bytes_out=self._bytes_out,
            queued=0 if outbox is None else outbox.queued,
            last_error=machine.last_error,
            last_cause=machine.last_cause,
            # Derived rather than stored: one float less per connection.
            connected_since=time.time() - in_state if machine.state is State.CONNECTED else None,
            in_state_for=in_state,
            connect_latency=self._connect_latency,
            last_outage=machine.last_outage,
            endpoint=self._target,
        )

    # ---- writing ---------------------------------------------------------------------------------

    def _write_slow(self, data: Bytes) -> bool:
        # What write()'s fast path (`Writer.write`) leaves: the full decision, here or from a thread.
        if threading.get_ident() == self._thread_id:
            return self._write_here(data)
        return self._write_from_thread(data)

    def writelines(self, chunks: Iterable[Bytes]) -> bool:
        """Send several bytes-like chunks, in order, as one write; see `write()`."""
        if isinstance(chunks, _BYTES_LIKE) or not isinstance(chunks, Iterable):
            raise TypeError(f"chunks must be an iterable of bytes-like objects, not {type(chunks).__name__}")
        return self.write(b"".join(_as_bytes(chunk) for chunk in chunks))

    @property
    def writable(self) -> bool:
        """False while the send buffer is above its high-water mark (see `write()`)."""
        return self._writable() is True

    def _unflushed(self, transport: asyncio.Transport | None) -> tuple[bool, int, int]:
        # What the admission rule needs: is the transport open, the bytes not handed to the kernel,
        # and those batched from other threads. Read from any thread: plain attribute reads.
        outbox = self._outbox
        batched = 0 if outbox is None else outbox.batched
        if transport is None or transport.is_closing():
            return False, batched, batched
        return True, transport.get_write_buffer_size() + batched, batched

    def _admit(self, size: int, transport: asyncio.Transport | None) -> tuple[Admit, int]:
        # The verdict, and the unsent bytes it was made with; raises the refusal.
        transport_open, unflushed, batched = self._unflushed(transport)
        outbox = self._outbox
        verdict = admit_write(
            self._machine.state,
            transport_open,
            size,
            unflushed,
            batched + (0 if outbox is None else outbox.queued),
            max_buffer=self._options.max_write_buffer,
            queue_limit=self._options.queue_while_down,
        )
        if verdict is not Admit.SEND and verdict is not Admit.QUEUE:
            queued = 0 if outbox is None else outbox.queued + outbox.batched
            raise _flow.refusal(
                verdict, self._endpoint, size, unflushed, queued, self._machine, self._options
            )
        return verdict, unflushed

    def _write_here(self, data: Bytes) -> bool:
        size = _nbytes(data)
        with _BATCH_LOCK:  # against a writer in another thread deciding on the same numbers
            transport = self._transport
            if self._admit(size, transport)[0] is Admit.SEND:
                assert transport is not None
                self._bytes_out += size
                transport.write(data)
                return not self._writing_paused
            self._queue(_as_bytes(data))
            return True

    def _write_from_thread(self, data: Bytes) -> bool:
        # Batched for the loop, decided here, in the caller's thread, so that errors reach the caller.
        # The state may change before the loop flushes: see _flush_batch.
        if type(data) is bytes:
            size, chunk = len(data), data
        else:
            size, chunk = _nbytes(data), _as_bytes(data)
        with _BATCH_LOCK:
            self._fast = False  # first: the loop's fast path must not decide on numbers we are using
            try:
                verdict, unflushed = self._admit(size, self._transport)
            except Exception:
                self._refresh_fast()
                raise
            outbox = self._outbox
            if outbox is None:
                outbox = self._outbox = Outbox()
            first = outbox.add_to_batch(chunk)
            self._fast = False
        if first:
            try:
                self._home.submit(self._flush_batch)
            except LoopGone:
                with _BATCH_LOCK:
                    outbox.take_batch()
                raise
        if verdict is Admit.QUEUE:
            return True
        return not self._writing_paused and unflushed + size <= _flow.high_water(
            self._options.max_write_buffer
        )

    def _flush_batch(self) -> None:
        with _BATCH_LOCK:
            outbox = self._outbox
            if outbox is None:
                return
            data = outbox.begin_flush()
        try:
            if data:
                self._hand_over_batch(data)
        finally:
            with _BATCH_LOCK:
                outbox.end_flush(len(data))
                self._refresh_fast()
        self._changed()  # the batch no longer counts twice: wake wait_writable()

    def _hand_over_batch(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._bytes_out += len(data)  # admitted against the limit already, in the writer's thread
            transport.write(data)
            return
        try:
            self._admit(0, None)  # raises if refused; size 0: these bytes are counted in the batch already
        except (NotConnected, QueueFull, Disconnected, GaveUp) as exc:
            # The connection went down between the writer's check and this flush: these bytes are
            # lost as bytes in the kernel's send buffer are lost when a connection drops.
            logger.warning("%d bytes written from another thread were lost: %s", len(data), exc)
            return
        self._queue(data)

    def _queue(self, data: bytes) -> None:
        if self._outbox is None:
            self._outbox = Outbox()
        self._outbox.enqueue(data)

    def _writable(self) -> bool | None:
        # True: writing may go on; None: not yet (above the high-water mark); False: down.
        transport_open, unflushed, _ = self._unflushed(self._transport)
        if not transport_open:
            return False
        if self._writing_paused or unflushed > _flow.high_water(self._options.max_write_buffer):
            return None
        return True

    # ---- control ---------------------------------------------------------------------------------

    def disconnect(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Close this connection for good: nothing reconnects and no callback fires after this.

        Works in every state (connecting, connected, waiting to retry, failed) and is idempotent; it
        takes effect at the call, from any thread or loop, whether or not the result is awaited.
        Queued writes (`queue_while_down`) are discarded; bytes already written are flushed for up to
        2 s before the socket is aborted. If the connection's loop has ended, the socket is shut down
        from the calling thread.

        Args:
            timeout: How long to wait until the socket is closed, in seconds; `None` waits as long as
                it takes.

        Returns:
            A `Wait`: True once closed, False at the timeout (or if the socket of a connection whose
            loop has ended could not be shut down). Sync callers have blocked already; async callers
            may await it or carry on.
        """
        check_timeout(timeout)
        self._request_disconnect()
        return wait_until((self.signal,), self._closed, timeout, False, (self._home,))

    def _request_disconnect(self) -> None:
        try:
            self._home.submit(self._disconnect)
        except LoopGone:
            self._disconnect_dead()

    def _disconnect(self) -> None:
        if self._machine.state is State.CLOSED:
            return
        self._handle(DisconnectRequested())
        self._forget_pending()

    def _forget_pending(self) -> None:
        try:
            self._dispatcher.clear()
        except RuntimeError:  # its loop has closed: an async callback's task can no longer be cancelled
            pass
        self._resume = None
        outbox = self._outbox
        if outbox is not None:
            with _BATCH_LOCK:
                dropped = outbox.queued + outbox.batched
                outbox.take_queue()
                outbox.take_batch()
            if dropped:
                logger.info("discarding %d unsent bytes to %s at disconnect()", dropped, self._endpoint)
        hub = self._hub
        if hub is not None:
            closed = events.Closed(conn=self, endpoint=self._endpoint, at=_now()) if hub.listening else None
            hub.closed(self, closed)

    def _disconnect_dead(self) -> None:
        # The loop has ended: nothing will run there again. Drive the machine from this thread and
        # close by hand what can be closed: the socket, shut down so that the peer sees it closed.
        machine = self._machine
        if machine.state is not State.CLOSED:
            machine.handle(DisconnectRequested())
            self._state_since = _now()
            self._forget_pending()
        for handle in (self._timer, self._idle_timer):
            if handle is not None:
                handle.cancel()
        self._timer = self._idle_timer = None
        if self._attempt is not None:
            self._attempt.abandon()  # a socket still connecting: closed, as a cancelled task would
            self._attempt = None
        transport = self._transport
        self._deactivate()
        if transport is None or shut_down(transport):
            self._live = 0
        if transport is not None:
            logger.warning(
                "connection to %s outlived its event loop: its socket was shut down by hand;"
                " disconnect connections before their loop ends (async with ConnectionManager())",
                self._endpoint,
            )
        self._changed()

    def reconnect(self) -> None:
        """Drop the connection now (firing `on_reset` if it was up) and connect again at once.

        From WAITING it skips the rest of the wait; from FAILED it starts retrying afresh. Takes
        effect at the call, from any thread or loop.

        Raises:
            Disconnected: `disconnect()` was called.
            LoopGone: The connection's event loop has ended.
        """
        if self._machine.state is State.CLOSED:
            raise Disconnected(f"connection to {self._endpoint} was disconnected by the application")
        self._home.submit(self._reconnect)

    def _reconnect(self) -> None:
        if self._machine.state is not State.CLOSED:
            self._handle(ReconnectRequested())

    # ---- waiting ---------------------------------------------------------------------------------

    def wait_connected(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until the connection is up.

        Args:
            timeout: Seconds to wait at most; `None` waits as long as it takes.

        Returns:
            A `Wait` that is True once connected, False if `timeout` passed first, and False at once
            if the connection was disconnected or gave up. Await it in async code; in sync code the
            call blocks and the result is truthy or not (`if conn.wait_connected(5): ...`). It never
            raises for the timeout, even while connman's loop is busy in a callback.
        """
        check_timeout(timeout)
        return wait_until((self.signal,), self._up, timeout, False, (self._home,))

    def wait_closed(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until `disconnect()` has completed: socket closed, attempt cancelled, callbacks done.

        Returns:
            A `Wait` that is True once closed and False if `timeout` seconds passed first.
        """
        check_timeout(timeout)
        return wait_until((self.signal,), self._closed, timeout, False, (self._home,))

    def wait_changed(self, timeout: float | None = None) -> Wait[bool]:
        """Wait for the next change: of state, of closing progress, or of writability.

        Returns:
            A `Wait` that is True at the next change after the call, False if `timeout` passed first.
        """
        check_timeout(timeout)
        seen = self._changes
        return wait_until(
            (self.signal,), lambda: True if self._changes != seen else None, timeout, False, (self._home,)
        )

    def wait_writable(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until writing may go on: the send buffer is not above its high-water mark.

        Once above it, asyncio says so again only below the low-water mark, a quarter of it; see
        `write()`.

        Returns:
            A `Wait` that is True once writing may go on, False if `timeout` passed first or the
            connection is down (its buffer is gone with it).
        """
        check_timeout(timeout)
        return wait_until((self.signal,), self._writable, timeout, False, (self._home,))

    def wait_flushed(self, timeout: float | None = None) -> Wait[bool]:
        """Wait until every byte written has been handed to the kernel.

        That is: nothing queued, nothing batched from other threads, the transport's buffer empty.

        Bytes queued while down (`queue_while_down`) are waited for across the reconnect. No event
        reports an empty transport buffer, so this checks every 5 ms as well.

        Returns:
            A `Wait` that is True once flushed; False if `timeout` passed first, if the connection
            gave up with bytes unsent, or once it is disconnected.
        """
        check_timeout(timeout)
        return wait_until((self.signal,), self._flushed, timeout, False, (self._home,), poll=0.005)

    def drain(self, timeout: float | None = None) -> Wait[bool]:
        """The same as `wait_writable()` (node's and asyncio streams' name)."""
        return self.wait_writable(timeout)

    @property
    def signal(self) -> Signal:
        """Fired after each change of this connection (pools wait on their members through it)."""
        signal = self._signal
        if signal is None:
            # Made on first use, from any thread (most connections are never waited on). A change
            # the loop made before this exists fired nothing, but came before the waiter's check.
            with _SIGNAL_LOCK:
                signal = self._signal
                if signal is None:
                    signal = self._signal = Signal()
        return signal

    def _up(self) -> bool | None:
        state = self._machine.state
        if state is State.CONNECTED:
            return True
        if state is State.CLOSED or state is State.FAILED:
            return False
        return None

    def _flushed(self) -> bool | None:
        state = self._machine.state
        if state is State.CLOSED:
            return False  # what was still unsent is gone (disconnect() discards the queue)
        _, unflushed, _ = self._unflushed(self._transport)
        outbox = self._outbox
        if unflushed + (0 if outbox is None else outbox.queued) == 0:
            return True
        return False if state is State.FAILED else None

    def _closed(self) -> bool | None:
        if self._machine.state is not State.CLOSED:
            return None
        if not self._home.alive():
            return self._live == 0  # nothing will change any more: closed by hand, or not
        if self._attempt is None and self._live == 0 and not self._dispatcher.busy:
            return True
        return None

    def _changed(self) -> None:
        self._changes += 1
        signal = self._signal
        if signal is not None:
            signal.fire()

    # ---- driving the machine ---------------------------------------------------------------------

    def _start(self) -> None:
        logger.debug("= %s is CONNECTING", self._endpoint)
        if self._machine.state is State.CONNECTING:  # not disconnected before the loop got here
            action = StartConnect()
            hub = self._hub
            if hub is not None and hub.listening:
                self._report(hub, action, 0.0)
                if self._machine.state is not State.CONNECTING:
                    return  # a listener of AttemptStarted disconnected it: no attempt on a closed one
            self._execute(action)

    def _handle(self, event: Event) -> None:
        machine = self._machine
        before = machine.state
        actions = machine.handle(event)
        after = machine.state
        entered = self._state_since
        if after is not before:
            self._state_since = _now()
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("= %s is %s", self._endpoint, after.name)
            self._changed()
        hub = self._hub
        for action in actions:
            if machine.state is not after:
                # A callback moved the machine on re-entrantly (disconnect() or reconnect() from
                # on_reset, say); that call already ran its own actions, so ours are stale.
                break
            if hub is not None and hub.listening:
                self._report(hub, action, self._state_since - entered)
                if machine.state is not after and not isinstance(action, (NotifyReset, NotifyGaveUp)):
                    # A listener moved it on (disconnect() on RetryScheduled): stale too. What
                    # happened already (a loss, giving up) is still told to its callback.
                    break
            self._execute(action)

    def _report(self, hub: Hub, action: Action, in_state: float) -> None:
        # The event of an action, before it runs (before the callback it calls): a listener sees Lost
        # before anything on_reset does. `in_state`: how long the machine was in the state it left.
        machine, conn, endpoint, at = self._machine, self, self._endpoint, _now()
        event: events.Event
        match action:
            case StartConnect():
                attempt = machine.failures + 1
                event = events.AttemptStarted(conn=conn, endpoint=endpoint, at=at, attempt=attempt)
            case NotifyConnected():
                latency = self._connect_latency or 0.0
                event = events.Connected(conn=conn, endpoint=endpoint, at=at, latency=latency)
            case NotifyReset():
                event = events.Lost(
                    conn=conn,
                    endpoint=endpoint,
                    at=at,
                    error=machine.last_error,
                    cause=machine.last_cause or Cause.ERROR,
                    uptime=in_state,
                )
            case ScheduleRetry(delay=delay):
                event = events.RetryScheduled(
                    conn=conn, endpoint=endpoint, at=at, delay=delay, cause=machine.last_cause
                )
            case NotifyGaveUp(error=error, reason=reason, attempts=attempts):
                event = events.Failed(
                    conn=conn, endpoint=endpoint, at=at, reason=reason, error=error, attempts=attempts
                )
            case _:
                return
        hub.publish(event)

    def _execute(self, action: Action) -> None:
        loop = self._home.loop
        match action:
            case StartConnect():
                self._attempt_started = _now()
                options = self._options
                dialing = self._attempt = self._protocol = new_protocol(
                    loop, options, self, self._dispatcher, self._callbacks.on_data
                )
                target = self._target
                direct = direct_address(loop, target, options)
                if direct is not None:
                    dialing.connect(loop, *direct)
                else:
                    # One copy of the context for the task and its done callback, not two.
                    context = contextvars.copy_context()
                    task = loop.create_task(dial(loop, target, options, dialing), context=context)
                    dialing.start(task, context)
                if options.connect_timeout is not None:
                    self._home.deadlines(options.connect_timeout).add(dialing)
            case NotifyConnected():
                self._dispatcher.call("on_connect", self._call_on_connect, (self,))
            case NotifyReset():
                logger.info("connection to %s lost: %r", self._endpoint, self._machine.last_error)
                self._dispatcher.call("on_reset", self._callbacks.on_reset, (), self._set_resume)
            case ScheduleRetry(delay=delay):
                logger.info(
                    "reconnecting to %s in %.2f seconds: %r", self._endpoint, delay, self._machine.last_error
                )
                self._timer = loop.call_later(delay, self._retry_due)
            case CancelRetry():
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            case AbortConnect():
                self._deactivate()
                if self._attempt is not None:
                    self._attempt.cancel()
            case CloseTransport():
                protocol = self._protocol
                self._deactivate()
                if protocol is not None:
                    self._close(protocol)
            case NotifyGaveUp(error=error, reason=reason, attempts=attempts):
                logger.warning(
                    "giving up on %s (%s) after %s: %r",
                    self._endpoint,
                    reason,
                    _flow.failed_attempts(attempts),
                    error,
                )
                on_give_up = self._options.on_give_up
                if on_give_up is not None:
                    self._dispatcher.call("on_give_up", on_give_up, (error,))

    def _deactivate(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._idle = self._beat = None
        protocol = self._protocol
        if protocol is not None:
            protocol.active = False
            self._bytes_in += protocol.received
            reset_data = self._callbacks.reset_data
            if reset_data is not None:  # in turn, after the bytes it delivered
                self._dispatcher.call("on_data", reset_data)
        self._protocol = None
        self._transport = None
        with _BATCH_LOCK:
            self._writing_paused = False
            self._refresh_fast()

    def _close(self, protocol: ManagedProtocol) -> None:
        transport = protocol.transport
        if transport is None:
            return
        protocol.close_gracefully()
        # A peer that stopped reading, or never closes, must not hold the socket forever.
        protocol.linger = self._home.loop.call_later(
            _flow.CLOSE_LINGER, self._abort_lingering, protocol, transport
        )

    def _abort_lingering(self, protocol: ManagedProtocol, transport: asyncio.Transport) -> None:
        protocol.linger = None
        unsent = transport.get_write_buffer_size()
        if unsent:
            logger.warning(
                "closing the connection to %s: %d bytes still unsent after %.1f s; aborting",
                self._endpoint,
                unsent,
                _flow.CLOSE_LINGER,
            )
        else:
            logger.debug(
                "x %s did not close within %.1f s of our FIN; aborting", self._endpoint, _flow.CLOSE_LINGER
            )
        transport.abort()

    def _retry_due(self) -> None:
        self._timer = None
        self._handle(RetryDue())

    def _attempt_failed(self, error: BaseException) -> None:
        # Kept in last_error: drop the frames, which hold this connection (and its whole attempt)
        # alive for as long as anyone keeps the exception, a log handler say.
        error.__traceback__ = None
        if error.__cause__ is not None:
            error.__cause__.__traceback__ = None
        self._protocol = None
        cause = classify(error, connected=False)
        hub = self._hub
        if hub is not None and hub.listening:
            attempt = self._machine.failures + 1
            hub.publish(
                events.AttemptFailed(
                    conn=self, endpoint=self._endpoint, at=_now(), error=error, cause=cause, attempt=attempt
                )
            )
        if self._route is not None:
            self._route.failed()  # the next attempt goes to the next endpoint
        retry = self._retry(error, cause)
        self._handle(ConnectFailed(error=error, now=_now(), retry=retry))

    # ---- what the protocol reports (the `Link` interface of _protocol.py) ------------------------

    def dialed(self, protocol: ManagedProtocol, error: BaseException | None) -> None:
        """Internal, for the protocol: its attempt ended (`error` None: connected)."""
        if self._attempt is protocol:
            self._attempt = None
        if isinstance(error, asyncio.CancelledError) and protocol.timed_out:
            timeout = self._options.connect_timeout
            error = ConnectTimeout(f"connect to {self._target} timed out after {timeout} s (connect_timeout)")
        # Any other cancellation: by the loop's end, say (ours clear `_protocol` first).
        if error is not None and self._protocol is protocol:  # this attempt's, not abandoned or failed
            transport = protocol.transport
            if protocol.active and transport is not None:
                # Reported up, then create_connection() was cancelled before it returned, and
                # closed the transport: a loss of it.
                protocol.active = False
                transport.abort()
                self._lost(error)
            elif isinstance(error, Exception):  # OSError, gaierror, SSLError, ConnectTimeout, ...
                self._attempt_failed(error)
        if error is not None:
            protocol.report_if_dead()  # uvloop closes a transport it gave up on without connection_lost
        self._changed()

    def opened(self, protocol: ManagedProtocol) -> None:
        """Internal, for the protocol (`_protocol.Link`): a transport is up."""
        transport = protocol.transport
        assert transport is not None
        self._live += 1
        if not protocol.active:
            transport.abort()  # the attempt was abandoned while it connected
            return
        try:
            set_tcp_options(transport, self._options)
        except (OSError, OverflowError, TypeError) as exc:  # refused (out of range): failed, not a hang
            protocol.active = False
            transport.abort()
            self._attempt_failed(exc)
            return
        high, low, _ = _flow.water_marks(self._options.max_write_buffer)
        transport.set_write_buffer_limits(high=high, low=low)
        now = _now()
        idle_timeout, heartbeat = self._options.idle_timeout, self._options.heartbeat
        if idle_timeout is not None or heartbeat is not None:
            # One timer drives both watches (see _idle_check): first due at the earlier of the two.
            first = sys.float_info.max
            if idle_timeout is not None:
                self._idle = IdleWatch(idle_timeout, now, 0)
                first = idle_timeout
            if heartbeat is not None:
                self._beat = HeartbeatWatch(heartbeat, now, 0)
                first = min(first, heartbeat.interval)
            self._idle_timer = self._home.loop.call_later(first, self._idle_check)
        self._transport = transport
        self._connect_latency = now - self._attempt_started
        # Queued writes go out before anything else, before on_connect can write.
        outbox = self._outbox
        if outbox is not None and outbox.queued:
            chunks = outbox.take_queue()
            self._bytes_out += sum(map(len, chunks))
            transport.writelines(chunks)
        if self._dispatcher.busy:
            self.callbacks_busy(True)
        self._handle(ConnectSucceeded(now=now))

    def lost(self, protocol: ManagedProtocol, exc: BaseException | None) -> None:
        """Internal, for the protocol: the active transport went away."""
        self._lost(exc)

    def closed(self, protocol: ManagedProtocol) -> None:
        """Internal, for the protocol: a transport finished closing."""
        self._live -= 1
        if protocol.linger is not None:  # closed in time: its abort timer goes with it
            protocol.linger.cancel()
            protocol.linger = None
        self._changed()

    def writing_paused(self, paused: bool) -> None:
        """Internal, for the protocol: the send buffer crossed a water mark."""
        with _BATCH_LOCK:
            self._writing_paused = paused
            self._refresh_fast()
        if not paused:
            self._changed()

    def _refresh_fast(self) -> None:
        # Under _BATCH_LOCK, which a batching thread holds to clear it: write()'s fast path is open
        # while writing is not paused and nothing is batched.
        outbox = self._outbox
        self._fast = not self._writing_paused and (outbox is None or not outbox.batched)

    def _lost(self, exc: BaseException | None) -> None:
        now = _now()
        options = self._options
        alive_until = _flow.last_alive(
            exc,
            now,
            idle=self._idle,
            keepalive=options.keepalive,
            user_timeout=options.user_timeout,
            heartbeat=self._beat,
        )
        self._deactivate()
        retry = self._retry(exc, classify(exc, connected=True))
        self._handle(ConnectionLost(error=exc, now=now, alive_until=alive_until, retry=retry))

    def _retry(self, error: BaseException | None, cause: Cause) -> bool:
        retry_if = self._options.retry_if
        return True if retry_if is None else self._dispatcher.ask("retry_if", retry_if, error, cause)

    def _idle_check(self) -> None:
        # One timer per connection for the idle deadline and the heartbeat, re-armed only when it
        # fires: the data path pays nothing.
        watch, beat, protocol = self._idle, self._beat, self._protocol
        if protocol is None or self._transport is None:
            return
        now, received = _now(), protocol.received
        delay = sys.float_info.max
        if watch is not None:
            idle_delay = watch.check(now, received)
            if idle_delay is None:
                timeout = watch.timeout
                self._drop_silent(
                    IdleTimeout(f"no data received for {timeout} s (idle_timeout): peer presumed dead")
                )
                return
            delay = idle_delay
        verdict = Beat.WAIT
        if beat is not None:
            verdict, beat_delay = beat.check(now, received)
            if verdict is Beat.DEAD:
                self._drop_silent(
                    HeartbeatTimeout(
                        f"nothing received within {beat.timeout} s of a heartbeat ping (heartbeat):"
                        " peer presumed dead"
                    )
                )
                return
            delay = min(delay, beat_delay)
        self._idle_timer = self._home.loop.call_later(delay, self._idle_check)
        if verdict is Beat.PING:
            self._ping()

    def _drop_silent(self, error: ConnmanError) -> None:
        transport, protocol = self._transport, self._protocol
        self._idle_timer = None
        if protocol is not None:
            protocol.active = False  # we report the loss ourselves, with its cause
        if transport is not None:
            transport.abort()
        self._lost(error)

    def _ping(self) -> None:
        heartbeat = self._options.heartbeat
        assert heartbeat is not None
        send = heartbeat.send
        if isinstance(send, bytes):
            try:
                self.write(send)
            except ConnmanError as exc:  # BufferFull: the peer is not reading; the timeout will tell
                logger.debug("! heartbeat to %s not written: %s", self._endpoint, exc)
        else:
            self._dispatcher.call("heartbeat send", _ping_without_waiting(send), (self,))

    def protocol_error(self, error: ProtocolError) -> None:
        """Internal, for the dispatcher: `on_data` found the peer broke the protocol."""
        # on_data raised it: stop reading at once, and reconnect with the cause.
        protocol, transport = self._protocol, self._transport
        if protocol is None or transport is None:
            return  # lost already (bytes of a connection gone, still in the callback queue)
        protocol.active = False
        transport.abort()
        self._lost(error)

    # ---- callbacks -------------------------------------------------------------------------------

    def _call_on_connect(self, conn: Connection) -> object:
        resume = self._resume
        if resume is not None:
            self._resume = None
            return resume()
        return self._callbacks.on_connect(conn)

    def _set_resume(self, result: object) -> None:
        # A TypeError (on_reset returned something not callable) is reported as on_reset's failure.
        if result is not None:
            self._resume = resume_caller(result, self)

    def callbacks_busy(self, busy: bool) -> None:
        """Internal, for the dispatcher (`_callbacks.Host`): an async callback started or ended."""
        # While an async callback runs, reading is paused: back-pressure for an async on_data. That
        # pause is connman's, not the peer's silence: the idle deadline does not count it.
        transport, watch, beat, protocol = self._transport, self._idle, self._beat, self._protocol
        if transport is not None and not transport.is_closing():
            if busy:
                transport.pause_reading()
                if watch is not None:
                    watch.pause()
                if beat is not None:
                    beat.pause()
            else:
                transport.resume_reading()
                if protocol is not None:
                    if watch is not None:
                        watch.resume(_now(), protocol.received)
                    if beat is not None:
                        beat.resume(_now(), protocol.received)
        if not busy:
            self._changed()


def _ping_without_waiting(send: Callable[[Connection], object]) -> Callable[[Connection], object]:
    # A `Wait` that `send` returns (a `Pipeline.request()`, the way to ping through a pipeline) is not
    # awaited: its answer is the reply, and it can only be read once `send` has returned (decision 51).
    @functools.wraps(send)
    def ping(conn: Connection) -> object:
        result = send(conn)
        if isinstance(result, Wait):
            result.abandon()
            return None
        return result

    return ping


def disconnect_many(conns: Sequence[Connection], timeout: float | None) -> Wait[bool]:
    """Disconnect every connection of `conns` at once and wait until all are closed.

    Connections are grouped by their loop, so each loop gets one call however many connections it
    holds. Returns a `Wait`: True once every socket is closed, False at the timeout.
    """
    by_home: dict[Home, list[Connection]] = {}
    for conn in conns:
        by_home.setdefault(conn._home, []).append(conn)
    for home, group in by_home.items():
        try:
            home.submit(_disconnect_each, group)
        except LoopGone:
            for conn in group:
                conn._disconnect_dead()
    pending = list(conns)
    failed = False

    def all_closed() -> bool | None:
        nonlocal pending, failed
        still: list[Connection] = []
        for conn in pending:
            outcome = conn._closed()
            if outcome is None:
                still.append(conn)
            elif not outcome:
                failed = True
        pending = still
        if still:
            return None
        return not failed

    return wait_until([conn.signal for conn in conns], all_closed, timeout, False, by_home)


def homes_of(conns: Sequence[Connection]) -> set[Home]:
    """The homes (loop and thread) of `conns`, for a wait that needs their progress."""
    return {conn._home for conn in conns}


def _disconnect_each(conns: list[Connection]) -> None:
    for conn in conns:
        conn._disconnect()


def _nbytes(data: object) -> int:
    if type(data) is bytes:
        return len(data)
    if isinstance(data, (bytearray, memoryview)):
        return memoryview(data).nbytes  # bytes, whatever the item size
    raise TypeError(f"data must be bytes-like, not {type(data).__name__}")


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)  # a copy: the caller may reuse its buffer before we send it
    raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
