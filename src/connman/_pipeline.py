"""`Pipeline`: requests over managed connections, answered in order.

Most text protocols (memcached's, Redis's RESP, SMTP, many line protocols) answer requests in the
order they were sent, so a first-in first-out line of requests per connection matches each answer to
its caller. Everything happens on the connections' loop: a request is queued there, sent when its
connection is up and has a free slot (`max_in_flight`), and completed by the next frame the framer
delivers. Callers on that loop wait on an asyncio future; callers anywhere else (sync code, another
loop) wait through the portal's `wait_until`, like every waiting call of connman.

Deadlines of requests made on the loop share one timer: their deadlines come in order whenever they
share a timeout (the common case), so the earliest is at the head of a deque. A request whose deadline
is earlier than the last one queued gets a timer of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Final, Generic, TypeVar, cast

from ._options import check_timeout
from ._portal import Home, Signal, Wait, home_for_caller, wait_until
from ._state import State
from .connection import Connection, disconnect_many
from .errors import Disconnected, NotConnected, ProtocolError
from .framing import lines
from .manager import ConnectionManager, default_manager
from .pool import Pool

__all__ = ["Pipeline"]

A = TypeVar("A")

#: `framing(on_frame)` makes the `on_data` callable of one connection (`connman.framing.lines` and
#: the others, or a lambda that passes them options).
Framing = Callable[[Callable[[Any], object]], Callable[[bytes], object]]

#: Default `timeout` of `Pipeline`: seconds a request may wait for the connection and its answer.
DEFAULT_TIMEOUT: Final = 10.0
#: Default `max_in_flight` of `Pipeline`: requests sent and not answered yet, per connection.
DEFAULT_MAX_IN_FLIGHT: Final = 1000

_UNSET: Final[Any] = object()

#: The fewest requests waiting to be sent at which those given up are swept out of the queue.
_PRUNE_AT: Final = 64

#: Deadlines come from this clock, not the loop's (uvloop's is millisecond-grained).
_now: Final = time.monotonic


class _Request:
    """One request: its bytes, where it is, and how its caller waits (a future or a signal)."""

    __slots__ = (
        "answer",
        "data",
        "deadline",
        "done",
        "error",
        "future",
        "key",
        "sent",
        "signal",
        "timeout",
        "timer",
    )

    def __init__(self, data: bytes, key: str | bytes | int | None, timeout: float | None) -> None:
        self.data = data
        self.key = key
        self.timeout = timeout
        self.deadline: float | None = None
        self.future: asyncio.Future[Any] | None = None  # a caller on the loop
        self.signal: Signal | None = None  # a caller elsewhere
        self.sent = False
        self.done = False  # completed, failed, or given up by its caller
        self.answer: object = None
        self.error: BaseException | None = None
        self.timer: asyncio.TimerHandle | None = None  # a deadline out of order (see _own_timer)

    @property
    def given_up(self) -> bool:
        """Finished, or its caller stopped waiting (a cancelled task cancels its future)."""
        future = self.future
        return self.done or (future is not None and future.done())

    def finish(self, answer: object, error: BaseException | None) -> None:
        if self.done:
            return
        # Before `done`: a caller in another thread reads them as soon as it sees `done`.
        self.answer, self.error = answer, error
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        future = self.future
        if future is not None:
            if not future.done():
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(answer)
            return
        assert self.signal is not None
        self.signal.fire()

    def outcome(self) -> bool | None:
        return True if self.done else None


class _Answer(Wait[A]):
    """The `Wait` of a request made on its connection's loop: awaiting it awaits the future itself,
    with no coroutine in between (the data path of a pipeline runs this once per request)."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[A]) -> None:  # no Wait.__init__: one call less
        self._future = future

    def __await__(self) -> Generator[Any, None, A]:
        return self._future.__await__()

    def done(self) -> bool:
        return False  # to its caller: it must be awaited

    def result(self) -> A:
        raise RuntimeError("this wait runs in the event loop: use `await` on it")

    def __repr__(self) -> str:
        return "<Wait pending: await it>"

    def abandon(self) -> None:
        # A heartbeat's ping: its failure (the drop it detected) is nobody's to read.
        self._future.add_done_callback(_read_outcome)


def _read_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # read: asyncio does not log it as "never retrieved"


class _Line:
    """The requests in flight on one connection, and whether the pipeline may send on it. Called
    with each frame its framer delivers: the answer to the oldest request in flight."""

    __slots__ = ("batch", "conn", "in_flight", "loop", "outgoing", "pipeline", "up")

    def __init__(self, pipeline: Pipeline[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.pipeline = pipeline
        self.loop = loop
        self.conn: Connection | None = None
        self.in_flight: deque[_Request] = deque()
        self.up = False  # between on_connect and the reset of the framer that serves it
        # Requests of this turn of the loop, written together at its end: one system call for many.
        self.outgoing: list[bytes] = []
        self.batch: list[_Request] = []

    def send(self, request: _Request) -> None:
        """Count `request` in flight now and write it at the end of this turn of the loop, with
        every other request of the turn (the answers to the previous batch woke their callers one by
        one; their next requests go out in one `write()`)."""
        outgoing = self.outgoing
        if not outgoing:
            self.loop.call_soon(self.flush)
        outgoing.append(request.data)
        self.batch.append(request)
        request.sent = True
        self.in_flight.append(request)

    def flush(self) -> None:
        outgoing, batch = self.outgoing, self.batch
        if not outgoing:
            return  # taken back by `_line_down`: the connection went before the end of the turn
        self.outgoing, self.batch = [], []
        conn = self.conn
        assert conn is not None
        try:
            if not self.up:  # lost since (its requests failed): not for the next connection
                raise NotConnected(f"connection to {conn.endpoint} was lost")
            conn.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))
        except Exception as exc:  # BufferFull, or down since: these requests were not sent
            in_flight = self.in_flight
            unsent = set(map(id, batch))
            while in_flight and id(in_flight[-1]) in unsent:  # the batch is the tail, unless failed already
                in_flight.pop()
            for request in batch:
                request.sent = False
                request.finish(None, exc)

    def __call__(self, frame: object) -> None:
        in_flight = self.in_flight
        if not in_flight:
            raise ProtocolError(f"an answer nobody asked for: {frame!r:.80}")
        request = in_flight.popleft()
        future = request.future
        if future is not None and request.timer is None and not isinstance(frame, BaseException):
            request.done = True  # the common case, inline: a caller on the loop, in order
            if not future.done():
                future.set_result(frame)
        elif isinstance(frame, BaseException):
            request.finish(None, frame)
        else:
            request.finish(frame, None)
        pipeline = self.pipeline
        deadlines = pipeline._deadlines
        while deadlines and ((first := deadlines[0]).done or first.future.done()):  # type: ignore[union-attr]
            deadlines.popleft()  # (only requests made on the loop have deadlines here: each has a future)
        if not deadlines and pipeline._timer is not None:
            pipeline._timer.cancel()  # nothing left to time: no timer outlives the traffic
            pipeline._timer = None
        if pipeline._unsent:
            pipeline._pump()


class _OnData:
    """The `on_data` of one connection: its framer, and the end of its requests in flight when the
    connection goes away (connman calls `reset()`)."""

    __slots__ = ("framer", "line", "pipeline", "reset_framer")

    def __init__(self, pipeline: Pipeline[Any], line: _Line, framer: Callable[[bytes], object]) -> None:
        self.pipeline = pipeline
        self.line = line
        self.framer = framer
        reset = getattr(framer, "reset", None)
        self.reset_framer: Callable[[], object] | None = reset if callable(reset) else None

    def __call__(self, data: bytes) -> object:
        return self.framer(data)

    def reset(self) -> None:
        if self.reset_framer is not None:
            self.reset_framer()
        self.pipeline._line_down(self.line)


class Pipeline(Generic[A]):
    """Request/response over one managed connection, or over a pool's members picked by key.

    Requests go out in order and each frame received answers the oldest request in flight on that
    connection (memcached, Redis, SMTP and most line protocols work so). `request()` is awaited in
    async code and blocks in sync code. A request made while down waits for the connection up to
    its timeout; when the connection drops, every request in flight on it fails at once with
    `NotConnected` (its answer can never come); a caller that timed out never receives another
    caller's answer, since its own answer is still consumed when it comes.

    A failed request may have been applied: the server may have executed it before the connection
    dropped, or after the caller's timeout. Delivery is at least once for what was sent; retry only
    what is idempotent.

    Args:
        framing: Makes each connection's `on_data` from the pipeline's frame handler:
            `connman.framing.lines` (the default, one line per answer), or e.g.
            `lambda on_frame: connman.framing.split_by(on_frame, parse_reply)`. A frame that is an
            exception instance (an error reply) is raised to its caller.
        pool: Carry requests over this pool's members (added by `connect()`), picked per request by
            `pool.pick(key)`. Without a pool the pipeline carries one connection.
        timeout: Default seconds a request may take, waiting for the connection, for a free slot
            and for its answer: 10 by default; None waits as long as it takes.
        max_in_flight: Requests sent and not answered yet, per connection: 1000 by default. Later
            requests wait (within their timeout) for a slot: memory stays bounded.

    Raises:
        TypeError: `framing` is not callable, or `max_in_flight` is not an int.
        ValueError: `max_in_flight` is below 1, or `timeout` is negative.
    """

    def __init__(
        self,
        framing: Framing = lines,
        *,
        pool: Pool | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if not callable(framing):
            raise TypeError(f"framing must be callable (connman.framing.lines, ...), not {framing!r}")
        check_timeout(timeout)
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise TypeError(f"max_in_flight must be an int, not {type(max_in_flight).__name__}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self._framing = framing
        self._pool = pool
        self.timeout = timeout
        """Default seconds a request may take (None: no limit)."""
        self.max_in_flight = max_in_flight
        """Requests in flight per connection at most."""
        self._home: Home | None = None
        self._lines: dict[Connection, _Line] = {}
        self._single: _Line | None = None  # the line of a pipeline without a pool
        self._unsent: deque[_Request] = deque()
        self._prune_at = _PRUNE_AT  # the length of `_unsent` at which given-up requests are dropped
        self._deadlines: deque[_Request] = deque()  # requests made on the loop, deadlines in order
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Pipeline {len(self._lines)} connections, {len(self._unsent)} waiting>"

    @property
    def connections(self) -> list[Connection]:
        """The connections this pipeline carries requests over."""
        return list(self._lines)

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered yet, over every connection."""
        return sum(len(line.in_flight) for line in self._lines.values())

    def connect(
        self, port: int, host: str, *, manager: ConnectionManager | None = None, **options: Any
    ) -> Connection:
        """Open a managed connection that carries this pipeline's requests; return it.

        With a pool, it is added to the pool (`pool.add_connection`); otherwise it is made on
        `manager` (the default manager if None). `options` are `connect()`'s options; the callbacks
        are the pipeline's own.

        Raises:
            ValueError: A pipeline without a pool has a connection already.
            TypeError: `on_connect`, `on_data`, `on_reset` or `handler` given.
            Disconnected: `close()` was called.
        """
        if self._closed:
            raise Disconnected("this pipeline was closed")
        if self._pool is None and self._lines:
            raise ValueError("a Pipeline without a pool carries one connection; pass pool= for several")
        given = sorted({"on_connect", "on_data", "on_reset", "handler"} & options.keys())
        if given:
            raise TypeError(f"a Pipeline's connections use its own callbacks; do not pass {', '.join(given)}")
        home = home_for_caller()
        if self._home is not None and (home.loop is not self._home.loop):
            raise ValueError("every connection of a Pipeline must live on the same event loop")
        line = _Line(self, home.loop)
        on_data = _OnData(self, line, self._framing(line))

        def on_connect(conn: Connection) -> None:
            line.up = True
            self._pump()

        if self._pool is not None:
            conn = self._pool.add_connection(port, host, on_connect=on_connect, on_data=on_data, **options)
        else:
            if manager is None:
                manager = default_manager()
            conn = manager.connect(port, host, on_connect=on_connect, on_data=on_data, **options)
        line.conn = conn
        self._home = home
        self._lines[conn] = line
        if self._pool is None:
            self._single = line
        return conn

    # ---- requests --------------------------------------------------------------------------------

    def request(
        self,
        data: bytes | bytearray | memoryview,
        *,
        timeout: float | None = _UNSET,
        key: str | bytes | int | None = None,
    ) -> Wait[A]:
        """Send `data` (one whole request) and wait for its answer, the next frame in order.

        The request is queued at the call, from any thread or loop; it is sent as soon as its
        connection is up and has a free slot. Await the `Wait` in async code; in sync code the call
        blocks and `.result()` holds the answer.

        Args:
            data: The request's bytes.
            timeout: Seconds for the whole request (waiting for the connection, for a slot, and for
                the answer); the pipeline's `timeout` if not given, None for no limit.
            key: With a pool, `pool.pick(key)` chooses the connection (None: round-robin).

        Returns:
            A `Wait` for the answer: the frame, as the framing made it.

        Raises:
            NotConnected: The connection was down for the whole timeout, or dropped before the
                answer came (the request may have been applied).
            TimeoutError: Sent, but no answer within the timeout (the answer, if it comes, is
                dropped), or no slot freed within it (`max_in_flight`).
            Disconnected: The pipeline was closed, or its connection disconnected.
            BufferFull: The request did not fit the connection's `max_write_buffer` (it was not
                sent): the peer is not reading, or the request alone is larger than the limit.
            LoopGone: The connections' event loop has ended (an `asyncio.run()` that returned
                without `close()`).
            ProtocolError: The answer broke the protocol (or the framing made an error reply into
                an exception of its own: that one is raised).
            TypeError: `data` is not bytes-like.
            ValueError: `timeout` is negative.
        """
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
            data = bytes(data)  # a copy: the caller may reuse its buffer before it is sent
        if timeout is _UNSET:
            timeout = self.timeout
        else:
            check_timeout(timeout)
        if self._closed:
            raise Disconnected("this pipeline was closed")
        home = self._home
        if home is None:
            raise NotConnected("this pipeline has no connection yet: call pipeline.connect(port, host) first")
        request = _Request(data, key, timeout)
        loop = home.loop
        try:
            here = asyncio.get_running_loop() is loop  # on the connections' loop (it runs in one thread)
        except RuntimeError:
            here = False
        if here:
            future = request.future = loop.create_future()
            if timeout is not None:
                request.deadline = deadline = _now() + timeout
                deadlines = self._deadlines
                if deadlines and deadline < deadlines[-1].deadline:  # type: ignore[operator]
                    self._own_timer(request)
                else:
                    deadlines.append(request)
                    if self._timer is None:
                        self._timer = loop.call_later(timeout, self._expire)
            line = self._single
            if line is not None and line.up and not self._unsent and len(line.in_flight) < self.max_in_flight:
                line.send(request)  # the common case: up, a free slot, nobody waiting before it
            else:
                self._submit(request)
            return _Answer(future)
        request.signal = Signal()
        home.submit(self._submit, request)
        waited = wait_until((request.signal,), request.outcome, timeout, False, (home,))
        if waited.done():
            return Wait(value=self._result(request))
        return Wait(factory=lambda: self._await_elsewhere(request, waited))

    async def _await_elsewhere(self, request: _Request, waited: Wait[bool]) -> A:
        await waited
        return self._result(request)

    def _result(self, request: _Request) -> A:
        # The outcome for a caller off the loop: its wait ended, answered or not.
        if not request.done:
            request.done = True  # given up: the loop skips it, or drops its answer
            raise self._late(request)
        if request.error is not None:
            raise request.error
        return cast(A, request.answer)

    def _late(self, request: _Request) -> BaseException:
        if request.sent:
            return TimeoutError(f"no answer within {request.timeout} s")
        if not any(line.up for line in self._lines.values()):
            conns = list(self._lines)
            why = f" (last error: {conns[0].last_error!r})" if len(conns) == 1 else ""
            return NotConnected(f"not connected within {request.timeout} s{why}")
        return TimeoutError(f"no free slot within {request.timeout} s (max_in_flight={self.max_in_flight})")

    # ---- on the loop -----------------------------------------------------------------------------

    def _submit(self, request: _Request) -> None:
        if self._closed:
            request.finish(None, Disconnected("this pipeline was closed"))
            return
        unsent = self._unsent
        while unsent and unsent[0].given_up:  # given up while waiting
            unsent.popleft()
        if len(unsent) >= self._prune_at:
            # Those given up behind a request still waiting (a longer timeout) would pile up, with
            # their bytes, for as long as the connection is down: drop them all, at amortized O(1).
            self._unsent = unsent = deque(waiting for waiting in unsent if not waiting.given_up)
            self._prune_at = max(_PRUNE_AT, 2 * len(unsent))
        unsent.append(request)
        self._pump()

    def _pump(self) -> None:
        # Send what waits, in order, while its connection is up and has a slot.
        unsent = self._unsent
        limit = self.max_in_flight
        while unsent:
            request = unsent[0]
            if request.given_up:
                unsent.popleft()
                continue
            line = self._line_for(request)
            if line is None or len(line.in_flight) >= limit:
                return
            unsent.popleft()
            line.send(request)

    def _line_for(self, request: _Request) -> _Line | None:
        pool = self._pool
        if pool is None:
            for only in self._lines.values():
                return only if only.up else None
            return None
        try:
            conn = pool.pick(request.key)
        except NotConnected:
            return None
        line = self._lines.get(conn)
        if line is None:
            request.finish(
                None, ValueError(f"pool member {conn!r} was not added by this pipeline's connect()")
            )
            return None
        return line if line.up else None

    def _line_down(self, line: _Line) -> None:
        # The connection that `line` served is gone (its framer was reset): its answers can never come.
        line.up = False
        conn = line.conn
        assert conn is not None
        # This turn's requests were never written (the write comes at the end of the turn): they
        # wait for the next connection, first in line, like every request not sent yet.
        unwritten, line.outgoing, line.batch = line.batch, [], []
        in_flight, line.in_flight = line.in_flight, deque()
        if unwritten:
            taken_back = set(map(id, unwritten))
            in_flight = deque(request for request in in_flight if id(request) not in taken_back)
            for request in unwritten:
                request.sent = False
            self._unsent.extendleft(reversed(unwritten))
        if conn.state is State.CLOSED:
            error: BaseException = Disconnected(f"connection to {conn.endpoint} was disconnected")
        else:
            error = NotConnected(
                f"connection to {conn.endpoint} was lost before the answer came"
                f" (last error: {conn.last_error!r}); the request may have been applied"
            )
        for request in in_flight:
            request.finish(None, error)
        if all(other.state is State.CLOSED for other in self._lines):
            unsent, self._unsent = self._unsent, deque()  # nothing can carry them any more
            for request in unsent:
                request.finish(None, error)

    # ---- deadlines of requests made on the loop --------------------------------------------------

    def _own_timer(self, request: _Request) -> None:
        # A deadline earlier than the last one queued: the shared timer would see it late.
        home = self._home
        assert home is not None
        assert request.deadline is not None
        request.timer = home.loop.call_later(request.deadline - _now(), self._expire_one, request)

    def _expire_one(self, request: _Request) -> None:
        request.timer = None
        if not request.done:
            request.finish(None, self._late(request))

    def _expire(self) -> None:
        self._timer = None
        home = self._home
        assert home is not None
        now = _now()
        deadlines = self._deadlines
        while deadlines:
            request = deadlines[0]
            if not request.given_up:
                assert request.deadline is not None
                if request.deadline > now:
                    self._timer = home.loop.call_later(request.deadline - now, self._expire)
                    return
                request.finish(None, self._late(request))
            deadlines.popleft()

    # ---- closing ---------------------------------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect the pipeline's connections; every request not answered fails with `Disconnected`.

        Returns:
            A `Wait`: True once every socket is closed, False at the timeout (as `disconnect()`).
        """
        check_timeout(timeout)
        self._closed = True
        home = self._home
        if home is not None:
            try:
                home.submit(self._fail_all)
            except Exception:  # its loop has ended: nobody waits on it any more
                pass
        return disconnect_many(list(self._lines), timeout)

    def _fail_all(self) -> None:
        error = Disconnected("this pipeline was closed")
        for line in self._lines.values():
            in_flight, line.in_flight = line.in_flight, deque()
            for request in in_flight:
                request.finish(None, error)
        unsent, self._unsent = self._unsent, deque()
        for request in unsent:
            request.finish(None, error)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
