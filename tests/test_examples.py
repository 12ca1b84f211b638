"""The examples run as written (memcache and redis run against real servers in tests/real)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import Lines
from tests.conftest import BOUND
from tests.real.conftest import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_pool_pick_moves_only_the_keys_of_the_server_that_went_down() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "pool_pick.py")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("all up:") and lines[1].startswith("server1 down:")
    assert "->server1" not in lines[1]
    assert lines[2].endswith("all of them server1's: True")
    assert lines[3] == "server1 back: same routing as before: True"


def test_pipeline_threads_each_get_their_own_answer_across_a_server_restart() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "pipeline.py")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    found = re.fullmatch(r"answered: (\d+), failed with NotConnected: (\d+), of 1000", lines[0])
    assert found is not None, lines
    answered, failed = int(found[1]), int(found[2])
    assert answered + failed == 1000 and answered >= 900  # the restart costs a few, never a hang
    assert lines[1] == "reconnected: True"


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / "chat_client.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_chat_clients_talk_through_a_server_restart() -> None:
    address = f"127.0.0.1:{free_port()}"
    server = start("--serve", address)
    Lines(server.stderr).wait_for("chat server on")
    alice, bob = start(address, "alice"), start(address, "bob")
    alice_status, bob_status = Lines(alice.stderr), Lines(bob.stderr)
    bob_hears = Lines(bob.stdout)
    processes = [server, alice, bob]
    try:
        alice_status.wait_for("connected")
        bob_status.wait_for("connected")
        assert alice.stdin is not None
        alice.stdin.write("hello bob\n")
        alice.stdin.flush()
        bob_hears.wait_for("alice: hello bob")

        server.kill()  # the server goes away; both clients notice and keep retrying
        server.wait(BOUND)
        alice_status.wait_for("connection lost")
        bob_status.wait_for("connection lost")
        alice.stdin.write("are you still there?\n")  # queued while down
        alice.stdin.flush()
        server = start("--serve", address)
        processes.append(server)
        bob_status.wait_for("connected")
        alice_status.wait_for("connected")
        bob_hears.wait_for("alice: are you still there?")
    finally:
        for process in processes:
            process.kill()
            process.wait(BOUND)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
