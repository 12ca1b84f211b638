"""`connman watch --metrics-port`: the watched connections' metrics, scraped from a real endpoint."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from connman.cli import main
from connman.testing import ServerThread
from tests.conftest import BOUND

from .helpers import ENV, Cli, connman_command


def scrape_until(url: str, pattern: str) -> str:
    """The scraped page once `pattern` matches a line of it (bounded)."""
    deadline = time.monotonic() + BOUND
    while True:
        with urllib.request.urlopen(url, timeout=BOUND) as response:
            page: str = response.read().decode()
        if re.search(pattern, page, re.MULTILINE):
            return page
        assert time.monotonic() < deadline, f"{pattern!r} never matched; last scrape:\n{page}"
        time.sleep(0.05)


def test_watch_serves_the_watched_connections_metrics() -> None:
    with ServerThread() as up:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))  # bound, not listening: connections to it are refused
            down = unused.getsockname()[1]
            with Cli(
                "watch",
                "--interval",
                "0.05",
                "--metrics-port",
                "0",
                f"127.0.0.1:{up.port}",
                f"127.0.0.1:{down}",
            ) as watch:
                watch.stderr.wait_for("metrics at ")
                url = watch.stderr.seen[-1].split("metrics at ", 1)[1].strip()
                assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
                where_up = f'pool="",server_address="127.0.0.1",server_port="{up.port}"'
                where_down = f'pool="",server_address="127.0.0.1",server_port="{down}"'
                page = scrape_until(url, rf'^connman_connections\{{{where_up},state="connected"\}} 1\.0$')
                page = scrape_until(
                    url, rf'^connman_connect_attempts_total\{{outcome="refused",{where_down}\}} [1-9]'
                )
                assert re.search(
                    rf'^connman_connections\{{{where_down},state="connected"\}} 0\.0$', page, re.M
                )
                watch.process.send_signal(signal.SIGINT)
                assert watch.wait(BOUND) == 130


def test_watch_metrics_port_errors_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["watch", "--metrics-port", "x", "127.0.0.1:1"])
    assert exit_.value.code == 2
    assert "argument --metrics-port: expected a TCP port 0..65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            connman_command("watch", "--once", "--metrics-port", str(port), "127.0.0.1:1"),
            env=ENV,
            capture_output=True,
            text=True,
            timeout=BOUND * 3,
        )
    assert result.returncode == 2
    assert result.stderr.startswith(f"connman watch: error: --metrics-port {port} --metrics-addr 127.0.0.1:")
