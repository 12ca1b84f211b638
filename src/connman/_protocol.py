"""The asyncio protocols of one attempt, and the socket set-up of a new transport.

A protocol belongs to one attempt. It counts what it receives, hands each chunk to the connection's
dispatcher and reports the rest through a narrow interface, `Link` (transport opened, lost, write
paused or resumed, closed for good); it knows nothing else of the connection. Once the connection is
done with it (`active` cleared), it is inert: nothing a stale transport reports can reach the
application.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import mmap
import os
import socket
import weakref
from typing import Any, Final, Protocol, cast

from ._callbacks import Dispatcher
from ._datapath import Receiver
from ._deadlines import DeadlineQueue
from ._options import Options

__all__ = ["RECEIVE_BUFFER_SIZE", "Link", "ManagedProtocol", "new_protocol", "set_tcp_options", "shut_down"]


class Link(Protocol):
    """What a protocol tells its connection."""

    def dialed(self, protocol: ManagedProtocol, error: BaseException | None) -> None:
        """The attempt ended: connected (None), failed, or cancelled (`protocol.timed_out`: timed out)."""

    def opened(self, protocol: ManagedProtocol) -> None:
        """A transport is up (`protocol.transport`); the link aborts it if the attempt is stale."""

    def lost(self, protocol: ManagedProtocol, exc: BaseException | None) -> None:
        """The active transport went away (`exc` None: a clean EOF)."""

    def closed(self, protocol: ManagedProtocol) -> None:
        """A transport finished closing, active or not (for `wait_closed()` and the linger)."""

    def writing_paused(self, paused: bool) -> None:
        """The transport's send buffer went above (True) or back below (False) its water marks."""


class ManagedProtocol(Receiver, asyncio.Protocol):
    """The protocol of one attempt; inert once `active` is cleared.

    It is also the attempt's handle, which tells the link when the attempt ended (`Link.dialed`),
    however it ran: `connect()` connects a socket itself and hands it to `create_connection(sock=)`,
    `start()` follows a task that does it all. `deadline` is the queue of its `connect_timeout` (until
    the attempt ends or expires). And it is its own factory (calling it returns it), so
    `create_connection()` needs no closure per attempt.
    """

    __slots__ = (
        "attempt",
        "connecting",
        "deadline",
        "flushing",
        "linger",
        "link",
        "loop",
        "timed_out",
        "transport",
    )

    def __init__(self, link: Link, dispatcher: Dispatcher, on_data: Any):
        self.link = link
        self.dispatcher = dispatcher
        self.on_data = on_data
        self.active = True
        #: The task that connects this protocol, until it ends.
        self.attempt: asyncio.Task[Any] | None = None
        #: The socket `connect()` connects, until its attempt ends, and the loop it waits on.
        self.connecting: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.deadline: DeadlineQueue | None = None
        #: Set when `connect_timeout` passed before the transport came up (the attempt was cancelled).
        self.timed_out = False
        self.flushing = False  # closing gracefully: see close_gracefully()
        #: The timer that aborts this transport if its graceful close takes too long (set by the link).
        self.linger: asyncio.TimerHandle | None = None
        self.received = 0
        self.buffer = None
        self.transport: asyncio.Transport | None = None

    def __call__(self) -> ManagedProtocol:
        return self

    # ---- the attempt -------------------------------------------------------------------------------

    def start(self, attempt: asyncio.Task[Any], context: contextvars.Context) -> None:
        """Follow the task that connects this protocol; its done callback runs in `context`, the task's."""
        self.attempt = attempt
        # A done callback, not a `finally` in the coroutine: a task cancelled before its first step
        # never runs its body.
        attempt.add_done_callback(self._dialed, context=context)

    def connect(self, loop: asyncio.AbstractEventLoop, family: int, address: tuple[Any, ...]) -> None:
        """Connect a new socket to the numeric `address`, then hand it to `create_connection(sock=)`.

        For asyncio's selector loop (see `_dial.direct_address`): its `create_connection()` resolves
        the address twice and waits for the connect in a future inside two coroutines, alive for the
        whole connect (W4 holds 10,000); here a socket and a writer callback wait, and the task that
        makes the transport lives for one turn of the loop.
        """
        try:
            # IPPROTO_TCP, as create_connection() would: the transport sets TCP_NODELAY only then.
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except OSError as exc:  # out of descriptors (EMFILE), no IPv6, ...: a failed attempt
            loop.call_soon(self._ended, exc)  # on the next turn, as a task that failed would report
            return
        self.connecting = sock
        try:
            sock.setblocking(False)
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:  # refused at once, no route, an address without its scope, ...
            self.connecting = None
            sock.close()
            loop.call_soon(self._ended, exc)
            return
        else:
            self._hand_over(loop, sock)  # connected at once
            return
        self.loop = loop  # for cancel(), which may come while the loop is not running
        loop.add_writer(sock.fileno(), self._connected, loop, sock, address)

    def _connected(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[Any, ...]
    ) -> None:
        loop.remove_writer(sock.fileno())
        self.loop = None
        try:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            error = exc.errno or errno.EIO
        if error:
            self.connecting = None
            sock.close()
            self._ended(OSError(error, f"Connect call failed {address}"))  # asyncio's words
        else:
            self._hand_over(loop, sock)

    def _hand_over(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.attempt = attempt = loop.create_task(loop.create_connection(self, sock=sock))
        attempt.add_done_callback(self._dialed)

    def cancel(self) -> None:
        """Stop the attempt; its end is told to the link like any other (`dialed`), on a later turn.

        Also between runs of the loop (`loop.run_until_complete(conn.disconnect())`).
        """
        attempt, sock, loop = self.attempt, self.connecting, self.loop
        if attempt is not None:
            attempt.cancel()
        elif sock is not None and loop is not None:  # still connecting the socket
            self.connecting = None
            loop.remove_writer(sock.fileno())
            sock.close()
            loop.call_soon(self._ended, asyncio.CancelledError())

    def abandon(self) -> None:
        """The loop has ended: close the socket still connecting, if any (nothing will run again)."""
        sock, self.connecting = self.connecting, None
        if sock is not None and self.transport is None:
            sock.close()

    def expire(self) -> None:
        """`connect_timeout` passed (for the `DeadlineQueue`): unless the transport is up, time out.

        The deadline bounds the attempt up to `connection_made` (decision 43): once the transport is
        up the attempt has succeeded, and cancelling create_connection() then would close a transport
        the connection has taken on (uvloop even closes it without connection_lost).
        """
        pending = self.attempt is not None or self.connecting is not None
        if pending and self.transport is None and self.active:
            self.timed_out = True
            self.active = False  # a transport that comes up even so is aborted, never reported
            self.cancel()

    def _dialed(self, attempt: asyncio.Task[Any]) -> None:
        self.attempt = None  # the task is done: do not keep it (nor its coroutine's frame)
        sock, self.connecting = self.connecting, None
        error = asyncio.CancelledError() if attempt.cancelled() else attempt.exception()
        if error is not None and sock is not None and self.transport is None and sock.fileno() >= 0:
            sock.close()  # create_connection(sock=) was cancelled before it began: the socket is ours
        self._ended(error)

    def _ended(self, error: BaseException | None) -> None:
        if self.deadline is not None:
            self.deadline.ended(self)
        self.link.dialed(self, error)

    # ---- the transport -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.link.opened(self)

    # data_received is Receiver's: it counts the chunk and hands it to the dispatcher.

    def eof_received(self) -> bool:
        return False  # close our side too: a half-closed managed connection is a lost one

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # reported already, by report_if_dead()
        self.transport = None
        link = self.link
        if self.active:
            self.active = False
            link.lost(self, exc)
        link.closed(self)

    def report_if_dead(self) -> None:
        """Report the transport closed if it is, and nothing else will say so.

        uvloop's `create_connection()`, failing after `connection_made` (cancelled, say), closes the
        transport without `connection_lost`: its socket is gone, and `is_closing()` may even say no.
        asyncio's transports close their socket only after `connection_lost`.
        """
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            self.connection_lost(None)

    def pause_writing(self) -> None:
        if self.active:
            self.link.writing_paused(True)

    def resume_writing(self) -> None:
        if self.active:
            self.link.writing_paused(False)
        elif self.flushing:
            # Everything was handed to the kernel. Finish on the next turn: asyncio's selector
            # transport is inside its write handler here, and must not be closed from it.
            asyncio.get_running_loop().call_soon(self._finish_close)

    def close_gracefully(self) -> None:
        """Deactivate, flush, send FIN, and let the peer close; reading goes on until then.

        What arrives meanwhile is dropped. Closing at once would be worse in two ways: asyncio's
        `close()` stops reading, so a peer that answers what we send (most do) stops reading us when
        its answers pile up unread and never gets the rest; and a socket closed with unread data
        sends RST, which makes the peer's kernel drop what it had received and not yet read. The
        caller bounds the whole with a timer that aborts (see `CLOSE_LINGER`).
        """
        self.active = False
        self.report_if_dead()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.flushing = True
        if not transport.is_reading():  # paused for an async callback: the peer's FIN must be seen
            transport.resume_reading()
        # Resumed (resume_writing above) when the buffer is down to 0 bytes; paused at once if it
        # holds any (asyncio pauses above `high`, so 0: one byte left must pause too).
        transport.set_write_buffer_limits(high=0, low=0)
        if transport.get_write_buffer_size() == 0:
            self._finish_close()

    def _finish_close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()  # TLS: close() sends close_notify after the buffer
            return
        try:
            transport.write_eof()  # the peer reads to the end, then closes: eof_received closes ours
        except OSError:  # reset already (ENOTCONN): nothing left to say
            transport.abort()


class BufferedManagedProtocol(ManagedProtocol, asyncio.BufferedProtocol):
    """The receive path for the default event loop: asyncio reads into one reused buffer.

    With a plain `Protocol`, asyncio's selector loop asks for a fresh 256 KiB `bytes` on every read
    and then shrinks it; with a `BufferedProtocol` it calls `recv_into()` on a buffer we keep, and we
    copy out only the bytes that arrived. One buffer serves every connection of a loop: the loop
    calls `get_buffer()`, reads and calls `buffer_updated()` in one go, and `on_data` gets its own
    copy before anything else can run. The buffer is an anonymous `mmap`, so it starts on a page
    boundary (a `bytearray` does not, and that alone costs bulk reads about 40 %).

    The copy is what a small read saves (the fresh `bytes` is allocated, mapped and shrunk), but on a
    read that fills the buffer there is nothing to shrink, and the copy is pure cost: a bulk stream
    pays a 256 KiB copy per read. So the path adapts: a read that fills the buffer switches the
    transport to a plain `Protocol` (`transport.set_protocol()`, a `_BulkReceiver` that forwards to
    this protocol), and a plain read shorter than half the buffer switches it back.
    """

    __slots__ = ("_bulk",)

    def __init__(self, link: Link, dispatcher: Dispatcher, on_data: Any, buffer: memoryview) -> None:
        super().__init__(link, dispatcher, on_data)
        self.buffer = buffer
        self._bulk: _BulkReceiver | None = None  # made by the first full read

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer  # type: ignore[return-value]  # set above, never None here

    # buffer_updated is Receiver's: it copies the bytes out, calls _filled() if they filled the buffer,
    # counts them and hands them to the dispatcher.

    def _filled(self) -> None:
        # A full read: more is waiting, so read it plain, without the copy.
        if _ADAPT and self.transport is not None:
            bulk = self._bulk
            if bulk is None:
                bulk = self._bulk = _BulkReceiver(self)
            self.transport.set_protocol(bulk)


class _BulkReceiver(asyncio.Protocol):
    """The plain-`Protocol` side of a `BufferedManagedProtocol`, while reads are large.

    While it is installed the transport talks to it (and `transport.get_protocol()` returns it); it
    forwards everything to its owner, the attempt's protocol, the one the connection knows.
    """

    __slots__ = ("half", "owner")

    def __init__(self, owner: BufferedManagedProtocol) -> None:
        self.owner = owner
        self.half = len(owner.buffer) // 2 if owner.buffer is not None else 0

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if len(data) < self.half and owner.transport is not None:  # small: back to the buffer
            owner.transport.set_protocol(owner)
        owner.data_received(data)

    def eof_received(self) -> bool:
        return self.owner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.owner.pause_writing()

    def resume_writing(self) -> None:
        self.owner.resume_writing()


RECEIVE_BUFFER_SIZE: Final = 256 * 1024

#: CONNMAN_ADAPT=0 keeps bulk reads on the buffered path too (for comparisons; `BufferedManagedProtocol`).
_ADAPT: Final = os.environ.get("CONNMAN_ADAPT", "1") != "0"

#: CONNMAN_BUFFERED=0 uses a plain `Protocol` everywhere (for comparisons; see `_receive_buffer`).
_USE_BUFFERED: Final = os.environ.get("CONNMAN_BUFFERED", "1") != "0"

#: The shared receive buffer of each event loop that uses `BufferedManagedProtocol` (see there).
_receive_buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = (
    weakref.WeakKeyDictionary()
)


def _receive_buffer(loop: asyncio.AbstractEventLoop, options: Options) -> memoryview | None:
    """The buffer for `BufferedManagedProtocol`, or None where a plain `Protocol` is faster or needed.

    uvloop already reads into a buffer of its own and hands over `bytes`; TLS goes through asyncio's
    SSL protocol, which has its own buffering. Set CONNMAN_BUFFERED=0 to use `Protocol` everywhere.
    """
    if not _USE_BUFFERED or "ssl" in options.create_connection or type(loop).__module__.startswith("uvloop"):
        return None
    buffer = _receive_buffers.get(loop)
    if buffer is None:
        buffer = _receive_buffers[loop] = memoryview(mmap.mmap(-1, RECEIVE_BUFFER_SIZE))
    return buffer


def new_protocol(
    loop: asyncio.AbstractEventLoop, options: Options, link: Link, dispatcher: Dispatcher, on_data: Any
) -> ManagedProtocol:
    """The protocol for a new attempt: buffered on asyncio's default loop, plain elsewhere."""
    buffer = _receive_buffer(loop, options)
    if buffer is None:
        return ManagedProtocol(link, dispatcher, on_data)
    return BufferedManagedProtocol(link, dispatcher, on_data, buffer)


def set_tcp_options(transport: asyncio.BaseTransport, options: Options) -> None:
    """Apply `nodelay`, `keepalive` and `user_timeout` to a new TCP transport's socket."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
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


def shut_down(transport: asyncio.BaseTransport) -> bool:
    """Close a transport's socket by hand, for a transport whose loop has ended; True if done.

    The connection is shut down through a duplicate of the descriptor, which works whatever the
    transport's socket object allows (uvloop's refuses `shutdown()`): the peer sees it closed. Then the
    descriptor itself is closed. asyncio has no public way to do that on a closed loop; its selector
    transports keep the socket in `_sock`, which is closed and cleared so that the transport, when
    collected, neither warns nor closes a descriptor number that may have been reused by then.
    """
    sock = transport.get_extra_info("socket")
    fileno = -1 if sock is None else sock.fileno()
    if fileno < 0:
        return True  # closed already (uvloop closes its transports with the loop)
    try:
        with socket.socket(fileno=os.dup(fileno)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:  # ENOTCONN: closed at the other end already
            return False
    inner = getattr(transport, "_sock", None)
    if isinstance(inner, socket.socket):
        inner.close()
        transport._sock = None  # type: ignore[attr-defined]
    return True
