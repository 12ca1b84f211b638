"""A loopback port that never answers a SYN, without root: a listener whose accept queue is full."""

from __future__ import annotations

import select
import socket
from typing import Self

__all__ = ["SynBlackhole"]


class SynBlackhole:
    """A loopback port whose SYNs go unanswered, so connecting to it times out (no refusal, no RST).

    Linux drops a SYN for a listener whose accept queue is full. The listener has a backlog of 0 (room
    for one) and is never accepted from; one filler connection takes that room. Use it to test
    `connect_timeout`.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._sockets: list[socket.socket] = []

    def open(self) -> Self:
        """Listen and fill the accept queue; `port` is then a blackhole."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        self._sockets.append(listener)
        listener.bind((self.host, 0))
        listener.listen(0)
        self.port = listener.getsockname()[1]
        filler = socket.socket(family, socket.SOCK_STREAM)
        self._sockets.append(filler)
        filler.setblocking(False)
        filler.connect_ex((self.host, self.port))
        _, writable, _ = select.select([], [filler], [], 5.0)
        if not writable or filler.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.close()
            raise OSError("could not fill the accept queue of the blackhole listener")
        return self

    def close(self) -> None:
        """Close the listener and the filler."""
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
