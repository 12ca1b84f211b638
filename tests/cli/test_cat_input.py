"""`connman cat` with input faster than the connection: back-pressure on stdin, never an overflow;
and the end of input when there is nothing to send (#12)."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from tests.conftest import BOUND

from .helpers import ENV, Cli, Sink, connman_command

FIVE_MIB = 5 * 1024 * 1024
#: Bounds a whole cat run of 5 MiB on a loaded 2-core machine; not a speed check.
RUN_BOUND = 60
#: What cat -v says when its queue is full and it stops reading stdin.
NOT_READING = "not reading stdin until the connection is back"


def cat(*args: str) -> Cli:
    return Cli("cat", "-v", "--initial", "0.01", "--cap", "0.05", *args)


def test_5_mib_to_a_server_that_listens_1_s_late_all_arrive_and_cat_exits_0() -> None:
    data = os.urandom(FIVE_MIB)
    with Sink() as server, cat(f"127.0.0.1:{server.port}") as command:  # bound, not listening: refused
        started = time.monotonic()
        command.feed(data)
        command.stderr.wait_for(NOT_READING)  # the queue (1 MiB) is full: cat stopped reading, not failed
        threading.Event().wait(max(0.0, started + 1.0 - time.monotonic()))  # the 1 s
        server.listen()
        assert command.wait(RUN_BOUND) == 0, command.stderr.seen
        assert server.wait_for_bytes(FIVE_MIB) == data


def test_5_mib_to_a_live_server_all_arrive_and_cat_exits_0() -> None:
    data = os.urandom(FIVE_MIB)
    with Sink() as server:
        server.listen()
        done = subprocess.run(
            connman_command("cat", f"127.0.0.1:{server.port}"),
            input=data,
            capture_output=True,
            env=ENV,
            timeout=RUN_BOUND,
        )
        assert done.returncode == 0, done.stderr
        assert server.wait_for_bytes(FIVE_MIB) == data


def test_5_mib_across_a_server_restart_all_arrive_and_cat_exits_0() -> None:
    data = os.urandom(FIVE_MIB)
    before = 1024 * 1024
    with Sink() as server:
        server.listen()
        with cat(f"127.0.0.1:{server.port}") as command:
            command.stderr.wait_for("connected to")
            command.feed(data[:before], close=False).join(BOUND)
            assert server.wait_for_bytes(before) == data[:before]
            server.stop()
            command.stderr.wait_for("lost")
            command.feed(data[before:])  # while down: 1 MiB queued, then cat stops reading
            command.stderr.wait_for(NOT_READING)
            server.listen()
            command.stderr.wait_for("connected to")
            assert command.wait(RUN_BOUND) == 0, command.stderr.seen
        assert server.wait_for_bytes(FIVE_MIB) == data


def test_a_queue_smaller_than_the_input_pushes_back_instead_of_failing() -> None:
    data = os.urandom(100_000)
    with Sink() as server, cat("--queue", "1000", f"127.0.0.1:{server.port}") as command:
        command.feed(data)
        command.stderr.wait_for(NOT_READING)
        server.listen()
        assert command.wait(RUN_BOUND) == 0, command.stderr.seen
        assert server.wait_for_bytes(len(data)) == data


def test_no_input_to_a_port_where_nothing_listens_exits_0_at_once() -> None:
    with Sink() as nothing_listens, open(os.devnull, "rb") as empty:
        done = subprocess.run(
            connman_command("cat", f"127.0.0.1:{nothing_listens.port}"),
            stdin=empty,
            capture_output=True,
            env=ENV,
            timeout=RUN_BOUND,  # it used to retry forever
        )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
