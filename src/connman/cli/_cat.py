"""`connman cat HOST:PORT`: a netcat that survives restarts of the other end.

stdin goes to the connection, the connection to stdout. While the connection is down, input is queued
(up to `--queue` bytes) and sent first when it is back; once the queue is full, cat stops reading
stdin until the connection is back, and while the peer reads slower than stdin arrives it stops
reading until the send buffer has room again (back-pressure: input of any size gets through; only
bytes in flight when a connection drops can be lost with it). When stdin ends, cat waits until
everything read has been sent, keeps printing what arrives for `--linger` seconds while the
connection is up, and exits 0; with nothing left to send it exits at once even if nothing listens.
It gives up (exit 3) only through `--max-attempts` / `--give-up-after`, and only with input unsent.
When stdout's reader goes away (`connman cat ... | head -1`), cat stops and exits 141, as `cat` does
when SIGPIPE ends it.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading
import time

import connman
from connman._endpoints import UnixEndpoint
from connman._options import Endpoint

from ._status import connect_to

__all__ = ["EXIT_GAVE_UP", "EXIT_OUTPUT_CLOSED", "run"]

EXIT_GAVE_UP = 3
#: stdout's reader went away: 128 + SIGPIPE, what a shell reports for `cat` ended by SIGPIPE.
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE
EXIT_INTERRUPTED = 130

#: The most bytes read from stdin at a time (and written at a time).
CHUNK = 65536


def _status(verbose: bool, message: str) -> None:
    if verbose:
        print(f"connman: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, backoff: connman.Backoff) -> int:
    target: Endpoint | UnixEndpoint = args.endpoint
    verbose: bool = args.verbose
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    assert isinstance(stdin, io.BufferedReader)  # read1(): what has arrived, without waiting for more
    # cat says itself what happens (-v, and the give-up line): the library's WARNING about giving up
    # would say it a second time. Errors (a callback of cat's that failed) still show.
    logging.getLogger("connman").setLevel(logging.ERROR)
    # A chunk never exceeds the queue, so that an empty queue always takes one.
    chunk_size = min(CHUNK, args.queue) if args.queue else CHUNK

    output_closed = threading.Event()
    main_thread = threading.get_ident()

    def on_data(data: bytes) -> None:
        if output_closed.is_set():
            return
        try:
            stdout.write(data)
            stdout.flush()
        except BrokenPipeError:
            # This runs on connman's loop thread; the main thread may be blocked reading stdin. A
            # signal to it interrupts that read, and its handler ends the run (`_OutputClosed`).
            output_closed.set()
            signal.pthread_kill(main_thread, signal.SIGUSR1)

    def on_wake(signum: int, frame: object) -> None:
        if output_closed.is_set():
            raise _OutputClosed

    previous_handler = signal.signal(signal.SIGUSR1, on_wake)

    def on_connect(conn: connman.Connection) -> None:
        latency = conn.stats.connect_latency or 0.0
        _status(verbose, f"connected to {target} in {latency * 1000:.1f} ms")

    def on_reset() -> None:
        _status(verbose, f"connection to {target} lost ({conn.last_cause.value if conn.last_cause else '?'})")

    def on_give_up(error: BaseException) -> None:
        _status(verbose, f"giving up: {error}")

    conn = connect_to(
        target,
        on_data=on_data,
        on_connect=on_connect,
        on_reset=on_reset,
        on_give_up=on_give_up,
        backoff=backoff,
        max_attempts=args.max_attempts,
        give_up_after=args.give_up_after,
        connect_timeout=args.connect_timeout,
        queue_while_down=args.queue,
    )
    try:
        while chunk := stdin.read1(chunk_size):
            if not _send(conn, chunk, verbose):
                return _gave_up(conn)
        # stdin ended: everything read must go out before we leave (across reconnects).
        if not conn.wait_flushed():  # False: it gave up with bytes unsent
            return _gave_up(conn)
        _linger(conn, args.linger)
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except _OutputClosed:
        # Python flushes stdout at exit, which would fail again and print a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    finally:
        signal.signal(signal.SIGUSR1, previous_handler)
        conn.disconnect()


class _OutputClosed(Exception):
    """stdout's reader went away (`| head`): cat stops."""


def _send(conn: connman.Connection, chunk: bytes, verbose: bool) -> bool:
    """Write `chunk`, waiting for room first if there is none; False if the connection gave up.

    While this waits, nothing more is read from stdin: that is the back-pressure."""
    while True:
        try:
            if not conn.write(chunk):
                # Accepted, but the peer reads slower than stdin arrives. False from the wait: the
                # connection dropped, and the next write goes to its queue.
                conn.wait_writable()
            return True
        except (connman.QueueFull, connman.NotConnected) as exc:
            # Down, and the queue is full (or off: --queue 0). When the connection is back, the
            # queue goes out first, and then there is room.
            if conn.is_connected:
                conn.wait_changed(0.1)  # its transport is closing: the loss is being reported
            else:
                _status(verbose, f"not reading stdin until the connection is back ({exc})")
                conn.wait_connected()
        except connman.BufferFull:
            conn.wait_writable()
        except connman.GaveUp:
            return False


def _linger(conn: connman.Connection, seconds: float) -> None:
    """Keep printing what the peer sends for `seconds`, while the connection is up or on its way up;
    at once if it is down (nothing will arrive)."""
    deadline = time.monotonic() + seconds
    while conn.state in (connman.State.CONNECTED, connman.State.CONNECTING):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.wait_changed(left)


def _gave_up(conn: connman.Connection) -> int:
    print(f"connman: gave up on {conn.endpoint}: {conn.last_error}", file=sys.stderr, flush=True)
    return EXIT_GAVE_UP
