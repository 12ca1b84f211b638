"""`connman cat HOST:PORT`: a netcat that survives restarts of the other end.

stdin goes to the connection, the connection to stdout. While the connection is down, input is queued
(up to `--queue` bytes) and sent first when it is back. When stdin ends, cat waits until the queue is
flushed, keeps printing what arrives for `--linger` seconds, and exits.
"""

from __future__ import annotations

import argparse
import io
import sys
import time

import connman
from connman._endpoints import UnixEndpoint
from connman._options import Endpoint

from ._status import connect_to

__all__ = ["EXIT_GAVE_UP", "EXIT_QUEUE_FULL", "run"]

EXIT_GAVE_UP = 3
EXIT_QUEUE_FULL = 4
EXIT_INTERRUPTED = 130


def _status(verbose: bool, message: str) -> None:
    if verbose:
        print(f"connman: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, backoff: connman.Backoff) -> int:
    target: Endpoint | UnixEndpoint = args.endpoint
    verbose: bool = args.verbose
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    assert isinstance(stdin, io.BufferedReader)  # read1(): what has arrived, without waiting for more

    def on_data(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

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
        while chunk := stdin.read1(65536):
            failed = _send(conn, chunk, verbose)
            if failed is not None:
                return failed
        # stdin ended: everything queued must go out before we leave.
        while conn.stats.queued or not conn.is_connected:
            if conn.state is connman.State.FAILED:
                return _gave_up(conn)
            conn.wait_connected(0.1)
        deadline = time.monotonic() + args.linger
        while time.monotonic() < deadline and conn.is_connected:
            time.sleep(0.01)  # keep printing what the peer sends for a moment
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        conn.disconnect()


def _send(conn: connman.Connection, chunk: bytes, verbose: bool) -> int | None:
    """Write `chunk` (waiting for the connection if queueing is off); an exit status if that failed."""
    while True:
        try:
            if not conn.write(chunk):
                conn.drain()  # the peer reads slower than stdin arrives: stop reading stdin
            return None
        except connman.QueueFull as exc:
            print(f"connman: queue full: {exc}", file=sys.stderr, flush=True)
            return EXIT_QUEUE_FULL
        except connman.GaveUp:
            return _gave_up(conn)
        except connman.NotConnected:  # --queue 0: wait for the connection instead
            _status(verbose, "waiting for the connection (--queue 0)")
            conn.wait_connected(1.0)


def _gave_up(conn: connman.Connection) -> int:
    print(f"connman: gave up on {conn.endpoint}: {conn.last_error}", file=sys.stderr, flush=True)
    return EXIT_GAVE_UP
