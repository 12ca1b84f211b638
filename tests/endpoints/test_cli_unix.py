"""`connman cat unix:/path` and `connman watch unix:/path`, in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from connman.testing import EchoServer, ServerThread

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def connman_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "connman", *args]


def test_cat_and_watch_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    with ServerThread(EchoServer(path=path)):
        cat = subprocess.run(
            connman_command("cat", "--linger", "1", f"unix:{path}"),
            input=b"over a socket file\n",
            capture_output=True,
            env=ENV,
            timeout=30,
        )
        watch = subprocess.run(
            connman_command("watch", "--once", f"unix:{path}"),
            capture_output=True,
            text=True,
            env=ENV,
            timeout=30,
        )
    assert cat.returncode == 0, cat.stderr
    assert cat.stdout == b"over a socket file\n"
    assert watch.returncode == 0, watch.stderr
    assert watch.stdout.splitlines()[1].split()[:2] == [f"unix:{path}", "connected"]

    gone = subprocess.run(
        connman_command("watch", "--once", "--timeout", "0.3", f"unix:{path}"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert gone.returncode == 1
    assert "refused" in gone.stdout


def test_a_relative_unix_path_is_a_usage_error() -> None:
    done = subprocess.run(
        connman_command("cat", "unix:run/x.sock"), capture_output=True, text=True, env=ENV, timeout=30
    )
    assert done.returncode == 2
    assert "must be absolute" in done.stderr


def test_help_shows_the_unix_form() -> None:
    for command in ("cat", "watch"):
        done = subprocess.run(
            connman_command(command, "--help"), capture_output=True, text=True, env=ENV, timeout=30
        )
        assert "unix:/path" in done.stdout
        assert "unix:/run/redis/redis.sock" in done.stdout


def test_cat_says_once_that_it_gave_up(tmp_path: Path) -> None:
    # Nothing listens at the path: cat gives up with input unsent, and says so once, in its own words
    # (the library's "giving up on ..." warning printed the same news a second time).
    path = tmp_path / "nobody.sock"
    done = subprocess.run(
        connman_command("cat", "--max-attempts", "2", "--initial", "0.01", f"unix:{path}"),
        input=b"hello\n",
        capture_output=True,
        env=ENV,
        timeout=30,
    )
    assert done.returncode == 3
    assert done.stderr.decode().splitlines() == [
        f"connman: gave up on unix:{path}: [Errno 2] No such file or directory"
    ]
