"""Validate what `connect()` receives, once, at the call.

Everything here is pure: a bad port, host, callback or option raises `TypeError` / `ValueError` naming the
argument and what is accepted, so nothing can fail later inside the retry loop. (Raw asyncio turns
`port=None` into port 0 and `True` into port 1, and fails on -1 only when it connects.)
"""

from __future__ import annotations

import difflib
import functools
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from ._backoff import Backoff, _check_seconds

__all__ = [
    "CONNECT_OPTIONS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_WRITE_BUFFER",
    "ConnectOptions",
    "Endpoint",
    "Options",
    "Resolver",
    "check_endpoint",
    "check_options",
    "check_timeout",
]

#: Seconds allowed for one attempt (resolution, TCP connect and TLS handshake together). The original
#: had no connect timeout at all; gRPC uses at least 20 s, redis-py 5 s. We pick 10 s: long enough for a
#: loaded server across a WAN, short enough that a blackholed SYN does not stall recovery for minutes.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0

#: TCP keepalive (idle seconds, probe interval seconds, probe count): a silent dead peer is found after
#: about idle + interval * count = 30 s. Linux's own default (7200 s idle) finds it after two hours.
DEFAULT_KEEPALIVE: Final = (15.0, 5.0, 3)

#: Bytes the transport's send buffer may hold before `write()` raises `BufferFull`. asyncio's own
#: high-water mark (64 KiB) only pauses and tells; this bound keeps a peer that never reads from growing
#: the client's memory without limit, while leaving room for bursts far above the high-water mark.
DEFAULT_MAX_WRITE_BUFFER: Final = 32 * 1024 * 1024

#: A resolver hook: `(host, port)` to the address to connect to, sync or async. It runs on every
#: attempt; what it raises is a failed attempt (raise `socket.gaierror` for "does not resolve").
Resolver = Callable[[str, int], "str | Awaitable[str]"]


class ConnectOptions(TypedDict, total=False):
    """The options `connect()` and `Pool.add_connection()` accept; see `docs/options.md`."""

    connect_timeout: float | None
    backoff: Backoff
    max_attempts: int | None
    give_up_after: float | None
    on_give_up: Callable[[BaseException], object] | None
    on_error: Callable[[BaseException], object] | None
    nodelay: bool
    queue_while_down: int
    keepalive: tuple[float, float, int] | None
    user_timeout: float | None
    idle_timeout: float | None
    max_write_buffer: int | None
    resolver: Resolver | None
    ssl: bool | _ssl.SSLContext | None
    server_hostname: str | None
    family: int
    proto: int
    flags: int
    local_addr: tuple[str, int] | None
    happy_eyeballs_delay: float | None
    interleave: int | None
    ssl_handshake_timeout: float | None
    ssl_shutdown_timeout: float | None


#: Every option name, for the error message of a misspelt one.
CONNECT_OPTIONS: Final[frozenset[str]] = frozenset(ConnectOptions.__annotations__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a managed connection goes: a port and a host name or address."""

    port: int
    host: str

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Validated options: connman's own, and those passed through to `loop.create_connection`."""

    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int | None = None
    give_up_after: float | None = None
    on_give_up: Callable[[BaseException], object] | None = None
    on_error: Callable[[BaseException], object] | None = None
    nodelay: bool = True
    queue_while_down: int = 0
    keepalive: tuple[float, float, int] | None = DEFAULT_KEEPALIVE
    user_timeout: float | None = None
    idle_timeout: float | None = None
    max_write_buffer: int | None = DEFAULT_MAX_WRITE_BUFFER
    resolver: Resolver | None = None
    create_connection: Mapping[str, Any] = field(default_factory=dict)


#: The options of a `connect()` that passes none (immutable, so one instance serves every connection).
DEFAULT_OPTIONS: Final = Options()


def check_endpoint(port: object, host: object) -> Endpoint:
    """Validate a port and a host; return them as an `Endpoint`."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int in 1..65535, not {port!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, not {port!r}")
    if not isinstance(host, str):
        raise TypeError(f"host must be a str (a name or an address), not {host!r}")
    if not host or host != host.strip() or len(host) > 253:
        raise ValueError(f"host must be a non-empty name or address of at most 253 characters, not {host!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # "[::1]" is a common way to write an IPv6 address
    return _endpoint(int(port), host)


@functools.lru_cache(maxsize=1024)
def _endpoint(port: int, host: str) -> Endpoint:
    # Endpoints are immutable: a pool of 10,000 connections to one server shares one.
    return Endpoint(port, host)


def check_timeout(value: object) -> None:
    """Validate the `timeout` argument of a waiting call: None (no limit) or seconds >= 0."""
    if value is not None:
        _check_seconds("timeout", value, positive=False)


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {value!r}")


def _check_optional_seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    return _check_seconds(name, value, positive=True)


def _check_int(name: str, value: object, minimum: int, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        accepted = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be {accepted}, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value!r}")
    return value


def _unknown_option(name: str) -> TypeError:
    close = difflib.get_close_matches(name, sorted(CONNECT_OPTIONS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; accepted: {', '.join(sorted(CONNECT_OPTIONS))}"
    return TypeError(f"unknown option {name!r}{hint}")


def check_options(options: Mapping[str, object]) -> Options:
    """Validate keyword options of `connect()`; return them split into ours and asyncio's."""
    if not options:
        return DEFAULT_OPTIONS  # the common case of fan-outs: nothing to check, nothing to allocate
    for name in options:
        if name not in CONNECT_OPTIONS:
            raise _unknown_option(name)
    get = options.get

    connect_timeout = _check_optional_seconds(
        "connect_timeout", get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    )
    backoff = get("backoff", None)
    if backoff is None:
        backoff = Backoff()
    elif not isinstance(backoff, Backoff):
        raise TypeError(f"backoff must be a connman.Backoff, not {backoff!r}")
    max_attempts = _check_int("max_attempts", get("max_attempts"), 1, allow_none=True)
    give_up_after = _check_optional_seconds("give_up_after", get("give_up_after"))
    on_give_up = get("on_give_up")
    _check_callable("on_give_up", on_give_up)
    on_error = get("on_error")
    _check_callable("on_error", on_error)
    nodelay = get("nodelay", True)
    if not isinstance(nodelay, bool):
        raise TypeError(f"nodelay must be a bool, not {nodelay!r}")
    queue_while_down = _check_int("queue_while_down", get("queue_while_down", 0), 0)
    assert queue_while_down is not None
    keepalive = get("keepalive", DEFAULT_KEEPALIVE)
    if keepalive is not None:
        if not isinstance(keepalive, tuple) or len(keepalive) != 3:
            raise TypeError(
                f"keepalive must be (idle seconds, interval seconds, probe count) or None, not {keepalive!r}"
            )
        idle, interval, count = keepalive
        keepalive = (
            _check_seconds("keepalive idle", idle, positive=True),
            _check_seconds("keepalive interval", interval, positive=True),
            _check_int("keepalive count", count, 1),
        )
    user_timeout = _check_optional_seconds("user_timeout", get("user_timeout"))
    idle_timeout = _check_optional_seconds("idle_timeout", get("idle_timeout"))
    max_write_buffer = _check_int(
        "max_write_buffer", get("max_write_buffer", DEFAULT_MAX_WRITE_BUFFER), 1, allow_none=True
    )
    resolver = get("resolver")
    _check_callable("resolver", resolver)

    # What asyncio would only reject at connect time, inside the retry loop, we reject here.
    passthrough: dict[str, Any] = {}
    tls = get("ssl")
    if tls is not None and not isinstance(tls, (bool, _ssl.SSLContext)):
        raise TypeError(f"ssl must be None, a bool or an ssl.SSLContext, not {tls!r}")
    if tls:
        passthrough["ssl"] = tls
    server_hostname = get("server_hostname")
    if server_hostname is not None:
        if not isinstance(server_hostname, str):
            raise TypeError(f"server_hostname must be a str or None, not {server_hostname!r}")
        passthrough["server_hostname"] = server_hostname
    for name in ("ssl_handshake_timeout", "ssl_shutdown_timeout", "happy_eyeballs_delay"):
        seconds = _check_optional_seconds(name, get(name))
        if seconds is not None:
            passthrough[name] = seconds
    for name in ("server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout"):
        if name in passthrough and not tls:
            raise ValueError(f"{name} is only meaningful with ssl; pass ssl=True or an SSLContext")
    family = get("family", 0)
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(f"family must be 0, socket.AF_INET or socket.AF_INET6, not {family!r}")
    if family not in (0, socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"family must be 0, socket.AF_INET or socket.AF_INET6, not {family!r}")
    for name in ("family", "proto", "flags"):
        value = _check_int(name, get(name, 0), 0)
        if value:
            passthrough[name] = value
    interleave = _check_int("interleave", get("interleave"), 0, allow_none=True)
    if interleave is not None:
        passthrough["interleave"] = interleave
    local_addr = get("local_addr")
    if local_addr is not None:
        if (
            not isinstance(local_addr, tuple)
            or len(local_addr) != 2
            or not isinstance(local_addr[0], str)
            or isinstance(local_addr[1], bool)
            or not isinstance(local_addr[1], int)
            or not 0 <= local_addr[1] <= 65535
        ):
            raise TypeError(f"local_addr must be a (host, port) tuple or None, not {local_addr!r}")
        passthrough["local_addr"] = local_addr
    return Options(
        connect_timeout=connect_timeout,
        backoff=backoff,
        max_attempts=max_attempts,
        give_up_after=give_up_after,
        on_give_up=on_give_up,  # type: ignore[arg-type]
        on_error=on_error,  # type: ignore[arg-type]
        nodelay=nodelay,
        queue_while_down=queue_while_down,
        keepalive=keepalive,  # type: ignore[arg-type]
        user_timeout=user_timeout,
        idle_timeout=idle_timeout,
        max_write_buffer=max_write_buffer,
        resolver=resolver,  # type: ignore[arg-type]
        create_connection=passthrough,
    )
