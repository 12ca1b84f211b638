"""The command line, driven in subprocesses: demo, cat through server restarts, watch, usage errors."""

from __future__ import annotations

import io
import signal
import subprocess
import time

import pytest

import connman
from connman._options import Endpoint
from connman.cli import main
from connman.cli._status import LiveView, endpoint
from connman.testing import EchoServer, ServerThread
from tests.conftest import BOUND

from .helpers import ENV, Cli, connman_command
from .helpers import Lines as Lines  # re-exported: tests/test_examples.py imports it from here


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


def test_cat_gives_up_with_exit_status_3_only_with_input_unsent() -> None:
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
    nothing_to_send = subprocess.run(
        connman_command("cat", "--max-attempts", "2", "--initial", "0.01", f"127.0.0.1:{port}"),
        input=b"",
        capture_output=True,
        env=ENV,
        timeout=30,
    )
    assert nothing_to_send.returncode == 0, nothing_to_send.stderr


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
        (["cat", "::1:6379"], "'::1:6379' is ambiguous: write an IPv6 address in brackets, [::1]:6379"),
        (["watch", "fe80::1:80"], "write an IPv6 address in brackets, [fe80::1]:80"),
        (["cat", "::1"], "'::1' has no port: write an IPv6 address in brackets, then the port: [::1]:PORT"),
        (
            ["watch", "http://db:80"],
            "expected HOST:PORT (e.g. 127.0.0.1:11211 or [::1]:6379), not 'http://db:80'",
        ),
        (["watch", "tcp:db:80"], "expected HOST:PORT (e.g. 127.0.0.1:11211 or [::1]:6379), not 'tcp:db:80'"),
        (["cat", "127.0.0.1:80", "extra"], "unrecognized arguments: extra"),
        (["watch", "127.0.0.1:80", "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "extra"], "unrecognized arguments: extra"),
        (["cat", "--queue", "-1", "127.0.0.1:80"], "argument --queue: expected a number of bytes"),
        (["cat", "--cap", "0", "127.0.0.1:80"], "argument --cap: expected a number of seconds > 0"),
        (["cat", "--linger", "-1", "127.0.0.1:80"], "argument --linger: expected a number of seconds >= 0"),
        (["cat", "--linger", "nan", "127.0.0.1:80"], "argument --linger: expected a number of seconds >= 0"),
        (
            ["cat", "--factor", "0.5", "127.0.0.1:80"],
            "argument --factor: factor must be a finite number >= 1",
        ),
        (["watch", "--factor", "x", "127.0.0.1:80"], "argument --factor: expected a number >= 1, not 'x'"),
        (["watch", "--initial", "2", "--cap", "1", "127.0.0.1:80"], "argument --cap: cap must be >= initial"),
        (["watch"], "the following arguments are required: HOST:PORT"),
        (["watch", "--timeout", "x", "127.0.0.1:80"], "argument --timeout: expected a number of seconds"),
        (["demo", "--duration", "-1"], "argument --duration: expected a number of seconds > 0"),
    ],
)
def test_bad_arguments_are_a_usage_error_of_the_command(args: list[str], message: str) -> None:
    done = subprocess.run(connman_command(*args), capture_output=True, text=True, env=ENV, timeout=30)
    assert done.returncode == 2
    command = "connman" if args[0] == "frobnicate" else f"connman {args[0]}"
    assert done.stderr.startswith(f"usage: {command} ")  # that command's usage, not the top level's
    assert f"\n{command}: error: " in done.stderr
    assert message in done.stderr


def test_bracketed_ipv6_addresses_are_endpoints() -> None:
    assert endpoint("[::1]:6379") == Endpoint(6379, "::1")
    assert endpoint("127.0.0.1:11211") == Endpoint(11211, "127.0.0.1")


@pytest.mark.parametrize("command", [[], ["demo"], ["cat"], ["watch"]])
def test_help_on_every_command(command: list[str]) -> None:
    done = subprocess.run(
        connman_command(*command, "--help"), capture_output=True, text=True, env=ENV, timeout=30
    )
    assert done.returncode == 0
    assert "usage: connman" in done.stdout
    if command:
        assert "examples:" in done.stdout
    # An example is a command line to paste: an escape in it is printed as written, not as a control.
    assert "\r" not in done.stdout
    for line in done.stdout.splitlines():
        if line.lstrip().startswith("printf"):
            assert line.count("'") % 2 == 0, line  # the quoted text ends on the same line


def test_the_exit_statuses_are_in_the_top_level_help() -> None:
    done = subprocess.run(connman_command("--help"), capture_output=True, text=True, env=ENV, timeout=30)
    statuses = done.stdout.split("exit status:\n", 1)[1]
    codes = [line.split()[0] for line in statuses.splitlines() if line.strip()]
    assert codes == ["0", "1", "2", "3", "130", "141"]
    assert "--max-attempts" in statuses and "watch --once" in statuses and "Ctrl-C" in statuses


def test_demo_duration_1_runs_about_1_s() -> None:
    # It ran 5 s whatever --duration said. The bound is generous for a loaded machine, and far
    # below what the old fixed schedule took.
    done = subprocess.run(
        connman_command("demo", "--duration", "1"), capture_output=True, text=True, env=ENV, timeout=4
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  faults injected     4\n" in done.stdout


def interrupted(command: Cli, after: str) -> tuple[int, str]:
    """Ctrl-C once `after` has appeared on stdout: the exit status and all that was on stderr."""
    assert command.stdout is not None
    command.stdout.wait_for(after, 3 * BOUND)  # the demo's last fault is 3 s in, later under load
    command.process.send_signal(signal.SIGINT)
    return command.wait(BOUND), command.stderr.everything()


@pytest.mark.parametrize("after", ["connected to", "FAULT: stall", "FAULT: refuse"])
def test_demo_stops_quietly_with_130_on_ctrl_c(after: str) -> None:
    with Cli("demo", "--duration", "4", stdout=subprocess.PIPE) as demo:
        returncode, stderr = interrupted(demo, after)
    assert returncode == 130
    # No traceback, no "Task exception was never retrieved", no "coroutine ... was never awaited".
    assert stderr == ""


def test_watch_exits_130_on_ctrl_c() -> None:
    with ServerThread() as server:
        with Cli("watch", "--interval", "0.05", f"127.0.0.1:{server.port}", stdout=subprocess.PIPE) as watch:
            returncode, stderr = interrupted(watch, "connected")
    assert returncode == 130
    assert stderr == ""


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


def test_cat_exits_141_when_its_stdout_reader_goes_away() -> None:
    # `connman cat HOST:PORT | head -1`: once head exits, cat must stop, even while it waits for stdin.
    with ServerThread(EchoServer()) as server:
        process = subprocess.Popen(
            connman_command("cat", f"127.0.0.1:{server.port}"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(b"first\n")
            process.stdin.flush()
            assert process.stdout.readline() == b"first\n"
            process.stdout.close()  # head -1 is done; stdin stays open, so cat waits for it
            process.stdin.write(b"second\n")  # its echo meets the closed pipe
            process.stdin.flush()
            assert process.wait(BOUND) == 141
            assert process.stderr is not None
            stderr = process.stderr.read().decode()
            assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(BOUND)
            process.stdin.close()
            if process.stderr is not None:
                process.stderr.close()
