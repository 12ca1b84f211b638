"""Validation of everything connect() receives, at the call: no loop, no socket."""

from __future__ import annotations

import dataclasses
import re
import socket
import ssl
from typing import get_type_hints

import pytest

from connman import Backoff
from connman._callbacks import resolve_callbacks, resume_caller
from connman._checks import (
    TLS,
    AsyncFunction,
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
from connman._options import (
    CALLBACKS,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_OPTIONS,
    OPTIONS,
    Endpoint,
    Option,
    Options,
    check_endpoint,
    check_options,
)


@pytest.mark.parametrize(
    ("port", "host", "error", "message"),
    [
        (0, "127.0.0.1", ValueError, r"port must be in 1\.\.65535, not 0"),
        (-1, "127.0.0.1", ValueError, r"port must be in 1\.\.65535, not -1"),
        (65536, "127.0.0.1", ValueError, r"port must be in 1\.\.65535, not 65536"),
        ("80", "127.0.0.1", TypeError, r"port must be an int in 1\.\.65535, not '80'"),
        (None, "127.0.0.1", TypeError, "port must be an int"),
        (True, "127.0.0.1", TypeError, "port must be an int"),
        (80.0, "127.0.0.1", TypeError, "port must be an int"),
        (80, None, TypeError, "host must be a str"),
        (80, b"localhost", TypeError, "host must be a str"),
        (80, "", ValueError, "host must be a non-empty name"),
        (80, " localhost", ValueError, "host must be a non-empty name"),
        (80, "a" * 254, ValueError, "at most 253 characters"),
    ],
)
def test_bad_endpoints(port: object, host: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check_endpoint(port, host)


def test_endpoints() -> None:
    assert check_endpoint(1, "localhost") == Endpoint(1, "localhost")
    assert check_endpoint(65535, "[::1]") == Endpoint(65535, "::1")
    assert str(Endpoint(80, "::1")) == "[::1]:80"
    assert str(Endpoint(80, "127.0.0.1")) == "127.0.0.1:80"


HOST_ACCEPTED = r"host must be a name, an IPv4 address or an IPv6 address \(optionally in brackets\)"


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1:8080", r"pass the port separately: port=8080, host='127\.0\.0\.1'"),
        ("cache.local:11211", r"pass the port separately: port=11211, host='cache\.local'"),
        ("[::1]:6379", r"pass the port separately: port=6379, host='::1'"),
        ("[]", "empty brackets"),
        ("[::1", "unbalanced brackets"),
        ("::1]", "unbalanced brackets"),
        ("[[::1]]", "unbalanced brackets"),
        ("[::1]x", "nothing may follow the closing bracket"),
        ("[127.0.0.1]", "brackets hold an IPv6 address only"),
        ("[localhost]", "brackets hold an IPv6 address only"),
        ("http://example.com", "a URL: pass its host name alone"),
        ("::g", "a host with ':' must be an IPv6 address"),
        ("cache:local", "a host with ':' must be an IPv6 address"),
    ],
)
def test_a_host_no_resolver_could_resolve_is_refused(host: str, why: str) -> None:
    # Accepted, these were retried forever as DNS failures.
    with pytest.raises(ValueError, match=rf"^{HOST_ACCEPTED}, not {re.escape(repr(host))}; {why}$"):
        check_endpoint(80, host)


@pytest.mark.parametrize(
    ("host", "connected_to"),
    [
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("[fe80::1%eth0]", "fe80::1%eth0"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("bücher.example", "bücher.example"),
    ],
)
def test_names_and_addresses_are_accepted(host: str, connected_to: str) -> None:
    assert check_endpoint(80, host) == Endpoint(80, connected_to)


# ---- the declarations, and what is derived from them ------------------------------------------------


def test_options_has_a_field_for_each_of_our_options_with_its_declared_type() -> None:
    ours = [option for option in OPTIONS.values() if not option.passthrough]
    assert [field.name for field in dataclasses.fields(Options)] == [
        *(option.name for option in ours),
        "create_connection",
    ]
    hints = get_type_hints(Options)
    for option in ours:
        assert hints[option.name] == option.kind, option.name


@pytest.mark.parametrize("option", OPTIONS.values(), ids=list(OPTIONS))
def test_each_default_passes_its_own_check(option: Option) -> None:
    assert option.check(option.name, option.default) == option.default


@pytest.mark.parametrize("option", OPTIONS.values(), ids=list(OPTIONS))
def test_an_option_accepts_none_exactly_when_its_type_does_and_says_what_it_means(option: Option) -> None:
    assert option.check.optional is (type(None) in getattr(option.kind, "__args__", ()))
    assert bool(option.none) is option.check.optional
    if isinstance(option.check, Seconds):
        assert option.unit == "seconds"


def test_every_default_given_explicitly_makes_the_default_options() -> None:
    assert check_options({name: option.default for name, option in OPTIONS.items()}) == DEFAULT_OPTIONS


def test_defaults() -> None:
    options = check_options({})
    assert options.connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert options.backoff == Backoff()
    assert options.max_attempts is None
    assert options.nodelay is True
    assert options.queue_while_down == 0
    assert dict(options.create_connection) == {}


def test_passthrough_options_reach_create_connection() -> None:
    context = ssl.create_default_context()
    options = check_options(
        {
            "ssl": context,
            "server_hostname": "example.test",
            "family": socket.AF_INET,
            "local_addr": ("127.0.0.1", 0),
            "happy_eyeballs_delay": 0.25,
            "interleave": 1,
            "ssl_handshake_timeout": 5,
        }
    )
    assert dict(options.create_connection) == {
        "ssl": context,
        "server_hostname": "example.test",
        "family": socket.AF_INET,
        "local_addr": ("127.0.0.1", 0),
        "happy_eyeballs_delay": 0.25,
        "interleave": 1,
        "ssl_handshake_timeout": 5.0,
    }


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"conect_timeout": 1}, TypeError, "unknown option 'conect_timeout'; did you mean 'connect_timeout'"),
        ({"xyzzy": 1}, TypeError, "unknown option 'xyzzy'; accepted: alternates, backoff, "),
        ({"sock": object()}, TypeError, "unknown option 'sock'"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be a finite number > 0"),
        ({"connect_timeout": -1}, ValueError, "connect_timeout must be"),
        ({"connect_timeout": "5"}, TypeError, "connect_timeout must be a number of seconds"),
        ({"backoff": 1.0}, TypeError, "backoff must be a connman.Backoff"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be >= 1"),
        ({"max_attempts": 1.5}, TypeError, "max_attempts must be an int >= 1 or None"),
        ({"on_give_up": 3}, TypeError, "on_give_up must be callable or None"),
        ({"on_error": "log"}, TypeError, "on_error must be callable or None"),
        ({"nodelay": 1}, TypeError, "nodelay must be a bool"),
        ({"queue_while_down": -1}, ValueError, "queue_while_down must be >= 0"),
        ({"queue_while_down": "1k"}, TypeError, "queue_while_down must be an int"),
        ({"ssl": "yes"}, TypeError, "ssl must be a bool, an ssl.SSLContext or None"),
        ({"server_hostname": "x"}, ValueError, "server_hostname is only meaningful with ssl"),
        ({"ssl": True, "server_hostname": 5}, TypeError, "server_hostname must be a str or None"),
        ({"ssl_handshake_timeout": 5}, ValueError, "ssl_handshake_timeout is only meaningful with ssl"),
        ({"family": 99}, ValueError, "family must be 0, socket.AF_INET or socket.AF_INET6"),
        ({"local_addr": "127.0.0.1"}, TypeError, r"local_addr must be a \(host, port\) tuple"),
        (
            {"local_addr": ("127.0.0.1", 70000)},
            ValueError,
            r"local_addr port must be in 0\.\.65535, not 70000",
        ),
        ({"happy_eyeballs_delay": -0.1}, ValueError, "happy_eyeballs_delay must be"),
        ({"interleave": -1}, ValueError, "interleave must be >= 0"),
        ({"family": "2"}, TypeError, "family must be 0, socket.AF_INET or socket.AF_INET6"),
        ({"give_up_after": 0}, ValueError, "give_up_after must be a finite number > 0"),
        ({"give_up_after": "1m"}, TypeError, "give_up_after must be a number of seconds"),
        ({"max_write_buffer": 0}, ValueError, "max_write_buffer must be >= 1"),
        ({"max_write_buffer": 1.5}, TypeError, "max_write_buffer must be an int >= 1 or None"),
        ({"resolver": "8.8.8.8"}, TypeError, "resolver must be callable or None"),
        ({"keepalive": (1, 1, 0)}, ValueError, "keepalive count must be >= 1"),
        ({"user_timeout": float("inf")}, ValueError, "user_timeout must be a finite number > 0"),
        ({"idle_timeout": True}, TypeError, "idle_timeout must be a number of seconds"),
    ],
)
def test_bad_options(options: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check_options(options)


def test_callbacks_and_handler_are_exclusive() -> None:
    class Handler:
        def on_data(self, data: bytes) -> None:
            pass

    with pytest.raises(TypeError, match="pass either handler or callbacks, not both"):
        resolve_callbacks(None, print, None, Handler(), None)
    with pytest.raises(TypeError, match="handler must have at least one of"):
        resolve_callbacks(None, None, None, object(), None)
    with pytest.raises(TypeError, match="on_data must be callable or None, not 5"):
        resolve_callbacks(None, 5, None, None, None)

    class Broken:
        on_reset = "no"

    with pytest.raises(TypeError, match=r"handler\.on_reset must be callable"):
        resolve_callbacks(None, None, None, Broken(), None)


def test_resume_is_called_with_the_connection_only_if_it_takes_one() -> None:
    conn = object()
    seen: list[object] = []
    resume_caller(lambda: seen.append("none"), conn)()
    resume_caller(lambda c: seen.append(c), conn)()
    resume_caller(lambda c=None: seen.append(c), conn)()
    assert seen == ["none", conn, conn]
    with pytest.raises(TypeError, match="on_reset must return a callable or None"):
        resume_caller(42, conn)


def test_options_left_at_their_default_are_not_passed_to_create_connection() -> None:
    options = check_options({"ssl": False, "family": 0, "proto": 0, "flags": 0, "interleave": None})
    assert dict(options.create_connection) == {}
    assert dict(check_options({"ssl": True, "interleave": 0}).create_connection) == {
        "ssl": True,
        "interleave": 0,
    }


# ---- every option refuses a wrong type and a bad value (cases derived from its check) ---------------


def wrong_types(option: Option) -> list[object]:
    """Values of a type `option` does not accept, derived from its check."""
    values: list[object] = [] if option.check.optional else [None]
    match option.check:
        case Seconds():
            values += ["5", True, b"1"]
        case Count():
            values += [1.5, "1", True]
        case Flag():
            values += [1, "yes"]
        case Function():
            values += [3, "print"]
        case AsyncFunction():
            values += [3, "print", print, lambda host, port: None]
        case EndpointList():
            values += [3, "127.0.0.1:80", {11211: "a"}, [3], [(11211,)], [("127.0.0.1", 11211)]]
        case Instance():
            values += [object(), 1.0]
        case OneOf():
            values += ["2", 2.0, True]
        case TLS():
            values += ["yes", 1]
        case Text():
            values += [5, b"name"]
        case Keepalive():
            values += ["30", (1, 1), [15, 5, 3], ("15", 5, 3), (15, 5, 3.0)]
        case LocalAddress():
            values += ["127.0.0.1", ("127.0.0.1",), (1, 0), ("127.0.0.1", "80"), ("127.0.0.1", True)]
        case check:
            pytest.fail(f"no wrong types known for {check!r}: add them here")
    return values


def bad_values(option: Option) -> list[object]:
    """Values of the right type that `option` refuses, derived from its check."""
    match option.check:
        case Seconds():
            return [0, -1, float("nan"), float("inf")]
        case Count(minimum=minimum):
            return [minimum - 1, -(2**70)]
        case OneOf(values=values):
            return [max(values) + 1, -1]
        case Keepalive():
            return [(0, 5, 3), (15, -1, 3), (15, 5, 0), (float("inf"), 5, 3)]
        case LocalAddress():
            return [("127.0.0.1", -1), ("127.0.0.1", 65536)]
        case EndpointList():
            return [[(0, "127.0.0.1")], [(80, "")], [(80, "a:80")]]
        case _:
            return []  # every value of the right type is accepted


WRONG_TYPES = [(option, value) for option in OPTIONS.values() for value in wrong_types(option)]
BAD_VALUES = [(option, value) for option in OPTIONS.values() for value in bad_values(option)]


@pytest.mark.parametrize(("option", "value"), WRONG_TYPES, ids=[f"{o.name}={v!r}" for o, v in WRONG_TYPES])
def test_a_wrong_type_is_a_type_error_naming_the_option(option: Option, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{option.name}( \w+)? must be .+, not ") as info:
        check_options({option.name: value})
    if str(info.value).startswith(f"{option.name} must be"):
        assert f"must be {option.check.accepted}, not {value!r}" in str(info.value)


@pytest.mark.parametrize(("option", "value"), BAD_VALUES, ids=[f"{o.name}={v!r}" for o, v in BAD_VALUES])
def test_a_bad_value_is_a_value_error_naming_the_option(option: Option, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{option.name}( \w+)? must be .+, not "):
        check_options({option.name: value})


def test_only_options_without_a_range_have_no_bad_values() -> None:
    # A new option lands here only if every value of its type is meaningful: decide, then add it.
    unbounded = {option.name for option in OPTIONS.values() if not bad_values(option)}
    assert unbounded == {
        "backoff",
        "retry_if",
        "on_give_up",
        "on_error",
        "nodelay",
        "heartbeat",
        "resolver",
        "dialer",
        "ssl",
        "server_hostname",
    }


# ---- unknown options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("on_dta", "on_data"),
        ("on_conect", "on_connect"),
        ("on_rest", "on_reset"),
        ("handlr", "handler"),
        # The node original's camelCase names, and the habit in general.
        ("onData", "on_data"),
        ("onConnect", "on_connect"),
        ("onReset", "on_reset"),
        ("connectTimeout", "connect_timeout"),
        ("maxAttempts", "max_attempts"),
        ("idle_timout", "idle_timeout"),
    ],
)
def test_a_misspelt_name_gets_a_suggestion(name: str, meant: str) -> None:
    # connect() passes a misspelt callback on in **options, so check_options must know the callbacks.
    with pytest.raises(TypeError, match=rf"^unknown option '{name}'; did you mean '{meant}'\?$"):
        check_options({name: print})


def test_an_unknown_name_without_a_near_miss_lists_every_accepted_name() -> None:
    with pytest.raises(TypeError) as info:
        check_options({"xyzzy": 1})
    accepted = str(info.value).split("; accepted: ")[1].split(", ")
    assert accepted == sorted([*CALLBACKS, *OPTIONS])
    assert {"on_connect", "on_data", "on_reset", "handler"} <= set(accepted)


def test_sock_is_refused_with_the_reason() -> None:
    with pytest.raises(
        TypeError, match=r"^unknown option 'sock': connman opens a new socket for every attempt"
    ):
        check_options({"sock": object()})
