"""`classify()`: every error connman can see, while connecting and on an established connection."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from connman import Cause, ConnectTimeout, IdleTimeout, ProtocolError, ProxyError
from connman._causes import classify


def os_error(code: int) -> OSError:
    return OSError(code, "x")  # Python picks the subclass: ConnectionRefusedError, TimeoutError, ...


@pytest.mark.parametrize(
    ("error", "connecting", "established"),
    [
        (None, Cause.ERROR, Cause.EOF),
        (os_error(errno.ECONNREFUSED), Cause.REFUSED, Cause.REFUSED),
        (os_error(errno.ECONNRESET), Cause.RESET, Cause.RESET),
        (os_error(errno.EPIPE), Cause.RESET, Cause.RESET),
        (os_error(errno.ECONNABORTED), Cause.RESET, Cause.RESET),
        (os_error(errno.ETIMEDOUT), Cause.TIMEOUT, Cause.HALF_OPEN),
        (os_error(errno.ENETUNREACH), Cause.UNREACHABLE, Cause.UNREACHABLE),
        (os_error(errno.EHOSTUNREACH), Cause.UNREACHABLE, Cause.UNREACHABLE),
        (os_error(errno.EADDRNOTAVAIL), Cause.UNREACHABLE, Cause.UNREACHABLE),
        (os_error(errno.EACCES), Cause.ERROR, Cause.ERROR),
        (os_error(errno.ENOENT), Cause.REFUSED, Cause.ERROR),  # no socket file at a Unix path
        (ProxyError("proxy socks5://p:1080 could not be reached"), Cause.PROXY, Cause.PROXY),
        (socket.gaierror(socket.EAI_NONAME, "unknown"), Cause.DNS, Cause.DNS),
        (ssl.SSLCertVerificationError(1, "bad certificate"), Cause.TLS, Cause.TLS),
        (ssl.SSLError(1, "wrong version"), Cause.TLS, Cause.TLS),
        (ConnectTimeout("connect_timeout"), Cause.TIMEOUT, Cause.TIMEOUT),
        (IdleTimeout("idle_timeout"), Cause.HALF_OPEN, Cause.HALF_OPEN),
        (ProtocolError("oversized frame"), Cause.PROTOCOL, Cause.PROTOCOL),
        (TimeoutError(), Cause.TIMEOUT, Cause.TIMEOUT),
        (RuntimeError("other"), Cause.ERROR, Cause.ERROR),
    ],
)
def test_classify(error: BaseException | None, connecting: Cause, established: Cause) -> None:
    assert classify(error, connected=False) is connecting
    assert classify(error, connected=True) is established


def test_kernel_and_connman_timeouts_are_told_apart_by_errno() -> None:
    kernel = os_error(errno.ETIMEDOUT)
    assert isinstance(kernel, TimeoutError) and isinstance(ConnectTimeout(), TimeoutError)
    assert kernel.errno == errno.ETIMEDOUT and ConnectTimeout().errno is None
    assert repr(Cause.HALF_OPEN) == "Cause.HALF_OPEN"
