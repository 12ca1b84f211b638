"""Helpers for testing code that uses connman: servers you can stop, restart and misbehave.

- `EchoServer`: a loopback TCP server (asyncio) that echoes, or closes every connection at once, or
  accepts and stays silent; it can be stopped and restarted on the same port, and can drop every
  client with FIN or RST on demand.
- `FaultProxy`: an in-process proxy in front of any server, with faults switched at run time: refuse,
  reset (RST) now, close (FIN) now, stall, blackhole, latency, slicing, a byte limit.
- `SynBlackhole`: a loopback port that never answers a SYN (connect timeouts, without root).
- `SynCounter`: kernel timestamps of the SYNs sent to a loopback port (Linux, root): attempts as the
  wire sees them, refused ones included.
- `query_a`, `aquery_a`, `DnsResolver`: a tiny DNS client (A records) for tests that run their own DNS
  server (dnsmasq, say) and must never ask the system resolver.
- `ServerThread`: runs an `EchoServer` on a loop thread of its own, with a blocking API, for sync code
  and for tests whose client runs on another loop.

See docs/testing.md for recipes.
"""

from __future__ import annotations

from ._blackhole import SynBlackhole
from ._dns import DnsResolver, aquery_a, query_a
from ._proxy import FaultProxy
from ._server import EchoServer, ServerMode, ServerThread
from ._syn import SynCounter

__all__ = [
    "DnsResolver",
    "EchoServer",
    "FaultProxy",
    "ServerMode",
    "ServerThread",
    "SynBlackhole",
    "SynCounter",
    "aquery_a",
    "query_a",
]
