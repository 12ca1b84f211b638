"""Request/response over one managed connection: the pattern the memcache and redis examples share.

Requests go out in order and their answers come back in order (memcached's and Redis's text protocols
both work this way), so a FIFO of futures matches answers to callers. When the connection drops, every
request still waiting is failed with `connman.NotConnected`: its answer can never come, and a caller
must never hang. A request made while down waits for the connection for up to `timeout` seconds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import connman

T = TypeVar("T")

#: A parser takes the receive buffer and returns (answer, bytes consumed), or None if incomplete. An
#: answer that is an exception (an error reply) is raised to the caller.
Parser = Callable[[bytearray], "tuple[T | Exception, int] | None"]


class Pipeline(Generic[T]):
    """A managed connection carrying pipelined requests, each answered in order."""

    def __init__(self, port: int, host: str, *, timeout: float = 2.0, **options: object) -> None:
        self.timeout = timeout
        self.buffer = bytearray()
        self.waiting: deque[tuple[Parser[T], asyncio.Future[T]]] = deque()
        self.conn = connman.connect(
            port,
            host,
            on_data=self._on_data,
            on_reset=self._on_reset,
            **options,  # type: ignore[arg-type]
        )

    async def request(self, data: bytes, parser: Parser[T]) -> T:
        """Send `data`; return what `parser` makes of the answer.

        Raises:
            connman.NotConnected: Down for longer than `timeout`, or dropped before the answer.
            TimeoutError: No answer within `timeout` seconds.
        """
        if not self.conn.is_connected and not await self.conn.wait_connected(self.timeout):
            raise connman.NotConnected(
                f"not connected to {self.conn.endpoint} (last error: {self.conn.last_error!r})"
            )
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.waiting.append((parser, future))
        self.conn.write(data)
        async with asyncio.timeout(self.timeout):
            return await future

    def _on_data(self, data: bytes) -> None:
        self.buffer += data
        while self.waiting:
            parser, future = self.waiting[0]
            try:
                parsed = parser(self.buffer)
            except Exception as exc:  # a reply we cannot parse: the stream is out of step
                self.waiting.popleft()
                if not future.done():
                    future.set_exception(exc)
                self.conn.reconnect()  # start clean; on_reset fails the requests behind it
                return
            if parsed is None:
                return  # the answer is not complete yet
            answer, used = parsed
            del self.buffer[:used]
            self.waiting.popleft()
            if future.done():  # its caller timed out
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    def _on_reset(self) -> None:
        self.buffer.clear()
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(connman.NotConnected(f"connection to {self.conn.endpoint} was lost"))

    async def close(self) -> None:
        """Disconnect; requests still waiting fail."""
        self._on_reset()
        await self.conn.disconnect()
