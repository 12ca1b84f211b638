"""The command line, driven in subprocesses: demo, cat through server restarts, watch, usage errors."""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import connman
from connman.cli import main
from connman.cli._status import LiveView
from connman.testing import EchoServer, ServerThread
from tests.conftest import BOUND

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def connman_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "connman", *args]


def test_demo_recovers_from_every_fault_and_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "2"]) == 0
    out = capsys.readouterr().out
    for fault in ("restart the server", "reset every connection (RST)", "stall every connection", "refuse"):
        assert f"FAULT: {fault}" in out
    assert "connection lost (half-open)" in out  # the stall, noticed by the idle timeout
    assert "reconnected after" in out
    assert "  faults injected     4\n" in out
    assert "  bytes lost          0\n" in out
    assert "everything recovered" in out
    assert "\x1b[" not in out  # not a terminal: plain lines, no redrawing


class Lines:
    """The lines a subprocess writes to a pipe, readable with a bound."""

    def __init__(self, pipe: object) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.pipe = pipe
        self.reader = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.reader.start()

    def close(self) -> None:
        self.reader.join(BOUND)  # it ends at EOF, once the process has exited
        self.pipe.close()  # type: ignore[attr-defined]

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.lines.put(line.decode() if isinstance(line, bytes) else line)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + BOUND
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(line)
            if text in line:
                return


def test_cat_delivers_every_line_once_and_in_order_across_two_restarts() -> None:
    with ServerThread(EchoServer(keep_data=True)) as server:
        process = subprocess.Popen(
            connman_command("cat", "-v", "--initial", "0.01", "--cap", "0.05", f"127.0.0.1:{server.port}"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        assert process.stdin is not None
        status = Lines(process.stderr)
        status.wait_for("connected to")
        expected: list[bytes] = []

        def send(count: int) -> None:
            for _ in range(count):
                line = b"line %03d\n" % len(expected)
                expected.append(line)
                process.stdin.write(line)  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]

        def server_has_everything() -> bool:
            return server.call(_data(server.server)).count(b"\n") == len(expected)

        for _restart in range(2):
            send(5)
            _until(server_has_everything)
            server.stop()
            status.wait_for("lost")
            send(5)  # while down: queued, sent first when the connection is back
            server.start()
            status.wait_for("connected to")
        send(5)
        process.stdin.close()
        assert process.wait(BOUND) == 0, status.seen
        status.close()
        assert server.call(_data(server.server)) == b"".join(expected)


async def _data(server: EchoServer) -> bytes:
    return bytes(server.data)


def _until(predicate: object) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_cat_exit_statuses_for_give_up_and_queue_overflow() -> None:
    with ServerThread() as server:
        port = server.port
    gave_up = subprocess.run(
        connman_command("cat", "--max-attempts", "2", "--initial", "0.01", f"127.0.0.1:{port}"),
        input=b"x\n",
        capture_output=True,
        env=ENV,
        timeout=30,
    )
    assert gave_up.returncode == 3
    assert b"connman: gave up on 127.0.0.1:" in gave_up.stderr
    overflow = subprocess.run(
        connman_command("cat", "--queue", "1000", f"127.0.0.1:{port}"),
        input=b"x" * 100_000,
        capture_output=True,
        env=ENV,
        timeout=30,
    )
    assert overflow.returncode == 4
    assert b"connman: queue full: write of" in overflow.stderr


def test_watch_once_says_whether_all_are_up() -> None:
    with ServerThread() as up, ServerThread() as down:
        down.stop()
        all_up = subprocess.run(
            connman_command("watch", "--once", f"127.0.0.1:{up.port}"),
            capture_output=True,
            text=True,
            env=ENV,
        )
        one_down = subprocess.run(
            connman_command(
                "watch", "--once", "--timeout", "0.3", f"127.0.0.1:{up.port}", f"127.0.0.1:{down.port}"
            ),
            capture_output=True,
            text=True,
            env=ENV,
        )
    assert all_up.returncode == 0, all_up.stderr
    header, row = all_up.stdout.splitlines()
    assert header.split()[:4] == ["connection", "state", "for", "attempts"]
    assert row.split()[:2] == [f"127.0.0.1:{up.port}", "connected"]
    assert one_down.returncode == 1
    assert f"127.0.0.1:{down.port}" in one_down.stdout
    assert "refused" in one_down.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["cat", "nonsense"], "expected HOST:PORT"),
        (["cat", "127.0.0.1:0"], "port must be in 1..65535"),
        (["cat", "--queue", "-1", "127.0.0.1:80"], "expected a number of bytes"),
        (["cat", "--cap", "0", "127.0.0.1:80"], "expected a number of seconds > 0"),
        (["cat", "--factor", "0.5", "127.0.0.1:80"], "factor must be a finite number >= 1"),
        (["watch"], "the following arguments are required: HOST:PORT"),
        (["watch", "--timeout", "x", "127.0.0.1:80"], "expected a number of seconds"),
        (["demo", "--duration", "-1"], "expected a number of seconds > 0"),
    ],
)
def test_bad_arguments_are_a_usage_error(args: list[str], message: str) -> None:
    done = subprocess.run(connman_command(*args), capture_output=True, text=True, env=ENV, timeout=30)
    assert done.returncode == 2
    assert "usage: connman" in done.stderr
    assert message in done.stderr


@pytest.mark.parametrize("command", [[], ["demo"], ["cat"], ["watch"]])
def test_help_on_every_command(command: list[str]) -> None:
    done = subprocess.run(
        connman_command(*command, "--help"), capture_output=True, text=True, env=ENV, timeout=30
    )
    assert done.returncode == 0
    assert "usage: connman" in done.stdout
    if command:
        assert "examples:" in done.stdout


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_live_view_redraws_the_table_in_place_on_a_terminal(server: EchoServer) -> None:
    async with connman.ConnectionManager() as cm:
        conn = cm.connect(server.port, "127.0.0.1")
        assert await conn.wait_connected(BOUND)
        screen = Terminal()
        view = LiveView(screen)
        view.event("first event")
        view.draw([("a", conn)])
        first = screen.getvalue()
        assert first.startswith("connection  state")
        assert "\na           connected" in first and first.endswith("first event\n")
        view.draw([("a", conn)])
        redraw = screen.getvalue()[len(first) :]
        lines = first.count("\n")
        assert redraw.startswith(f"\x1b[{lines}F\x1b[J")  # back up over the last drawing, clear, draw
    plain = io.StringIO()
    LiveView(plain).event("an event")
    assert plain.getvalue() == "an event\n"  # not a terminal: plain lines
