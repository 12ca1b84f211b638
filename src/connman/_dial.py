"""One connection attempt: resolve the name (through the resolver hook if any), connect, handshake.

Or: connect a Unix socket; or get the socket from a `dialer` (a proxy) and run TLS on it.

The whole attempt is bounded by `connect_timeout`. A resolver that is a plain function may block (it
may do DNS itself), so it runs on a thread of its own: a blocking resolver must neither stall the
loop, and every other connection on it, nor outlast `connect_timeout`.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._endpoints import UnixEndpoint
from ._options import Dialer, Endpoint, Options
from ._protocol import ManagedProtocol
from .errors import ConnectTimeout

__all__ = ["dial", "resolve", "resolved_addresses"]


async def dial(
    loop: asyncio.AbstractEventLoop,
    endpoint: Endpoint | UnixEndpoint,
    options: Options,
    protocol: ManagedProtocol,
) -> None:
    """Connect `protocol` to `endpoint`, or raise why not (`ConnectTimeout` past `connect_timeout`).

    The deadline bounds the attempt up to `connection_made`. Once the transport is up (the protocol
    has it) the attempt has succeeded: a deadline that comes due later (the loop was blocked, by an
    `on_connect` say) must not cancel `create_connection()`, which would close a transport the
    connection has taken on (uvloop even closes it without `connection_lost`). A deadline that comes
    due first makes the protocol inert, so a transport that comes up even so is never reported.
    """
    timeout = options.connect_timeout
    if timeout is None:
        await _connect(loop, endpoint, options, protocol)
        return
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    deadline = _Deadline(task, protocol)
    handle = loop.call_later(timeout, deadline)
    try:
        await _connect(loop, endpoint, options, protocol)
    except BaseException as exc:
        # As asyncio.timeout(): ours only if no other cancellation was asked for meanwhile.
        if deadline.expired and task.uncancel() <= cancelling and isinstance(exc, asyncio.CancelledError):
            raise ConnectTimeout(
                f"connect to {endpoint} timed out after {timeout} s (connect_timeout)"
            ) from None
        raise
    finally:
        handle.cancel()


class _Deadline:
    """The timer's callback: cancel the attempt, unless its transport is up already."""

    __slots__ = ("expired", "protocol", "task")

    def __init__(self, task: asyncio.Task[Any], protocol: ManagedProtocol) -> None:
        self.task = task
        self.protocol = protocol
        self.expired = False

    def __call__(self) -> None:
        if self.protocol.transport is None:  # not up yet: the attempt timed out
            self.expired = True
            self.protocol.active = False  # a transport that comes up even so is aborted, never reported
            self.task.cancel()


def _connect(
    loop: asyncio.AbstractEventLoop,
    endpoint: Endpoint | UnixEndpoint,
    options: Options,
    protocol: ManagedProtocol,
) -> Awaitable[object]:
    # A plain function, not a coroutine: one coroutine frame less per pending attempt (W4 holds
    # 10,000 of them at once).
    if isinstance(endpoint, UnixEndpoint):
        return loop.create_unix_connection(lambda: protocol, endpoint.path, **options.create_connection)
    if options.dialer is not None:
        return _through_dialer(loop, options.dialer, endpoint, options, protocol)
    if options.resolver is not None:
        return _to_resolved(loop, endpoint, options, protocol)
    return loop.create_connection(lambda: protocol, endpoint.host, endpoint.port, **options.create_connection)


def _checked_against_host(endpoint: Endpoint, options: Options) -> Mapping[str, Any]:
    extra = options.create_connection
    if "ssl" in extra and "server_hostname" not in extra:
        # Check the certificate against the name asked for, not the address (or the proxy).
        return {**extra, "server_hostname": endpoint.host}
    return extra


async def _through_dialer(
    loop: asyncio.AbstractEventLoop,
    dialer: Dialer,
    endpoint: Endpoint,
    options: Options,
    protocol: asyncio.BaseProtocol,
) -> None:
    sock = await dialer(endpoint.host, endpoint.port)
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM:
        if isinstance(sock, socket.socket):
            sock.close()
        raise TypeError(f"dialer must return a connected stream socket.socket, not {sock!r}")
    try:
        # A socket that is not connected would pass for a connection until its first read or
        # write: a failed attempt that counted as a connect (and so escaped max_attempts).
        sock.getpeername()
    except OSError as error:
        sock.close()
        raise TypeError(
            f"dialer must return a connected stream socket.socket, not {sock!r} ({error})"
        ) from None
    try:
        sock.setblocking(False)
        await loop.create_connection(lambda: protocol, sock=sock, **_checked_against_host(endpoint, options))
    except BaseException:
        sock.close()  # not owned by a transport yet (closing twice is harmless)
        raise


async def _to_resolved(
    loop: asyncio.AbstractEventLoop, endpoint: Endpoint, options: Options, protocol: asyncio.BaseProtocol
) -> None:
    assert options.resolver is not None
    addresses = await resolve(options.resolver, endpoint)
    extra = _checked_against_host(endpoint, options)
    error: OSError | None = None
    for address in addresses:  # in order, within this one attempt
        try:
            await loop.create_connection(lambda: protocol, address, endpoint.port, **extra)
            return
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _is_async(fn: Callable[..., object]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


async def resolve(resolver: Callable[[str, int], Any], endpoint: Endpoint) -> list[str]:
    """The addresses `resolver` gives for `endpoint` (a plain function runs on a thread of its own)."""
    if _is_async(resolver):
        address = await resolver(endpoint.host, endpoint.port)
    else:
        address = await _in_thread(resolver, endpoint.host, endpoint.port)
        if inspect.isawaitable(address):  # a plain function that returned an awaitable
            address = await address
    return resolved_addresses(address)


def resolved_addresses(value: object) -> list[str]:
    """What a resolver returned, as a list of addresses; TypeError/ValueError for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(address, str) for address in value):
        if not value:
            raise ValueError("resolver returned no address (an empty list)")
        return list(value)
    raise TypeError(f"resolver must return an address str or a list of them, not {value!r}")


def _in_thread(fn: Callable[..., object], *args: object) -> asyncio.Future[Any]:
    # A daemon thread per call, not the loop's default executor: a resolver that never returns must
    # not hold up the interpreter's exit, which joins executor threads.
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: object, failed: bool) -> None:
        if not future.done():
            if failed:
                future.set_exception(outcome)  # type: ignore[arg-type]
            else:
                future.set_result(outcome)

    def run() -> None:
        try:
            outcome, failed = fn(*args), False
        except BaseException as exc:  # handed to the attempt, which reports it
            outcome, failed = exc, True
        try:
            loop.call_soon_threadsafe(settle, outcome, failed)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    threading.Thread(target=run, name="connman-resolver", daemon=True).start()
    return future
