"""Where a managed connection goes besides one `host:port`: a Unix socket path, or a failover list.

Pure: the checks run at the call (a bad path or list is a `TypeError`/`ValueError` there, never a
retry loop that cannot succeed), and `Route` is the failover policy, decided without IO.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ._options import ADDRESS_OPTIONS, Endpoint, check_endpoint

__all__ = [
    "TCP_ONLY",
    "Route",
    "UnixEndpoint",
    "check_alternates",
    "check_unix_options",
    "check_unix_path",
]

#: sun_path holds 108 bytes on Linux, one of them the terminating NUL.
_MAX_PATH_BYTES: Final = 107


@dataclass(frozen=True, slots=True)
class UnixEndpoint:
    """Where a Unix domain socket connection goes: an absolute path (or a Linux abstract name, "\\0...")."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


def check_unix_path(path: object) -> UnixEndpoint:
    """Validate the `path` of `connect_unix()`; return it as a `UnixEndpoint`."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming a Unix socket, not {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"path must be a str or os.PathLike of str, not {path!r}")
    if not text:
        raise ValueError("path must name a Unix socket, not ''")
    if not text.startswith("\0") and not os.path.isabs(text):
        # A relative path would be looked up from whatever directory the process is in at each
        # attempt, which is rarely what the caller had in mind: say which one it would be.
        raise ValueError(
            f"path must be absolute, not {text!r}: it would be relative to the current directory "
            f"{os.getcwd()!r}, on every attempt; pass os.path.abspath({text!r}) if that is meant"
        )
    if len(os.fsencode(text)) > _MAX_PATH_BYTES:
        raise ValueError(
            f"path must be at most {_MAX_PATH_BYTES} bytes (the kernel's limit for a Unix socket), "
            f"not {len(os.fsencode(text))}: {text!r}"
        )
    return UnixEndpoint(text)


#: Options that mean something for TCP only, refused by `connect_unix()`.
TCP_ONLY: Final = ("nodelay", "keepalive", "user_timeout", "dialer", "alternates", *ADDRESS_OPTIONS)


def check_unix_options(options: Mapping[str, object]) -> None:
    """Refuse the TCP-only options (given at all, whatever their value) for a Unix socket."""
    for name in options:
        if name in TCP_ONLY:
            raise ValueError(
                f"{name} is a TCP option; a Unix socket connection (connect_unix) does not take it"
            )
    if "ssl" in options and options["ssl"] not in (None, False) and "server_hostname" not in options:
        raise ValueError(
            "ssl over a Unix socket needs server_hostname: the name to check the certificate against"
        )


_ALTERNATES_ACCEPTED: Final = "a list of (port, host) pairs"


def check_alternates(value: object) -> tuple[Endpoint, ...]:
    """Validate the `alternates` option: each entry a `(port, host)` pair, checked as `connect()`'s."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"alternates must be {_ALTERNATES_ACCEPTED}, not {value!r}")
    endpoints = []
    for index, entry in enumerate(value):
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2:
            raise TypeError(
                f"alternates must be {_ALTERNATES_ACCEPTED}, not {value!r}: entry {index} is {entry!r}"
            )
        port, host = entry
        try:
            endpoints.append(check_endpoint(port, host))
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"alternates must be {_ALTERNATES_ACCEPTED}, not {value!r}: entry {index}: {exc}"
            ) from None
    return tuple(endpoints)


class Route:
    """The failover policy over a connection's endpoints: the first, then its `alternates`.

    Each failed attempt moves on to the next endpoint (wrapping around); a success stays, so after a
    loss the next attempt starts with the endpoint that last worked.
    """

    __slots__ = ("_endpoints", "_index")

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        if not endpoints:
            raise ValueError("a route needs at least one endpoint")
        self._endpoints = tuple(endpoints)
        self._index = 0

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint, the first one first."""
        return self._endpoints

    @property
    def current(self) -> Endpoint:
        """The endpoint the next (or current) attempt goes to."""
        return self._endpoints[self._index]

    def failed(self) -> Endpoint:
        """An attempt to `current` failed: move on; return the new current endpoint."""
        self._index = (self._index + 1) % len(self._endpoints)
        return self.current
