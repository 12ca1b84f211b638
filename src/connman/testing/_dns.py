"""A tiny DNS client (A records over UDP, standard library only), for tests that run their own DNS
server: the system resolver is never asked.

    resolver = DnsResolver(("127.0.0.1", 5353))
    pool.discover(11211, "cache.test", resolver=resolver)
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Final

__all__ = ["DnsResolver", "aquery_a", "query_a"]

_A: Final = 1
_IN: Final = 1
_NXDOMAIN: Final = 3


def _query(name: str, ident: int) -> bytes:
    labels = b"".join(bytes([len(label)]) + label for label in name.rstrip(".").encode("idna").split(b"."))
    # Header: id, flags (recursion desired), 1 question, 0 answers, 0 authority, 0 additional.
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", _A, _IN)


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        size = data[offset]
        if size & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += 1
        if size == 0:
            return offset
        offset += size


def _answers(data: bytes, ident: int, name: str) -> list[str] | None:
    """The A records of a reply to query `ident`; None if `data` is not that reply."""
    if len(data) < 12:
        return None
    got, flags, questions, answers, _, _ = struct.unpack("!HHHHHH", data[:12])
    if got != ident or not flags & 0x8000:
        return None
    code = flags & 0x000F
    if code == _NXDOMAIN:
        raise socket.gaierror(socket.EAI_NONAME, f"{name} does not resolve (NXDOMAIN)")
    if code != 0:
        raise socket.gaierror(socket.EAI_FAIL, f"{name}: the DNS server answered with rcode {code}")
    offset = 12
    for _ in range(questions):
        offset = _skip_name(data, offset) + 4
    addresses = []
    for _ in range(answers):
        offset = _skip_name(data, offset)
        kind, klass, _, size = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        if kind == _A and klass == _IN and size == 4:
            addresses.append(socket.inet_ntoa(data[offset : offset + 4]))
        offset += size
    if not addresses:
        raise socket.gaierror(socket.EAI_NODATA, f"{name} has no A record")
    return addresses


def query_a(name: str, server: tuple[str, int], timeout: float = 2.0) -> list[str]:
    """The IPv4 addresses of `name` according to the DNS server at `server` (blocking).

    Raises:
        socket.gaierror: The name does not resolve (NXDOMAIN, no A record, a server failure).
        TimeoutError: No answer within `timeout` seconds (the query is sent twice).
    """
    ident = int.from_bytes(os.urandom(2), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(server)
        for _ in range(2):
            sock.send(_query(name, ident))
            sock.settimeout(timeout / 2)
            try:
                while True:
                    found = _answers(sock.recv(4096), ident, name)
                    if found is not None:
                        return found
            except TimeoutError:
                continue
    raise TimeoutError(f"no answer from the DNS server {server[0]}:{server[1]} within {timeout} s")


async def aquery_a(name: str, server: tuple[str, int], timeout: float = 2.0) -> list[str]:
    """`query_a()` for asyncio: the same, without blocking the loop."""
    loop = asyncio.get_running_loop()
    ident = int.from_bytes(os.urandom(2), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(server)
        for _ in range(2):
            await loop.sock_sendall(sock, _query(name, ident))
            try:
                async with asyncio.timeout(timeout / 2):
                    while True:
                        found = _answers(await loop.sock_recv(sock, 4096), ident, name)
                        if found is not None:
                            return found
            except TimeoutError:
                continue
    raise TimeoutError(f"no answer from the DNS server {server[0]}:{server[1]} within {timeout} s")


class DnsResolver:
    """A `resolver=` hook that asks the DNS server at `server` (a test's own) for A records.

    Returns every address, so a connection tries them in order and `Pool.discover()` keeps a
    member per address.
    """

    def __init__(self, server: tuple[str, int], timeout: float = 2.0) -> None:
        self.server = server
        self.timeout = timeout
        #: Queries sent (one per call).
        self.queries = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.queries += 1
        return await aquery_a(host, self.server, self.timeout)
