"""Dialers for `connect(..., dialer=...)`: reach the target through a proxy. Standard library only.

A dialer is an async callable `(host, port) -> connected socket`. connman calls it for every attempt,
within `connect_timeout`, then runs TLS on the socket if asked (checking the certificate against
`host`, not the proxy) and owns the connection as usual:

    conn = connman.connect(6379, "redis.internal", dialer=connman.dialers.socks5("127.0.0.1:1080"))

Everything that goes wrong on the way to the proxy or in its reply raises `connman.ProxyError`
(`Cause.PROXY`), with a message naming the proxy and what it said. Once the tunnel is up, the
connection is classified like a direct one (EOF, RESET, ...).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ._options import Dialer, check_endpoint
from .errors import ProxyError

__all__ = ["http_connect", "socks5"]


@dataclass(frozen=True, slots=True)
class _Proxy:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _without_credentials(proxy: str) -> str:
    """`proxy` as an error message may show it: `user:password@` becomes `***@`."""
    credentials, at, where = proxy.rpartition("@")  # a host never holds "@"; a password may
    if not at:
        return proxy
    scheme, sep, _ = credentials.partition("://")
    return f"{scheme}{sep}***@{where}" if sep else f"***@{where}"


def _parse_proxy(name: str, url: object, schemes: tuple[str, ...], default_port: int) -> _Proxy:
    """`"host:port"` or `"scheme://[user:password@]host[:port]"`; ValueError naming `name` otherwise.

    The messages never show the credentials: a traceback ends up in logs."""
    if not isinstance(url, str):
        raise TypeError(
            f"{name} must be a str such as '{schemes[0]}://127.0.0.1:{default_port}', not {url!r}"
        )
    proxy = _without_credentials(url)  # what the messages below show
    from urllib.parse import unquote, urlsplit  # here: `import connman` need not pay for it

    text = url if "://" in url else f"{schemes[0]}://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{name} {proxy!r} does not parse as a proxy URL: {exc}") from None
    if parts.scheme not in schemes:
        accepted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"{name} {proxy!r}: the scheme must be {accepted}, not {parts.scheme!r}")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{name} {proxy!r} does not parse as a proxy URL: expected scheme://host:port")
    try:
        endpoint = check_endpoint(default_port if port is None else port, parts.hostname)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} {proxy!r}: {exc}") from None
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return _Proxy(parts.scheme, endpoint.host, endpoint.port, username, password)


async def _open(proxy: _Proxy) -> socket.socket:
    """A non-blocking TCP socket connected to the proxy, or ProxyError saying why not."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProxyError(f"proxy {proxy}: its name does not resolve ({exc})") from exc
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:  # cancelled (connect_timeout): the socket is ours to close
            sock.close()
            raise
    assert error is not None
    why = errno.errorcode.get(error.errno or 0, "") or type(error).__name__
    text = os.strerror(error.errno) if error.errno else str(error)  # not asyncio's "Connect call failed"
    raise ProxyError(f"proxy {proxy} could not be reached: {text} ({why})") from error


async def _recv_exactly(sock: socket.socket, count: int, proxy: _Proxy, what: str) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < count:
        try:
            chunk = await loop.sock_recv(sock, count - len(data))
        except OSError as exc:
            raise ProxyError(f"proxy {proxy} failed while sending {what}: {exc}") from exc
        if not chunk:
            raise ProxyError(
                f"proxy {proxy} closed the connection before sending {what} (got {bytes(data)!r})"
            )
        data += chunk
    return bytes(data)


async def _send(sock: socket.socket, data: bytes, proxy: _Proxy) -> None:
    try:
        await asyncio.get_running_loop().sock_sendall(sock, data)
    except OSError as exc:
        raise ProxyError(f"proxy {proxy} failed while we sent our request: {exc}") from exc


# ---- SOCKS5 (RFC 1928, username/password: RFC 1929) ----------------------------------------------

_SOCKS_REPLIES: Final = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


def socks5(proxy: str, username: str | None = None, password: str | None = None) -> Dialer:
    """A dialer through the SOCKS5 proxy `proxy`.

    `proxy` is `"host:port"` or `"socks5://[user:pass@]host[:port]"` (port 1080 by default).

    The target's host name is sent to the proxy, which resolves it (what curl calls socks5h). With
    `username` and `password` (or both in the URL) the proxy may ask for them (RFC 1929); without,
    connman offers "no authentication" only.

    Raises:
        TypeError: `proxy`, `username` or `password` is not a str.
        ValueError: `proxy` does not parse, or only one of `username` and `password` is given, or one
            is longer than 255 bytes.
    """
    parsed = _parse_proxy("proxy", proxy, ("socks5", "socks5h"), 1080)
    for name, value in (("username", username), ("password", password)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a str or None, not {value!r}")
    user = username if username is not None else parsed.username
    secret = password if password is not None else parsed.password
    if (user is None) != (secret is None):
        raise ValueError("socks5 takes username and password together, or neither")
    credentials = None
    if user is not None and secret is not None:
        credentials = (user.encode(), secret.encode())
        if not (0 < len(credentials[0]) < 256 and len(credentials[1]) < 256):
            raise ValueError("username must be 1..255 bytes and password at most 255 bytes (RFC 1929)")
    target = _Proxy("socks5", parsed.host, parsed.port, None, None)  # shown without credentials

    async def dial_socks5(host: str, port: int) -> socket.socket:
        sock = await _open(target)
        try:
            await _socks5_handshake(sock, target, credentials, host, port)
        except BaseException:
            sock.close()
            raise
        return sock

    dial_socks5.__qualname__ = f"socks5({str(target)!r})"
    return dial_socks5


async def _socks5_handshake(
    sock: socket.socket, proxy: _Proxy, credentials: tuple[bytes, bytes] | None, host: str, port: int
) -> None:
    methods = b"\x00\x02" if credentials is not None else b"\x00"
    await _send(sock, b"\x05" + bytes([len(methods)]) + methods, proxy)
    version, method = await _recv_exactly(sock, 2, proxy, "its method choice")
    if version != 5:
        raise ProxyError(f"proxy {proxy} is not a SOCKS5 proxy: it answered version {version}")
    if method == 0xFF:
        offered = "username/password or none" if credentials is not None else "no authentication"
        raise ProxyError(f"proxy {proxy} accepts none of the methods offered ({offered}): reply 0xff")
    if method == 2 and credentials is not None:
        user, secret = credentials
        await _send(sock, b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret, proxy)
        _, status = await _recv_exactly(sock, 2, proxy, "its authentication reply")
        if status != 0:
            raise ProxyError(f"proxy {proxy} refused the username/password: status {status}")
    elif method != 0:
        raise ProxyError(f"proxy {proxy} chose a method that was not offered: {method}")
    await _send(sock, b"\x05\x01\x00" + _socks5_address(host) + port.to_bytes(2, "big"), proxy)
    version, reply, _, kind = await _recv_exactly(sock, 4, proxy, "its reply to CONNECT")
    if reply != 0:
        meaning = _SOCKS_REPLIES.get(reply, "unknown reply")
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # ::1:80 would be ambiguous
        raise ProxyError(f"proxy {proxy} could not connect to {target}: reply {reply} ({meaning})")
    # The address the proxy bound: read and dropped, so that the tunnel starts clean.
    if kind == 1:
        await _recv_exactly(sock, 4 + 2, proxy, "its bound address")
    elif kind == 4:
        await _recv_exactly(sock, 16 + 2, proxy, "its bound address")
    elif kind == 3:
        (size,) = await _recv_exactly(sock, 1, proxy, "its bound address")
        await _recv_exactly(sock, size + 2, proxy, "its bound address")
    else:
        raise ProxyError(f"proxy {proxy} sent a reply with an unknown address type {kind}")


def _socks5_address(host: str) -> bytes:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        if len(name) > 255:
            raise ProxyError(f"host name {host!r} is too long for SOCKS5 (255 bytes)") from None
        return b"\x03" + bytes([len(name)]) + name
    return (b"\x01" if address.version == 4 else b"\x04") + address.packed


# ---- HTTP CONNECT (RFC 9110, 9.3.6) --------------------------------------------------------------

#: The most a proxy's reply head may hold before we take it for something else.
_MAX_HEAD: Final = 16 * 1024


def http_connect(proxy: str, headers: Mapping[str, str] | None = None) -> Dialer:
    """A dialer through the HTTP proxy `proxy`, with `CONNECT`.

    `proxy` is `"host:port"` or `"http://[user:pass@]host[:port]"` (port 8080 by default; credentials in
    the URL are sent as `Proxy-Authorization: Basic`).

    Args:
        proxy: The proxy's address.
        headers: More request headers (`Proxy-Authorization`, `User-Agent`, ...).

    Raises:
        TypeError: `proxy` is not a str, `headers` not a mapping of str to str.
        ValueError: `proxy` does not parse; a header holds a line break.
    """
    parsed = _parse_proxy("proxy", proxy, ("http",), 8080)
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of str to str, or None, not {headers!r}")
    extra: dict[str, str] = {}
    if parsed.username is not None:
        token = base64.b64encode(f"{parsed.username}:{parsed.password or ''}".encode()).decode()
        extra["Proxy-Authorization"] = f"Basic {token}"
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"headers must be a mapping of str to str, not {key!r}: {value!r}")
        if any(char in key + value for char in "\r\n") or not key or ":" in key:
            raise ValueError(f"headers: {key!r}: {value!r} is not a valid header")
        extra[key] = value
    target = _Proxy("http", parsed.host, parsed.port, None, None)

    async def dial_http_connect(host: str, port: int) -> socket.socket:
        sock = await _open(target)
        try:
            await _http_handshake(sock, target, extra, host, port)
        except BaseException:
            sock.close()
            raise
        return sock

    dial_http_connect.__qualname__ = f"http_connect({str(target)!r})"
    return dial_http_connect


async def _http_handshake(
    sock: socket.socket, proxy: _Proxy, headers: Mapping[str, str], host: str, port: int
) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    await _send(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), proxy)
    head = await _read_head(sock, proxy)
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProxyError(f"proxy {proxy} did not answer CONNECT with HTTP: {status_line!r}")
    if not 200 <= int(parts[1]) < 300:
        raise ProxyError(f"proxy {proxy} refused CONNECT {authority}: {status_line!r}")


async def _read_head(sock: socket.socket, proxy: _Proxy) -> bytes:
    # Never reads past the blank line: what follows it is the tunnel's, the server's first bytes.
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        if len(head) > _MAX_HEAD:
            raise ProxyError(f"proxy {proxy} sent a reply head longer than {_MAX_HEAD} bytes")
        if head.endswith(b"\r\n\r"):
            want = 1
        elif head.endswith(b"\r\n"):
            want = 2
        elif head.endswith(b"\r"):
            want = 3
        else:
            want = 4
        head += await _recv_exactly(sock, want, proxy, "its reply to CONNECT")
    return bytes(head)
