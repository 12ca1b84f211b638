"""What the command-line tests share: running `connman` in a subprocess, reading its output with a
bound, and a reading server that can listen late and be restarted."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.conftest import BOUND

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def connman_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "connman", *args]


class Lines:
    """The lines a subprocess writes to a pipe, readable with a bound."""

    def __init__(self, pipe: IO[bytes] | IO[str] | None) -> None:
        assert pipe is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.pipe = pipe
        self.reader = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.reader.start()

    def close(self) -> None:
        self.reader.join(BOUND)  # it ends at EOF, once the process has exited
        self.pipe.close()

    def _read(self, pipe: IO[bytes] | IO[str]) -> None:
        for line in pipe:
            self.lines.put(line.decode() if isinstance(line, bytes) else line)

    def everything(self) -> str:
        """All that was written, once the process has exited (its end of the pipe is closed)."""
        self.reader.join(BOUND)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return "".join(self.seen)

    def wait_for(self, text: str, bound: float = BOUND) -> None:
        deadline = time.monotonic() + bound
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(line)
            if text in line:
                return


class Cli:
    """`connman ARGS...` in a subprocess: stdin a pipe (`feed`), stderr read line by line (`stderr`),
    stdout dropped or read line by line too. As a context manager, it leaves nothing behind, even
    when the test fails halfway: the process is killed, the threads end, the pipes are closed."""

    def __init__(self, *args: str, stdout: int = subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(
            connman_command(*args), stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE, env=ENV
        )
        self.stderr = Lines(self.process.stderr)
        self.stdout = Lines(self.process.stdout) if stdout == subprocess.PIPE else None
        self._writers: list[threading.Thread] = []

    def feed(self, data: bytes, *, close: bool = True) -> threading.Thread:
        """Write `data` to stdin from a thread (the writes block while the command does not read),
        then close stdin if `close`."""
        stdin = self.process.stdin
        assert stdin is not None

        def write() -> None:
            try:
                stdin.write(data)
                stdin.flush()
                if close:
                    stdin.close()
            except (BrokenPipeError, ValueError):  # it exited early, or was killed: the test says why
                pass

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        self._writers.append(writer)
        return writer

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process.poll() is None:
            process.kill()
        process.wait(BOUND)
        for writer in self._writers:
            writer.join(BOUND)
        if process.stdin is not None:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        for lines in (self.stderr, self.stdout):
            if lines is not None:
                lines.close()


class Sink:
    """A server on a thread of its own that reads everything and replies nothing, one connection at
    a time. Its port is bound from the start, so until `listen()` connections to it are refused, and
    nobody else can take the port while it is not listening (after `stop()`, until `listen()`)."""

    def __init__(self) -> None:
        self.port = 0
        self.data = bytearray()
        self._changed = threading.Condition()
        self._peer: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._socket = self._bind()

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the same port again after stop()
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        return sock

    def listen(self) -> None:
        self._socket.listen()
        self._thread = threading.Thread(target=self._serve, args=(self._socket,), daemon=True)
        self._thread.start()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:  # stop(): shut down
                return
            self._peer = peer
            with peer:
                while data := _recv(peer):
                    with self._changed:
                        self.data += data
                        self._changed.notify_all()

    def stop(self) -> None:
        """Close the listener and the connection (FIN), and bind the port again, not listening."""
        for sock in (self._socket, self._peer):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept() or recv()
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(BOUND)
            assert not self._thread.is_alive()
        self._socket.close()
        self._peer = self._thread = None
        self._socket = self._bind()

    def close(self) -> None:
        self.stop()
        self._socket.close()

    def wait_for_bytes(self, count: int) -> bytes:
        """What it has received once that is `count` bytes or more, or at the bound."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.data) >= count, BOUND)
            return bytes(self.data)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20)
    except OSError:
        return b""
