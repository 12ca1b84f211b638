"""TLS fixtures shared by the driver tests: a test CA (trustme) and a loopback TLS echo server."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from connman.testing import EchoServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[EchoServer]:
    """A TLS echo server whose certificate (from `ca`) is for localhost and 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    async with EchoServer(ssl=context) as server:
        yield server
