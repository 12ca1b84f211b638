"""Validate what `connect()` receives, once, at the call; and declare every option once.

Everything here is pure: a bad port, host, callback or option raises `TypeError` / `ValueError` naming the
argument and what is accepted, so nothing can fail later inside the retry loop. (Raw asyncio turns
`port=None` into port 0 and `True` into port 1, and fails on -1 only when it connects.)

Each option is declared once, as a field of `ConnectOptions`: its type, and in `Annotated` an `Option`
giving its default, unit, check and a one-line doc. Derived from those declarations: `OPTIONS` (read by
the validator `check_options()`), `DEFAULT_OPTIONS`, the help appended to `connect()`'s docstring
(`options_help()`) and the table in `docs/options.md` (`options_table()`). `Options`, the checked result,
must stay a static class for mypy and for cheap attribute reads; a test fails if it and the declarations
disagree.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import ipaddress
import re
import socket
import ssl as _ssl
import textwrap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType, NoneType
from typing import Annotated, Any, Final, TypedDict, TypeVar, get_args, get_type_hints

from ._backoff import Backoff, _check_seconds
from ._causes import Cause
from ._checks import (
    TLS,
    AsyncFunction,
    Check,
    Count,
    EndpointList,
    Flag,
    Function,
    Instance,
    Keepalive,
    LocalAddress,
    OneOf,
    Seconds,
    Text,
)
from ._heartbeat import Heartbeat

__all__ = [
    "ADDRESS_OPTIONS",
    "CALLBACKS",
    "CONNECT_OPTIONS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_WRITE_BUFFER",
    "DEFAULT_OPTIONS",
    "OPTIONS",
    "ConnectOptions",
    "Dialer",
    "Endpoint",
    "Option",
    "Options",
    "Resolver",
    "RetryIf",
    "check_endpoint",
    "check_options",
    "check_timeout",
    "document_options",
    "options_help",
    "options_table",
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

#: Asked after each failed attempt and each loss: `(error, cause) -> retry?`; see `retry_if`.
RetryIf = Callable[[BaseException | None, Cause], bool]

#: A resolver hook: `(host, port)` to the address, or the list of addresses, to connect to, sync or
#: async. It runs on every attempt; what it raises is a failed attempt (raise `socket.gaierror` for
#: "does not resolve"). A connection tries a list's addresses in order; `Pool.discover()` keeps a
#: member per address.
Resolver = Callable[[str, int], "str | Sequence[str] | Awaitable[str | Sequence[str]]"]

Dialer = Callable[[str, int], Awaitable[socket.socket]]
"""A dialer: an async callable `(host, port)` to a connected `socket.socket` (through a proxy, say;
see `connman.dialers`). connman runs TLS on it, if asked, and owns it from then on."""


# ---- the declarations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """How one option of `connect()` is checked and documented; its name and type are the field's."""

    default: object
    check: Check
    #: What the option is, one line; the docs' prose (docs/options.md) says why.
    doc: str
    #: The unit of a number: "seconds", "bytes", "attempts"; "" when there is none.
    unit: str = ""
    #: What None means, for an option that accepts it.
    none: str = ""
    #: Passed on to `loop.create_connection` (in `Options.create_connection`) rather than used by us.
    passthrough: bool = False
    #: Meaningless without TLS: refused unless `ssl` is given too.
    needs_tls: bool = False
    #: Filled in from the declaration by `_declared()`.
    name: str = ""
    kind: object = None

    @property
    def default_text(self) -> str:
        """The default, as the docs and the help show it: "33554432 (32 MiB)"."""
        if self.unit == "bytes" and isinstance(self.default, int) and self.default >= 1 << 20:
            return f"{self.default} ({self.default >> 20} MiB)"
        return repr(self.default)


class ConnectOptions(TypedDict, total=False):
    """The options `connect()` and `Pool.add_connection()` accept; see `docs/options.md`.

    This is the declaration of every option: its type, and in `Annotated` its default, unit, check and
    doc. Everything else (validation, defaults, help text, the docs table) is derived from it.
    """

    connect_timeout: Annotated[
        float | None,
        Option(
            default=DEFAULT_CONNECT_TIMEOUT,
            unit="seconds",
            check=Seconds(),
            doc="Time allowed for one attempt: name resolution, TCP connect and TLS handshake together.",
            none="no timeout (an unanswered SYN then waits for the kernel, about 2 minutes on Linux)",
        ),
    ]
    backoff: Annotated[
        Backoff,
        Option(
            default=Backoff(),
            check=Instance(kind=Backoff, label="a connman.Backoff"),
            doc="The retry policy: how long to wait before each attempt, and when the count resets.",
        ),
    ]
    max_attempts: Annotated[
        int | None,
        Option(
            default=None,
            unit="attempts",
            check=Count(minimum=1),
            doc="Consecutive attempts that never connected before giving up (state FAILED).",
            none="retry forever, as the original did",
        ),
    ]
    give_up_after: Annotated[
        float | None,
        Option(
            default=None,
            unit="seconds",
            check=Seconds(),
            doc="How long the connection may stay down (from the loss, or the first failed attempt) "
            "before giving up; no attempt starts after that.",
            none="no deadline",
        ),
    ]
    retry_if: Annotated[
        RetryIf | None,
        Option(
            default=None,
            check=Function(),
            doc="`fn(error, cause) -> bool`, asked after each failed attempt and each loss (`error` "
            "None for a clean EOF); False gives up at once (state FAILED, `on_give_up` called, "
            '`GaveUp.reason == "retry_if"`). What it raises is reported and counts as True.',
            none="always retry, within `max_attempts` and `give_up_after`",
        ),
    ]
    on_give_up: Annotated[
        Callable[[BaseException], object] | None,
        Option(
            default=None,
            check=Function(),
            doc="Called with the last error when `max_attempts` or `give_up_after` is reached, or "
            "`retry_if` says no.",
            none="nothing is called (the connection's state is FAILED either way)",
        ),
    ]
    on_error: Annotated[
        Callable[[BaseException], object] | None,
        Option(
            default=None,
            check=Function(),
            doc="Called with the exception when a callback raises; it is logged at ERROR either way.",
            none="the exception is only logged",
        ),
    ]
    nodelay: Annotated[
        bool,
        Option(
            default=True,
            check=Flag(),
            doc="`TCP_NODELAY` (asyncio's default); False turns Nagle's algorithm back on.",
        ),
    ]
    queue_while_down: Annotated[
        int,
        Option(
            default=0,
            unit="bytes",
            check=Count(minimum=0),
            doc="How much `write()` may queue while down, flushed first on reconnect; "
            "0 makes `write()` raise `NotConnected` while down.",
        ),
    ]
    keepalive: Annotated[
        tuple[float, float, int] | None,
        Option(
            default=DEFAULT_KEEPALIVE,
            unit="seconds, seconds, probes",
            check=Keepalive(),
            doc="TCP keepalive `(idle, interval, count)`, in whole seconds: a vanished idle peer is "
            "found after about idle + interval × count.",
            none="no keepalive",
        ),
    ]
    user_timeout: Annotated[
        float | None,
        Option(
            default=None,
            unit="seconds",
            check=Seconds(),
            doc="`TCP_USER_TIMEOUT` (Linux): how long written data may stay unacknowledged before "
            "the kernel drops the connection.",
            none="the kernel's own limit (on Linux about 15 minutes of retransmissions)",
        ),
    ]
    idle_timeout: Annotated[
        float | None,
        Option(
            default=None,
            unit="seconds",
            check=Seconds(),
            doc="Time without a received byte after which the connection is presumed dead and "
            "re-established (noticed between 1× and 2× this). Time while connman pauses reading "
            "(an async callback running) does not count.",
            none="silence is never taken for a dead peer",
        ),
    ]
    heartbeat: Annotated[
        Heartbeat | None,
        Option(
            default=None,
            check=Instance(kind=Heartbeat, label="a connman.Heartbeat"),
            doc="`Heartbeat(interval, timeout, send)`: after `interval` seconds with nothing received, "
            "ping (`send(conn)`, or write `send` if bytes); if nothing at all arrives within `timeout` "
            "after that, the connection is lost with `Cause.HALF_OPEN`. Any byte counts as the reply.",
            none="no heartbeat",
        ),
    ]
    max_write_buffer: Annotated[
        int | None,
        Option(
            default=DEFAULT_MAX_WRITE_BUFFER,
            unit="bytes",
            check=Count(minimum=1),
            doc="Bytes not yet handed to the kernel (the transport's buffer, writes from other "
            "threads not flushed yet, and the write itself), from any thread; a `write()` that would "
            "go past it raises `BufferFull` and sends nothing.",
            none="no limit",
        ),
    ]
    resolver: Annotated[
        Resolver | None,
        Option(
            default=None,
            check=Function(),
            doc="`fn(host, port) -> address or list of addresses`, sync or async, called on every "
            "attempt (a list is tried in order); what it raises is a failed attempt.",
            none="the loop resolves `host` (getaddrinfo)",
        ),
    ]
    dialer: Annotated[
        Dialer | None,
        Option(
            default=None,
            check=AsyncFunction(),
            doc="`async fn(host, port) -> connected socket`, called for every attempt within "
            "`connect_timeout` (a proxy: `connman.dialers`); TLS then runs on it, checked against `host`.",
            none="connman connects to `host` itself",
        ),
    ]
    alternates: Annotated[
        Sequence[tuple[int, str]],
        Option(
            default=(),
            check=EndpointList(),
            doc="More `(port, host)` endpoints to fail over to: each failed attempt moves to the next; "
            "after a loss, the next attempt starts with the one that last worked.",
        ),
    ]
    ssl: Annotated[
        bool | _ssl.SSLContext | None,
        Option(
            default=None,
            passthrough=True,
            check=TLS(),
            doc="TLS: True for a default context, or an `ssl.SSLContext`.",
            none="plain TCP (as False)",
        ),
    ]
    server_hostname: Annotated[
        str | None,
        Option(
            default=None,
            passthrough=True,
            needs_tls=True,
            check=Text(),
            doc="The name the server's certificate is checked against (needs `ssl`).",
            none="`host` (also when a `resolver` returns an address)",
        ),
    ]
    family: Annotated[
        int,
        Option(
            default=0,
            passthrough=True,
            check=OneOf(
                values={0: "0", socket.AF_INET: "socket.AF_INET", socket.AF_INET6: "socket.AF_INET6"}
            ),
            doc="The address family to resolve `host` to; 0 takes either.",
        ),
    ]
    proto: Annotated[
        int,
        Option(
            default=0,
            passthrough=True,
            check=Count(minimum=0),
            doc="The protocol number given to getaddrinfo; 0 lets it choose.",
        ),
    ]
    flags: Annotated[
        int,
        Option(
            default=0,
            passthrough=True,
            check=Count(minimum=0),
            doc="The flags given to getaddrinfo (`socket.AI_*`).",
        ),
    ]
    local_addr: Annotated[
        tuple[str, int] | None,
        Option(
            default=None,
            passthrough=True,
            check=LocalAddress(),
            doc="`(host, port)` to bind the local end to; port 0 lets the kernel pick.",
            none="the kernel picks both",
        ),
    ]
    happy_eyeballs_delay: Annotated[
        float | None,
        Option(
            default=None,
            unit="seconds",
            passthrough=True,
            check=Seconds(),
            doc="Happy Eyeballs (RFC 8305): how long an address is tried before the next one is "
            "tried alongside it.",
            none="addresses are tried one after another",
        ),
    ]
    interleave: Annotated[
        int | None,
        Option(
            default=None,
            passthrough=True,
            check=Count(minimum=0),
            doc="Reorders addresses by family (RFC 8305's First Address Family Count); 0 keeps "
            "getaddrinfo's order.",
            none="1 with `happy_eyeballs_delay`, 0 without (asyncio's choice)",
        ),
    ]
    ssl_handshake_timeout: Annotated[
        float | None,
        Option(
            default=None,
            unit="seconds",
            passthrough=True,
            needs_tls=True,
            check=Seconds(),
            doc="Time allowed for the TLS handshake (within `connect_timeout`).",
            none="asyncio's default, 60 seconds",
        ),
    ]
    ssl_shutdown_timeout: Annotated[
        float | None,
        Option(
            default=None,
            unit="seconds",
            passthrough=True,
            needs_tls=True,
            check=Seconds(),
            doc="Time allowed for the TLS shutdown when the connection closes.",
            none="asyncio's default, 30 seconds",
        ),
    ]


def _declared() -> dict[str, Option]:
    """Each field of `ConnectOptions` as its `Option`, with its name, type and `optional` filled in."""
    declared = {}
    for name, hint in get_type_hints(ConnectOptions, include_extras=True).items():
        args = get_args(hint)  # Annotated[kind, Option(...)]
        if len(args) != 2 or not isinstance(args[1], Option):
            raise TypeError(f"ConnectOptions.{name} must be declared as Annotated[type, Option(...)]")
        kind, option = args
        optional = NoneType in get_args(kind)
        declared[name] = replace(option, name=name, kind=kind, check=replace(option.check, optional=optional))
    return declared


#: Every option, by name, in declaration order.
OPTIONS: Final[Mapping[str, Option]] = MappingProxyType(_declared())

#: Every option name, for the error message of a misspelt one.
CONNECT_OPTIONS: Final[frozenset[str]] = frozenset(OPTIONS)

#: The keyword parameters of `connect()` besides the options: a misspelt one (`on_dta=`) lands in
#: `**options`, so the suggestion for an unknown option must know them too.
CALLBACKS: Final = ("on_connect", "on_data", "on_reset", "handler")


# ---- the checked result ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Validated options: connman's own, and those passed through to `loop.create_connection`.

    The fields are the options of `ConnectOptions` that are not passed through, with their declared
    types (tests/core/test_options.py fails if the two disagree); the defaults are the declarations',
    so build one with `check_options()`, or `dataclasses.replace(DEFAULT_OPTIONS, ...)`. Attributes are
    slots: the data path reads them.
    """

    connect_timeout: float | None
    backoff: Backoff
    max_attempts: int | None
    give_up_after: float | None
    retry_if: RetryIf | None
    on_give_up: Callable[[BaseException], object] | None
    on_error: Callable[[BaseException], object] | None
    nodelay: bool
    queue_while_down: int
    keepalive: tuple[float, float, int] | None
    user_timeout: float | None
    idle_timeout: float | None
    heartbeat: Heartbeat | None
    max_write_buffer: int | None
    resolver: Resolver | None
    dialer: Dialer | None
    alternates: Sequence[tuple[int, str]]
    #: The pass-through options given (ssl, family, ...), for `loop.create_connection(**...)`; one left
    #: at its default is left out, so asyncio applies its own.
    create_connection: Mapping[str, Any]


_OWN_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {name: option.default for name, option in OPTIONS.items() if not option.passthrough}
)

#: The options of a `connect()` that passes none (immutable, so one instance serves every connection).
DEFAULT_OPTIONS: Final = Options(**_OWN_DEFAULTS, create_connection=MappingProxyType({}))


def check_options(options: Mapping[str, object]) -> Options:
    """Validate keyword options of `connect()`; return them split into ours and asyncio's."""
    if not options:
        return DEFAULT_OPTIONS  # the common case of fan-outs: nothing to check, nothing to allocate
    ours: dict[str, Any] = dict(_OWN_DEFAULTS)
    passthrough: dict[str, Any] = {}
    for name, value in options.items():
        option = OPTIONS.get(name)
        if option is None:
            raise _unknown_option(name)
        checked = option.check(name, value)
        if not option.passthrough:
            ours[name] = checked
        elif checked != option.default:
            passthrough[name] = checked
    # What asyncio would only reject at connect time, inside the retry loop, we reject here.
    if ours["dialer"] is not None:
        for name in ADDRESS_OPTIONS:
            if name in options:
                raise ValueError(f"{name} has no effect with dialer=: the dialer makes the socket")
    if "ssl" not in passthrough:
        for name in passthrough:
            if OPTIONS[name].needs_tls:
                raise ValueError(f"{name} is only meaningful with ssl; pass ssl=True or an SSLContext")
    return Options(**ours, create_connection=MappingProxyType(passthrough))


#: What only applies when connman makes the socket itself (refused next to a dialer).
ADDRESS_OPTIONS: Final = (
    "resolver",
    "family",
    "proto",
    "flags",
    "local_addr",
    "happy_eyeballs_delay",
    "interleave",
)

#: Arguments of `loop.create_connection` that connman cannot pass on, and why.
_REFUSED: Final = {"sock": "connman opens a new socket for every attempt, so it cannot use yours"}


def _snake_case(name: str) -> str:
    """`onData` -> `on_data`: the node original's names, and camelCase habits, in Python's spelling."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _unknown_option(name: str) -> TypeError:
    if name in _REFUSED:
        return TypeError(f"unknown option {name!r}: {_REFUSED[name]}")
    known = sorted([*CALLBACKS, *OPTIONS])
    snake = _snake_case(name)
    close = [snake] if snake in known else difflib.get_close_matches(snake, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"accepted: {', '.join(known)}"
    return TypeError(f"unknown option {name!r}; {hint}")


# ---- endpoints and timeouts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a managed connection goes: a port and a host name or address."""

    port: int
    host: str

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_HOST_ACCEPTED: Final = "a name, an IPv4 address or an IPv6 address (optionally in brackets)"


def check_endpoint(port: object, host: object) -> Endpoint:
    """Validate a port and a host; return them as an `Endpoint` (an IPv6 address without brackets)."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int in 1..65535, not {port!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, not {port!r}")
    if not isinstance(host, str):
        raise TypeError(f"host must be a str ({_HOST_ACCEPTED}), not {host!r}")
    if not host or host != host.strip() or len(host) > 253:
        raise ValueError(f"host must be a non-empty name or address of at most 253 characters, not {host!r}")
    return _endpoint(int(port), host)


@functools.lru_cache(maxsize=1024)
def _endpoint(port: int, host: str) -> Endpoint:
    # Endpoints are immutable: a pool of 10,000 connections to one server shares one, and checks its
    # host once.
    return Endpoint(port, _check_host(host))


def _check_host(host: str) -> str:
    """The host to connect to, brackets dropped; ValueError for what no resolver could ever resolve
    (which would otherwise be retried forever as a DNS failure)."""
    if host.startswith("["):
        inner, bracket, after = host[1:].partition("]")
        if not bracket or "[" in inner or "]" in after:
            raise _bad_host(host, "unbalanced brackets")
        if after:
            port = after.removeprefix(":")
            if after.startswith(":") and port.isdigit():
                raise _bad_host(host, f"pass the port separately: port={int(port)}, host={inner!r}")
            raise _bad_host(host, "nothing may follow the closing bracket")
        if not inner:
            raise _bad_host(host, "empty brackets")
        if not _is_ipv6(inner):
            raise _bad_host(host, "brackets hold an IPv6 address only")
        return inner
    if "[" in host or "]" in host:
        raise _bad_host(host, "unbalanced brackets")
    if ":" in host and not _is_ipv6(host):
        if "://" in host:
            raise _bad_host(host, "a URL: pass its host name alone")
        name, _, port = host.rpartition(":")
        if port.isdigit() and ":" not in name:
            raise _bad_host(host, f"pass the port separately: port={int(port)}, host={name!r}")
        raise _bad_host(host, "a host with ':' must be an IPv6 address")
    return host


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)  # accepts a scope id: "fe80::1%eth0"
    except ValueError:
        return False
    return True


def _bad_host(host: str, why: str) -> ValueError:
    return ValueError(f"host must be {_HOST_ACCEPTED}, not {host!r}; {why}")


def check_timeout(value: object) -> None:
    """Validate the `timeout` argument of a waiting call: None (no limit) or seconds >= 0."""
    if value is not None:
        _check_seconds("timeout", value, positive=False)


# ---- documentation, derived from the declarations ----------------------------------------------------


def _describe(option: Option) -> tuple[str, str]:
    """The option's help entry: its head (`"connect_timeout (seconds, default 10.0)"`) and its text."""
    facts = [option.unit] if option.unit else []
    facts.append(f"default {option.default_text}")
    text = option.doc
    if option.none:
        text += f" None: {option.none}."
    return f"{option.name} ({'; '.join(facts)})", text


def options_help() -> str:
    """The options as a docstring section (`Options:` then one indented entry each), for `help()`.

    Its lines start at column 0: append it to a docstring cleaned with `inspect.cleandoc()` (as
    `document_options()` does), which works whatever indentation the compiler left in the docstring.
    """
    sections = {
        "Options (keyword-only, checked at the call; see docs/options.md)": False,
        "Passed to loop.create_connection": True,
    }
    lines = []
    for title, passthrough in sections.items():
        lines.append(f"{title}:")
        for option in OPTIONS.values():
            if option.passthrough is passthrough:
                head, text = _describe(option)
                lines.append(
                    textwrap.fill(f"{head}: {text}", 96, initial_indent=" " * 4, subsequent_indent=" " * 8)
                )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_F = TypeVar("_F", bound=Callable[..., Any])


def document_options(func: _F) -> _F:
    """Append `options_help()` to `func`'s docstring (a decorator for the functions taking `**options`)."""
    if func.__doc__ is not None:  # None under `python -OO`, which strips docstrings
        func.__doc__ = f"{inspect.cleandoc(func.__doc__)}\n\n{options_help()}"
    return func


def options_table() -> str:
    """The options as Markdown tables, ours then asyncio's, for docs/options.md (a test keeps the page
    in step; `python tests/test_options_doc.py` rewrites it)."""
    sections = {"connman's own": False, "Passed through to `loop.create_connection`": True}
    lines = []
    for title, passthrough in sections.items():
        lines += [f"### {title}", "", "| option | default | unit | accepted | meaning | `None` means |"]
        lines.append("|---|---|---|---|---|---|")
        for option in OPTIONS.values():
            if option.passthrough is passthrough:
                cells = [
                    f"`{option.name}`",
                    f"`{option.default_text}`",
                    option.unit or "-",
                    option.check.accepted.replace(" or None", ", or `None`"),
                    option.doc,
                    option.none or "-",
                ]
                lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)
