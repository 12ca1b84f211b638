"""Bad input to every public call is refused at the call, with the argument named and what is accepted
(the options themselves are covered in tests/core/test_options.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import connman
from tests.conftest import SLOW

Call = Callable[[connman.ConnectionManager, connman.Pool, connman.Connection], Any]

CASES: list[tuple[str, Call, type[Exception], str]] = [
    ("connect port None", lambda cm, p, c: cm.connect(None, "h"), TypeError, "port must be an int"),  # type: ignore[arg-type]
    ("connect port True", lambda cm, p, c: cm.connect(True, "h"), TypeError, "port must be an int"),
    ("connect port -1", lambda cm, p, c: cm.connect(-1, "h"), ValueError, r"port must be in 1\.\.65535"),
    ("connect host bytes", lambda cm, p, c: cm.connect(80, b"h"), TypeError, "host must be a str"),  # type: ignore[arg-type]
    (
        "connect callback",
        lambda cm, p, c: cm.connect(80, "h", on_data=1),  # type: ignore[arg-type]
        TypeError,
        "on_data must be callable",
    ),
    ("connect handler", lambda cm, p, c: cm.connect(80, "h", handler=1), TypeError, "handler must have"),
    (
        "connect host:port",
        lambda cm, p, c: cm.connect(80, "127.0.0.1:8080"),
        ValueError,
        r"host must be a name, an IPv4 address or an IPv6 address .*; pass the port separately: port=8080",
    ),
    ("connect host '[::1'", lambda cm, p, c: cm.connect(80, "[::1"), ValueError, "unbalanced brackets"),
    ("connect host '[]'", lambda cm, p, c: cm.connect(80, "[]"), ValueError, "empty brackets"),
    (
        "connect on_dta",
        lambda cm, p, c: cm.connect(80, "h", on_dta=print),  # type: ignore[call-arg]
        TypeError,
        r"unknown option 'on_dta'; did you mean 'on_data'\?",
    ),
    (
        "connect onData",
        lambda cm, p, c: cm.connect(80, "h", onData=print),  # type: ignore[call-arg]
        TypeError,
        r"unknown option 'onData'; did you mean 'on_data'\?",
    ),
    (
        "add_connection host:port",
        lambda cm, p, c: p.add_connection(80, "cache.local:11211"),
        ValueError,
        "pass the port separately: port=11211, host='cache.local'",
    ),
    ("get_connection port", lambda cm, p, c: cm.get_connection("80", "h"), TypeError, "port must be an int"),  # type: ignore[arg-type]
    ("create_pool 5", lambda cm, p, c: cm.create_pool(5), TypeError, "pool name must be a non-empty str"),  # type: ignore[arg-type]
    ("create_pool ''", lambda cm, p, c: cm.create_pool(""), ValueError, "pool name must be a non-empty str"),
    ("get_pool 5", lambda cm, p, c: cm.get_pool(5), TypeError, "pool name must be a non-empty str"),  # type: ignore[arg-type]
    (
        "disconnect_all -1",
        lambda cm, p, c: cm.disconnect_all(-1),
        ValueError,
        "timeout must be a finite number >= 0",
    ),
    ("add_connection port", lambda cm, p, c: p.add_connection("x", "h"), TypeError, "port must be an int"),  # type: ignore[arg-type]
    ("pick key", lambda cm, p, c: p.pick(key=1.5), TypeError, "key must be str, bytes or int"),  # type: ignore[arg-type]
    ("remove stranger", lambda cm, p, c: p.remove(5), ValueError, "is not a member of pool"),  # type: ignore[arg-type]
    (
        "pool disconnect nan",
        lambda cm, p, c: p.disconnect(float("nan")),
        ValueError,
        "timeout must be a finite",
    ),
    ("wait_any str", lambda cm, p, c: p.wait_any("5"), TypeError, "timeout must be a number of seconds"),  # type: ignore[arg-type]
    ("write str", lambda cm, p, c: c.write("text"), TypeError, "data must be bytes-like, not str"),  # type: ignore[arg-type]
    ("writelines int", lambda cm, p, c: c.writelines(5), TypeError, "chunks must be an iterable"),  # type: ignore[arg-type]
    ("writelines bytes", lambda cm, p, c: c.writelines(b"ab"), TypeError, "chunks must be an iterable"),  # type: ignore[arg-type]
    ("writelines [1]", lambda cm, p, c: c.writelines([1]), TypeError, "data must be bytes-like, not int"),  # type: ignore[list-item]
    ("disconnect -1", lambda cm, p, c: c.disconnect(-1), ValueError, "timeout must be a finite number >= 0"),
    ("wait_connected str", lambda cm, p, c: c.wait_connected("x"), TypeError, "timeout must be a number"),  # type: ignore[arg-type]
    ("wait_closed -1", lambda cm, p, c: c.wait_closed(-1), ValueError, "timeout must be a finite number"),
    ("drain inf", lambda cm, p, c: c.drain(float("inf")), ValueError, "timeout must be a finite number"),
    ("Backoff cap", lambda cm, p, c: connman.Backoff(cap=0), ValueError, "cap must be a finite number > 0"),
    ("Backoff jitter", lambda cm, p, c: connman.Backoff(jitter="x"), ValueError, "jitter must be one of"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("name", "call", "error", "message"), CASES, ids=[case[0] for case in CASES])
async def test_bad_input_is_refused_at_the_call(
    name: str, call: Call, error: type[Exception], message: str, cm: connman.ConnectionManager
) -> None:
    pool = cm.create_pool("pool")
    conn = pool.add_connection(1, "127.0.0.1", backoff=SLOW, queue_while_down=10)
    before = len(cm)
    with pytest.raises(error, match=message):
        call(cm, pool, conn)
    assert len(cm) == before  # nothing half-made was registered
