"""Validation of everything connect() receives, at the call: no loop, no socket."""

from __future__ import annotations

import socket
import ssl

import pytest

from connman import Backoff
from connman._callbacks import resolve_callbacks, resume_caller
from connman._options import DEFAULT_CONNECT_TIMEOUT, Endpoint, check_endpoint, check_options


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
        ({"xyzzy": 1}, TypeError, "unknown option 'xyzzy'; accepted: backoff, "),
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
        ({"ssl": "yes"}, TypeError, "ssl must be None, a bool or an ssl.SSLContext"),
        ({"server_hostname": "x"}, ValueError, "server_hostname is only meaningful with ssl"),
        ({"ssl": True, "server_hostname": 5}, TypeError, "server_hostname must be a str or None"),
        ({"ssl_handshake_timeout": 5}, ValueError, "ssl_handshake_timeout is only meaningful with ssl"),
        ({"family": 99}, ValueError, "family must be 0, socket.AF_INET or socket.AF_INET6"),
        ({"local_addr": "127.0.0.1"}, TypeError, r"local_addr must be a \(host, port\) tuple"),
        ({"local_addr": ("127.0.0.1", 70000)}, TypeError, "local_addr must be"),
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
