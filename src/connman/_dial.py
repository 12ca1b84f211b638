"""One connection attempt: resolve the name (through the resolver hook if any), connect, handshake.

The whole attempt is bounded by `connect_timeout`. A resolver that is a plain function may block (it
may do DNS itself), so it runs on a thread of its own: a blocking resolver must neither stall the
loop, and every other connection on it, nor outlast `connect_timeout`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from ._options import Endpoint, Options
from .errors import ConnectTimeout

__all__ = ["dial"]


async def dial(
    loop: asyncio.AbstractEventLoop,
    endpoint: Endpoint,
    options: Options,
    protocol: asyncio.BaseProtocol,
) -> None:
    """Connect `protocol` to `endpoint`, or raise why not (`ConnectTimeout` past `connect_timeout`)."""
    timeout = options.connect_timeout
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
        if deadline.expired():
            raise ConnectTimeout(
                f"connect to {endpoint} timed out after {timeout} s (connect_timeout)"
            ) from exc
        raise


def _is_async(fn: Callable[..., object]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


async def _resolve(resolver: Callable[[str, int], Any], endpoint: Endpoint) -> str:
    if _is_async(resolver):
        address = await resolver(endpoint.host, endpoint.port)
    else:
        address = await _in_thread(resolver, endpoint.host, endpoint.port)
        if inspect.isawaitable(address):  # a plain function that returned an awaitable
            address = await address
    if not isinstance(address, str):
        raise TypeError(f"resolver must return an address str, not {address!r}")
    return address


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
