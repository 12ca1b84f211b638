"""A restartable loopback server for tests (see the package docstring)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as _ssl
import struct
import threading
from collections.abc import Coroutine
from typing import Any, Literal, Self, TypeAlias, TypeVar, cast

__all__ = ["EchoServer", "ServerMode", "ServerThread"]

T = TypeVar("T")
ServerMode: TypeAlias = Literal["echo", "close", "silent", "deaf"]
"""What an `EchoServer` does with its clients.

"echo" sends back what it reads; "close" accepts and closes at once; "silent" reads and never
answers; "deaf" never reads (writes back up).
"""
MODES: tuple[ServerMode, ...] = ("echo", "close", "silent", "deaf")


class _Peer(asyncio.Protocol):
    def __init__(self, server: EchoServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        server.accepts += 1
        server._peers.add(self)
        if server.mode == "close" or server._server is None:  # the latter: accepted as we stopped
            self.transport.close()
            return
        if server.mode == "deaf":
            self.transport.pause_reading()  # never reads: the client's writes back up
        server._accepted.set()

    def data_received(self, data: bytes) -> None:
        server = self.server
        server.received += len(data)
        if server.keep_data:
            server.data.extend(data)
        if server.mode == "echo" and self.transport is not None:
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._peers.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)


class EchoServer:
    """A loopback TCP server that can be stopped, restarted on the same port, and told to misbehave.

    Args:
        host: Address to listen on. Loopback only, as tests should.
        port: Port to listen on; 0 picks a free one on the first `start()` and keeps it.
        mode: "echo" sends back what it receives; "close" closes every connection as soon as it is
            accepted (the flap-guard case); "silent" accepts and never answers; "deaf" accepts and never
            reads, so the client's writes back up. Change it any time.
        keep_data: Keep every received byte in `data` (for tests that check what arrived).
        ssl: Serve TLS with this context (e.g. from the `trustme` package); None serves plain TCP.
        backlog: The listen backlog. Above it, Linux completes handshakes it then never hands to the
            server, so a client believes it is connected to nothing: keep it above your client count.
        path: Listen on this Unix socket path instead of `host:port` (for `connman.connect_unix()`);
            `stop()` removes the socket file, so that a client then finds no file (`Cause.REFUSED`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mode: ServerMode = "echo",
        keep_data: bool = False,
        ssl: _ssl.SSLContext | None = None,
        backlog: int = 1024,
        path: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES!r}, not {mode!r}")
        self.host = host
        self.port = port
        self.mode: ServerMode = mode
        self.keep_data = keep_data
        self.ssl = ssl
        self.backlog = backlog
        self.path = path
        self.data = bytearray()
        self.accepts = 0
        self.received = 0
        self._server: asyncio.Server | None = None
        self._peers: set[_Peer] = set()
        self._accepted = asyncio.Event()

    @property
    def is_serving(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    @property
    def clients(self) -> int:
        """How many client connections are open now."""
        return len(self._peers)

    async def start(self) -> Self:
        """Listen (again, on the same port after the first start)."""
        if self._server is not None:
            return self
        if self.path is not None:
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: _Peer(self), self.path, ssl=self.ssl, backlog=self.backlog
            )
            return self
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Peer(self),
            self.host,
            self.port,
            family=socket.AF_UNSPEC,
            reuse_address=True,
            ssl=self.ssl,
            backlog=self.backlog,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self, *, reset: bool = False) -> None:
        """Stop listening and drop every client (with FIN, or RST if `reset`)."""
        server, self._server = self._server, None
        if server is not None:
            await stop_accepting(server)
        closing = [peer.closed for peer in self._peers]
        self.drop_clients(reset=reset)
        if closing:
            # Let every dropped socket really close before we return (and maybe the loop stops).
            await asyncio.wait(closing, timeout=5)
        if server is not None:
            await server.wait_closed()
            if self.path is not None and not self.path.startswith("\0"):
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass

    async def restart(self) -> None:
        """Stop, dropping every client, and listen again on the same port."""
        await self.stop()
        await self.start()

    def drop_clients(self, *, reset: bool = False) -> int:
        """Close every client connection now (FIN, or RST if `reset`); return how many."""
        peers = list(self._peers)
        for peer in peers:
            if peer.transport is not None:
                if reset:
                    reset_socket_of(peer.transport)
                else:
                    peer.transport.close()
        self._peers.clear()
        return len(peers)

    def broadcast(self, data: bytes) -> None:
        """Send `data` to every connected client."""
        for peer in list(self._peers):
            if peer.transport is not None:
                peer.transport.write(data)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def stop_accepting(server: asyncio.Server) -> None:
    """Close a listener without leaking a socket accepted at that very moment.

    asyncio finishes each accept in a task of its own, and on Python 3.11 a task that runs after
    `Server.close()` fails an assertion and drops its socket unclosed. So stop accepting first, let
    the accepts in flight land, then close. Call `server.wait_closed()` afterwards.
    """
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        try:
            loop.remove_reader(sock.fileno())
        except NotImplementedError:  # pragma: no cover - loops without readers
            pass
    for _ in range(3):
        await asyncio.sleep(0)
    server.close()


def reset_socket_of(transport: asyncio.Transport) -> None:
    """Make the next close of `transport` send RST instead of FIN, and close it now."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family != socket.AF_UNIX:  # a Unix socket has no RST
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _finish_tasks() -> None:
    # An accept in flight is a task of asyncio's own; wait until none is left, and let the last
    # connection_made / connection_lost callbacks run.
    current = asyncio.current_task()
    for _ in range(100):
        await asyncio.sleep(0)
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        if not tasks:
            break
        await asyncio.wait(tasks, timeout=5)


class ServerThread:
    """Run an `EchoServer` on its own loop thread, with blocking methods.

    Use it from sync code, or to keep a server off the loop a test's client runs on.
    """

    def __init__(self, server: EchoServer | None = None) -> None:
        self.server = server if server is not None else EchoServer()
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="connman-test-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(_finish_tasks())
            self._loop.close()

    @property
    def port(self) -> int:
        """The server's port (known after the first `start()`)."""
        return self.server.port

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> Self:
        """Start (or restart listening) and return self."""
        self.call(self.server.start())
        return self

    def stop(self, *, reset: bool = False) -> None:
        """Stop listening and drop every client."""
        self.call(self.server.stop(reset=reset))

    def restart(self) -> None:
        """Stop and listen again on the same port."""
        self.call(self.server.restart())

    def drop_clients(self, *, reset: bool = False) -> int:
        """Drop every client now; return how many."""

        async def drop() -> int:
            return self.server.drop_clients(reset=reset)

        return self.call(drop())

    def close(self) -> None:
        """Stop the server and its thread (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self.stop()
        self.call(_finish_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
