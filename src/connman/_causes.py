"""Why a connection went down, as one word: the pure classification behind `Connection.last_cause`.

An exception says what failed, not what it means: on Python 3.11+ a kernel `ETIMEDOUT` (keepalive or
`TCP_USER_TIMEOUT` gave up on a silent peer) and connman's own connect deadline are both `TimeoutError`,
and only `errno` tells them apart. `classify()` turns the error and the moment it happened (while
connecting, or on an established connection) into a `Cause`.
"""

from __future__ import annotations

import enum
import errno
import socket
import ssl

from .errors import ConnectTimeout, HeartbeatTimeout, IdleTimeout, ProtocolError, ProxyError

__all__ = ["Cause", "classify"]


class Cause(enum.Enum):
    """The cause of the last failed attempt or lost connection (`Connection.last_cause`)."""

    EOF = "eof"
    """The peer closed the connection (FIN)."""
    RESET = "reset"
    """The peer reset the connection (RST: ECONNRESET, EPIPE, ECONNABORTED)."""
    REFUSED = "refused"
    """Nothing listens at the endpoint (ECONNREFUSED)."""
    TIMEOUT = "timeout"
    """The attempt did not complete in time (`connect_timeout`, or the kernel's SYN retries)."""
    HALF_OPEN = "half-open"
    """The peer vanished without FIN or RST: keepalive, `user_timeout`, `idle_timeout` or `heartbeat`
    noticed."""
    UNREACHABLE = "unreachable"
    """No route to the network or host, or the local address went away."""
    DNS = "dns"
    """The host name did not resolve."""
    TLS = "tls"
    """The TLS handshake or a TLS record failed (certificate, protocol)."""
    PROXY = "proxy"
    """The proxy (`connman.dialers`) could not be reached or refused the tunnel; see `last_error`."""
    PROTOCOL = "protocol"
    """The peer broke the protocol: `on_data` raised `ProtocolError` (an oversized or malformed frame)."""
    RECONNECT = "reconnect"
    """The application called `reconnect()`."""
    ERROR = "error"
    """Anything else; see `last_error`."""

    def __repr__(self) -> str:
        return f"Cause.{self.name}"


_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_UNREACHABLE_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.EADDRNOTAVAIL}
)


def classify(error: BaseException | None, *, connected: bool) -> Cause:
    """The `Cause` of `error`, raised while connecting (`connected` False) or on an established
    connection (`connected` True). `None` on an established connection is a clean EOF."""
    if error is None:
        return Cause.EOF if connected else Cause.ERROR
    if isinstance(error, ProtocolError):
        return Cause.PROTOCOL
    if isinstance(error, (IdleTimeout, HeartbeatTimeout)):
        return Cause.HALF_OPEN
    if isinstance(error, ProxyError):
        return Cause.PROXY
    if isinstance(error, ConnectTimeout):
        return Cause.TIMEOUT
    # Before ssl.SSLError: SSLError is an OSError whose errno is an SSL code, not an errno.
    if isinstance(error, (ssl.SSLError, ssl.CertificateError)):
        return Cause.TLS
    if isinstance(error, socket.gaierror):
        return Cause.DNS
    if isinstance(error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        # Also without an errno: asyncio's SSL layer raises a bare ConnectionResetError() when the
        # peer closes during the handshake.
        return Cause.RESET
    if isinstance(error, OSError):
        code = error.errno
        if code == errno.ECONNREFUSED or (code == errno.ENOENT and not connected):
            return Cause.REFUSED  # ENOENT: no socket file at a Unix socket's path
        if code in _RESET_ERRNOS:
            return Cause.RESET
        if code == errno.ETIMEDOUT:
            return Cause.HALF_OPEN if connected else Cause.TIMEOUT
        if code in _UNREACHABLE_ERRNOS:
            return Cause.UNREACHABLE
        if isinstance(error, TimeoutError):
            return Cause.TIMEOUT
    return Cause.ERROR
