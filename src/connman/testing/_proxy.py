"""An in-process TCP fault proxy: put it between a client and a server and break things at run time.

Toxiproxy's ideas (latency, slicing, a byte limit, a blackhole) without its server: everything runs on
the asyncio loop of the test, each fault is a method or an attribute you switch while traffic flows.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Self, cast

from ._server import reset_socket_of, stop_accepting

__all__ = ["FaultProxy"]


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: the client's (accepted) or the upstream's (dialled)."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.outbox: deque[tuple[float, bytes]] = deque()  # (due time, bytes) still to write here
        self.pump: asyncio.Handle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.link.made(self)

    def data_received(self, data: bytes) -> None:
        self.link.forward(self, data)

    def eof_received(self) -> bool:
        return False  # close this side; connection_lost closes the other one

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(self)


class _Link:
    """A client connection and its upstream connection, joined through the proxy's faults."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.client = _Side(self)
        self.upstream = _Side(self)
        self.carried = 0
        self.early: list[bytes] = []  # client bytes that arrived before the upstream connected
        self.dialling: asyncio.Task[None] | None = None
        self.closed = False
        self.closing_after_flush = False  # close once both outboxes are written (limit, peer gone)

    def made(self, side: _Side) -> None:
        proxy = self.proxy
        assert side.transport is not None
        if side is self.client:
            proxy.accepts += 1
            if proxy._server is None:  # accepted as the listener closed
                side.transport.close()
                return
            proxy._links.add(self)
            self.dialling = asyncio.get_running_loop().create_task(self.dial())
        else:
            for data in self.early:
                self.forward(self.client, data)
            self.early.clear()
        if proxy.stalled:
            side.transport.pause_reading()

    async def dial(self) -> None:
        proxy = self.proxy
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: self.upstream, proxy.target_host, proxy.target_port
            )
        except OSError:
            # The target is down: the client sees its connection reset, as if the proxy were it.
            if self.client.transport is not None:
                reset_socket_of(self.client.transport)

    def forward(self, source: _Side, data: bytes) -> None:
        proxy = self.proxy
        if proxy.blackhole or self.closed:
            return
        if source is self.client and self.upstream.transport is None:
            self.early.append(data)
            return
        limit = proxy.limit_bytes
        cut = False
        if limit is not None and self.carried + len(data) >= limit:
            data = data[: max(0, limit - self.carried)]
            cut = True
        self.carried += len(data)
        target = self.upstream if source is self.client else self.client
        if data:
            target.outbox.append((asyncio.get_running_loop().time() + proxy.latency, data))
            if target.pump is None:  # else a pump is armed already and will reach this chunk in order
                self.pump(target)
        if cut:
            self.closing_after_flush = True
            self.close_when_flushed()

    def pump(self, side: _Side) -> None:
        """Write what is due in `side`'s outbox, at most `proxy.slice_bytes` per loop iteration."""
        side.pump = None
        transport = side.transport
        if transport is None or transport.is_closing():
            side.outbox.clear()
            return
        loop = asyncio.get_running_loop()
        size = self.proxy.slice_bytes
        while side.outbox:
            due, data = side.outbox[0]
            if due > loop.time():
                side.pump = loop.call_at(due, self.pump, side)
                return
            if size is not None and len(data) > size:
                transport.write(data[:size])
                side.outbox[0] = (due, data[size:])
                # The next slice in a later segment (and, with a delay, a later read on the other side).
                side.pump = loop.call_later(self.proxy.slice_delay, self.pump, side)
                return
            side.outbox.popleft()
            transport.write(data)
        if self.closing_after_flush:
            self.close_when_flushed()

    def close_when_flushed(self) -> None:
        if not self.client.outbox and not self.upstream.outbox:
            self.close(reset=False)

    def lost(self, side: _Side) -> None:
        other = self.upstream if side is self.client else self.client
        if other.transport is not None and not other.outbox:
            other.transport.close()
        elif other.transport is not None:
            self.closing_after_flush = True
        if side is self.client or other.transport is None:
            self.close(reset=False)

    def close(self, *, reset: bool) -> None:
        self.closed = True
        self.proxy._links.discard(self)
        for side in (self.client, self.upstream):
            if side.pump is not None:
                side.pump.cancel()
                side.pump = None
            side.outbox.clear()
            if side.transport is not None and not side.transport.is_closing():
                if reset:
                    reset_socket_of(side.transport)
                else:
                    side.transport.close()
        if self.dialling is not None and self.upstream.transport is None:
            self.dialling.cancel()


class FaultProxy:
    """A loopback TCP proxy to `target_host:target_port` whose faults switch on and off at run time.

    Args:
        target_port: Where to forward to.
        target_host: Its address (loopback in tests).
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one on the first `start()` and keeps it.

    Faults (change them any time, from the proxy's loop):

    - `await refuse()` / `await start()`: stop listening (new connections are refused) / listen again.
      Connections already proxied carry on.
    - `reset_all()`: send RST to every client now. `close_all()`: send FIN to every client now.
    - `stall(True)`: stop reading on both sides: bytes pile up in the kernels and TCP pushes back, like a
      paused peer. `stall(False)` delivers them.
    - `blackhole = True`: accept and read, but drop every byte in both directions (a peer that vanished).
    - `latency = s`: deliver each chunk `s` seconds after it arrived, in order.
    - `slice_bytes = n`: deliver at most `n` bytes at a time, each piece in a later segment;
      `slice_delay = s` waits `s` seconds between pieces (0: the next loop iteration), so that a
      receiver on the same machine reads them one by one.
    - `limit_bytes = n`: close each connection (FIN) once it has carried `n` bytes in both directions.

    When the target refuses, the client's connection is reset, as a real server's would be.
    """

    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_port = target_port
        self.target_host = target_host
        self.host = host
        self.port = port
        self.latency = 0.0
        self.slice_bytes: int | None = None
        self.slice_delay = 0.0
        self.limit_bytes: int | None = None
        self.blackhole = False
        self.stalled = False
        self.accepts = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    @property
    def is_serving(self) -> bool:
        """Whether the proxy is listening."""
        return self._server is not None

    @property
    def clients(self) -> int:
        """How many proxied connections are open now."""
        return len(self._links)

    async def start(self) -> Self:
        """Listen (again, on the same port after the first start)."""
        if self._server is None:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _Link(self).client, self.host, self.port, family=socket.AF_UNSPEC, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def refuse(self) -> None:
        """Stop listening: new connections are refused until `start()`. Open ones carry on."""
        server, self._server = self._server, None
        if server is not None:
            await stop_accepting(server)
            await server.wait_closed()

    def reset_all(self) -> int:
        """Reset (RST) every proxied connection now; return how many."""
        return self._drop(reset=True)

    def close_all(self) -> int:
        """Close (FIN) every proxied connection now; return how many."""
        return self._drop(reset=False)

    def _drop(self, *, reset: bool) -> int:
        links = list(self._links)
        for link in links:
            link.close(reset=reset)
        return len(links)

    def stall(self, on: bool = True) -> None:
        """Stop (or resume) reading from both sides of every connection, new ones included."""
        self.stalled = on
        for link in self._links:
            for side in (link.client, link.upstream):
                if side.transport is not None and not side.transport.is_closing():
                    if on:
                        side.transport.pause_reading()
                    else:
                        side.transport.resume_reading()

    async def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        await self.refuse()
        links = list(self._links)
        self.close_all()
        for link in links:
            if link.dialling is not None:
                await asyncio.wait([link.dialling], timeout=5)
        await asyncio.sleep(0)  # let the closed transports call connection_lost

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
