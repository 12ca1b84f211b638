"""The checks of `connect()` options: each turns the value a caller gave into the value used, or raises
`TypeError` (a wrong type) / `ValueError` (a value out of range) naming the option and what is accepted.

Pure, and declarative enough that the docs ("accepted" in docs/options.md) and the table tests
(tests/core/test_options.py) are derived from the same objects.
"""

from __future__ import annotations

import inspect
import ssl as _ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._backoff import _check_seconds

__all__ = [
    "TLS",
    "AsyncFunction",
    "Check",
    "Count",
    "EndpointList",
    "Flag",
    "Function",
    "Instance",
    "Keepalive",
    "LocalAddress",
    "OneOf",
    "Seconds",
    "Text",
]


def _alternatives(*choices: str) -> str:
    """`"a, b or c"`."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """What one option accepts. Subclasses say what (`choices`) and check a value that is not None."""

    #: Whether None is accepted (and kept as None). Not written in the declarations: derived from
    #: whether the declared type admits None, so the type and the check cannot disagree.
    optional: bool = False

    @property
    def choices(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def accepted(self) -> str:
        """What is accepted, for error messages and the docs: "an int >= 1 or None"."""
        return _alternatives(*self.choices, *(("None",) if self.optional else ()))

    def __call__(self, name: str, value: object) -> Any:
        if value is None and self.optional:
            return None
        return self.check(name, value)

    def check(self, name: str, value: object) -> Any:
        raise NotImplementedError

    def refuse(self, name: str, value: object) -> TypeError:
        return TypeError(f"{name} must be {self.accepted}, not {value!r}")


class Seconds(Check):
    """A finite number of seconds > 0 (0 would mean "expire at once", never what anyone wants)."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("a number of seconds",)

    def check(self, name: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(name, value)
        return _check_seconds(name, value, positive=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Count(Check):
    """An int >= `minimum` (not a bool: `True` is not a count)."""

    minimum: int

    @property
    def choices(self) -> tuple[str, ...]:
        return (f"an int >= {self.minimum}",)

    def check(self, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse(name, value)
        if value < self.minimum:
            raise ValueError(f"{name} must be >= {self.minimum}, not {value!r}")
        return value


class Flag(Check):
    """A bool, and only a bool: `nodelay=0` is more likely a mistake than a wish."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("a bool",)

    def check(self, name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.refuse(name, value)
        return value


class Function(Check):
    """Anything callable; whether it is sync or async is decided when it is called."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("callable",)

    def check(self, name: str, value: object) -> object:
        if not callable(value):
            raise self.refuse(name, value)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Instance(Check):
    """An instance of `kind`, described as `label`."""

    kind: type
    label: str

    @property
    def choices(self) -> tuple[str, ...]:
        return (self.label,)

    def check(self, name: str, value: object) -> object:
        if not isinstance(value, self.kind):
            raise self.refuse(name, value)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class OneOf(Check):
    """One of a few ints, each described by a label (`socket.AF_INET`)."""

    values: Mapping[int, str]

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.values.values())

    def check(self, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse(name, value)
        if value not in self.values:
            raise ValueError(f"{name} must be {self.accepted}, not {value!r}")
        return value


class TLS(Check):
    """`ssl=`: True (a default context) or an `ssl.SSLContext`; False is kept as None (no TLS)."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("a bool", "an ssl.SSLContext")

    def check(self, name: str, value: object) -> bool | _ssl.SSLContext | None:
        if not isinstance(value, (bool, _ssl.SSLContext)):
            raise self.refuse(name, value)
        # False means what None means; keeping it would put "ssl" in create_connection's arguments.
        return value or None


class Text(Check):
    """A str."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("a str",)

    def check(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.refuse(name, value)
        return value


class Keepalive(Check):
    """`(idle seconds, interval seconds, probe count)`, all > 0."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("(idle seconds, interval seconds, probe count)",)

    def check(self, name: str, value: object) -> tuple[float, float, int]:
        if not isinstance(value, tuple) or len(value) != 3:
            raise self.refuse(name, value)
        idle, interval, count = value
        checked = (
            _check_seconds(f"{name} idle", idle, positive=True),
            _check_seconds(f"{name} interval", interval, positive=True),
            Count(minimum=1).check(f"{name} count", count),
        )
        # Linux's limits (TCP_KEEPIDLE and TCP_KEEPINTVL <= 32767 s, TCP_KEEPCNT <= 127): past them the
        # kernel refuses the option at every connect.
        if checked[0] > 32767 or checked[1] > 32767 or checked[2] > 127:
            raise ValueError(
                f"{name} must be (idle <= 32767 s, interval <= 32767 s, count <= 127), not {value!r}"
            )
        return checked


class LocalAddress(Check):
    """`(host, port)` to bind to; port 0 lets the kernel pick."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("a (host, port) tuple",)

    def check(self, name: str, value: object) -> tuple[str, int]:
        if not isinstance(value, tuple) or len(value) != 2 or not isinstance(value[0], str):
            raise self.refuse(name, value)
        host, port = value
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"{name} port must be an int in 0..65535, not {port!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"{name} port must be in 0..65535, not {port!r}")
        return (host, port)


class AsyncFunction(Check):
    """An async callable: an `async def` function, or an object whose `__call__` is one."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("an async callable",)

    def check(self, name: str, value: object) -> object:
        if not callable(value):
            raise self.refuse(name, value)
        if not (inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(type(value).__call__)):
            raise TypeError(
                f"{name} must be {self.accepted}, not {value!r}, a plain callable: make it async def"
            )
        return value


class EndpointList(Check):
    """A list of `(port, host)` pairs, each checked as `connect()` checks its port and host."""

    __slots__ = ()

    @property
    def choices(self) -> tuple[str, ...]:
        return ("a list of (port, host) pairs",)

    def check(self, name: str, value: object) -> tuple[tuple[int, str], ...]:
        from ._endpoints import check_alternates  # which needs _options, which needs this module

        return tuple((endpoint.port, endpoint.host) for endpoint in check_alternates(value))
