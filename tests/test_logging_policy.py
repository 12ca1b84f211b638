"""docs/logging.md's policy (decision 31): connman adds no handler, not even a NullHandler, so that with
no logging configured Python's last-resort handler prints WARNING and ERROR records, and a callback that
raises is never silent; configured logging takes over."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import connman

RAISING_CALLBACK = textwrap.dedent(
    """
    import threading
    import connman
    from connman.testing import EchoServer, ServerThread

    failed = threading.Event()

    def on_data(data: bytes) -> None:
        raise RuntimeError("boom in on_data")

    with ServerThread(EchoServer()) as server:
        conn = connman.connect(server.port, "127.0.0.1", on_data=on_data, on_error=lambda e: failed.set())
        assert conn.wait_connected(5)
        conn.write(b"x")
        assert failed.wait(5)
        connman.disconnect_all()
    """
)


def test_connman_adds_no_handler_to_its_logger() -> None:
    assert connman.__name__ == "connman"
    names = [
        "connman",
        *sorted(name for name in logging.root.manager.loggerDict if name.startswith("connman.")),
    ]
    for name in names:
        assert logging.getLogger(name).handlers == [], name


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def test_with_no_logging_configured_a_raising_callback_is_printed_with_its_traceback() -> None:
    result = run(RAISING_CALLBACK)
    assert result.returncode == 0, result.stderr
    assert "on_data callback failed" in result.stderr
    assert "RuntimeError: boom in on_data" in result.stderr  # the traceback too


def test_configured_logging_takes_over() -> None:
    configured = "import logging\nlogging.basicConfig(level=logging.CRITICAL)\n" + RAISING_CALLBACK
    result = run(configured)
    assert result.returncode == 0, result.stderr
    assert "on_data callback failed" not in result.stderr
