"""Edges of the data path that its C form (`connman._speedups`) once handled unlike the Python one.

`make test` runs this file under both forms (the second time with `CONNMAN_PURE_PYTHON=1`).
"""

from __future__ import annotations

import pytest

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND, Recorder


async def test_write_takes_data_by_keyword_too(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", on_data=recorder.on_data)
    await conn.wait_connected(BOUND)
    assert conn.write(data=b"ping") is True
    await recorder.wait_bytes(4)
    assert bytes(recorder.data) == b"ping"
    assert conn.stats.bytes_out == 4
    with pytest.raises(TypeError):
        conn.write()  # type: ignore[call-arg]


async def test_a_max_write_buffer_beyond_what_c_holds_is_no_limit(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", on_data=recorder.on_data, max_write_buffer=10**30)
    await conn.wait_connected(BOUND)
    assert conn.write(b"x" * 1000) is True
    await recorder.wait_bytes(1000)
    assert conn.stats.bytes_out == 1000
