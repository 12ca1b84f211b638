"""What the commands share: parsing `HOST:PORT`, a status table of connections, and a live view that
redraws it in place on a terminal (ANSI escapes only: no curses, no dependency)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any, TextIO

import connman
from connman._endpoints import UnixEndpoint, check_unix_path
from connman._options import Endpoint, check_endpoint

__all__ = ["LiveView", "connect_to", "endpoint", "format_error", "status_table"]


def endpoint(text: str) -> Endpoint | UnixEndpoint:
    """argparse type for `HOST:PORT` (`[::1]:PORT` for IPv6 addresses), or `unix:/path`."""
    if text.startswith("unix:"):
        try:
            return check_unix_path(text.removeprefix("unix:"))
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (e.g. 127.0.0.1:11211 or [::1]:6379), not {text!r}"
        )
    if ":" in host and not host.startswith("["):
        if _is_ipv6(host):
            # `::1:6379` could be port 6379 of ::1 or the address ::1:6379 with its port missing.
            raise argparse.ArgumentTypeError(
                f"{text!r} is ambiguous: write an IPv6 address in brackets, [{host}]:{port}"
            )
        if _is_ipv6(text):  # `::1`: an address, and no port
            raise argparse.ArgumentTypeError(
                f"{text!r} has no port: write an IPv6 address in brackets, then the port: [{text}]:PORT"
            )
        # `http://h:80`, `tcp:h:80`: no form of an endpoint (brackets would not make it one).
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (e.g. 127.0.0.1:11211 or [::1]:6379), not {text!r}"
        )
    try:
        return check_endpoint(int(port), host)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def connect_to(target: Endpoint | UnixEndpoint, **kwargs: Any) -> connman.Connection:
    """A managed connection to `target`, TCP or Unix socket, with `connect()`'s keyword arguments."""
    if isinstance(target, UnixEndpoint):
        return connman.connect_unix(target.path, **kwargs)
    return connman.connect(target.port, target.host, **kwargs)


def format_error(conn: connman.Connection) -> str:
    """The last cause and error of `conn`, short enough for a table cell."""
    cause, error = conn.last_cause, conn.last_error
    if cause is None:
        return "-"
    if error is None:
        return cause.value
    text = str(error) or type(error).__name__
    return f"{cause.value}: {text[:40]}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.1f} s"


HEADER = ("connection", "state", "for", "attempts", "resets", "down", "connect", "in", "out", "last error")


def status_table(named: Sequence[tuple[str, connman.Connection]]) -> str:
    """A fixed-width table, one row per connection: its state and for how long (the uptime when
    connected), attempts made, resets seen, how long its last outage lasted, how long its last connect
    took, bytes in and out, and why it last went down."""
    rows = [HEADER]
    for name, conn in named:
        stats = conn.stats
        rows.append(
            (
                name,
                stats.state.value,
                _seconds(stats.in_state_for),
                str(stats.connects + stats.failed_attempts),
                str(stats.resets),
                _seconds(stats.last_outage),
                _seconds(stats.connect_latency),
                str(stats.bytes_in),
                str(stats.bytes_out),
                format_error(conn),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


class LiveView:
    """On a terminal: the table redrawn in place, with the latest events under it. Elsewhere: the
    events as plain log lines, and the table only when asked (`print_table`)."""

    def __init__(self, out: TextIO | None = None, *, events: int = 8) -> None:
        self.out = out if out is not None else sys.stdout
        self.live = self.out.isatty()
        self.events: deque[str] = deque(maxlen=events)
        self._drawn = 0

    def event(self, line: str) -> None:
        if self.live:
            self.events.append(line)
        else:
            print(line, file=self.out, flush=True)

    def draw(self, named: Sequence[tuple[str, connman.Connection]]) -> None:
        if not self.live:
            return
        text = status_table(named) + "\n\n" + "\n".join(self.events)
        lines = text.count("\n") + 1
        # Up to the first line drawn last time, clear to the end of the screen, draw again.
        prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.out.write(prefix + text + "\n")
        self.out.flush()
        self._drawn = lines

    def print_table(self, named: Sequence[tuple[str, connman.Connection]]) -> None:
        print(status_table(named), file=self.out, flush=True)
