"""Helpers for testing code that uses connman: servers you can stop, restart and misbehave.

- `EchoServer`: a loopback TCP server (asyncio) that echoes, or closes every connection at once, or
  accepts and stays silent; it can be stopped and restarted on the same port, and can drop every
  client with FIN or RST on demand.
- `ServerThread`: runs an `EchoServer` on a loop thread of its own, with a blocking API, for sync code
  and for tests whose client runs on another loop.
"""

from __future__ import annotations

from ._server import EchoServer, ServerMode, ServerThread

__all__ = ["EchoServer", "ServerMode", "ServerThread"]
