"""One connection attempt: resolve the name (through the resolver hook if any), connect, handshake.

Or: connect a Unix socket; or get the socket from a `dialer` (a proxy) and run TLS on it.

The attempt's task runs the coroutine; a `DeadlineQueue` bounds it by `connect_timeout`. A resolver
that is a plain function may block (it may do DNS itself), so it runs on a thread of its own: a
blocking resolver must neither stall the loop, and every other connection on it, nor outlast
`connect_timeout`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import socket
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from ._endpoints import UnixEndpoint
from ._options import Dialer, Endpoint, Options
from ._protocol import ManagedProtocol

__all__ = ["dial", "direct_address", "resolve", "resolved_addresses"]


def dial(
    loop: asyncio.AbstractEventLoop,
    endpoint: Endpoint | UnixEndpoint,
    options: Options,
    protocol: ManagedProtocol,
) -> Coroutine[Any, Any, object]:
    """The coroutine that connects `protocol` to `endpoint`, or raises why not; the attempt's task runs it.

    A plain function, not a coroutine: for a plain TCP endpoint the task runs the loop's own
    `create_connection()`, with no frame of connman's in between (W4 holds 10,000 pending at once).
    `connect_timeout` is not its business: the connection puts the protocol in a `DeadlineQueue`.
    """
    if isinstance(endpoint, UnixEndpoint):
        return loop.create_unix_connection(protocol, endpoint.path, **options.create_connection)
    if options.dialer is not None:
        return _through_dialer(loop, options.dialer, endpoint, options, protocol)
    if options.resolver is not None:
        return _to_resolved(loop, endpoint, options, protocol)
    return loop.create_connection(protocol, endpoint.host, endpoint.port, **options.create_connection)


def direct_address(
    loop: asyncio.AbstractEventLoop, endpoint: Endpoint | UnixEndpoint, options: Options
) -> tuple[int, tuple[Any, ...]] | None:
    """`(family, address)` when the attempt connects its socket itself (`ManagedProtocol.connect`).

    That is: asyncio's own selector loop (uvloop's `create_connection()` is native code already), a
    numeric address (a name is resolved by `create_connection()` at each attempt), and nothing else
    for `create_connection()` to do (no TLS, `family`, `local_addr`, ..., resolver or dialer).
    """
    if (
        not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
        or not isinstance(endpoint, Endpoint)
        or options.create_connection
        or options.dialer is not None
        or options.resolver is not None
    ):
        return None
    return _numeric_address(endpoint.host, endpoint.port)


@functools.lru_cache(maxsize=1024)
def _numeric_address(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
    except (OSError, UnicodeError):  # a name, or not even that: create_connection() says why, as a failure
        return None
    return family, address


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
    protocol: ManagedProtocol,
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
        await loop.create_connection(protocol, sock=sock, **_checked_against_host(endpoint, options))
    except BaseException:
        sock.close()  # not owned by a transport yet (closing twice is harmless)
        raise


async def _to_resolved(
    loop: asyncio.AbstractEventLoop, endpoint: Endpoint, options: Options, protocol: ManagedProtocol
) -> None:
    assert options.resolver is not None
    addresses = await resolve(options.resolver, endpoint)
    extra = _checked_against_host(endpoint, options)
    error: OSError | None = None
    for address in addresses:  # in order, within this one attempt
        try:
            await loop.create_connection(protocol, address, endpoint.port, **extra)
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
