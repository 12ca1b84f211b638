"""`connman watch HOST:PORT...`: live status of a managed connection to each endpoint.

Until Ctrl-C, the status table is redrawn in place on a terminal (printed every `--interval` seconds
elsewhere). With `--once`, it waits up to `--timeout` seconds for every endpoint to connect, prints one
table and exits 0 if all are up, 1 if not: usable in scripts and health checks. Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import time

import connman

from ._status import LiveView, connect_to

__all__ = ["run"]

EXIT_NOT_ALL_UP = 1
EXIT_INTERRUPTED = 130


def run(args: argparse.Namespace, backoff: connman.Backoff) -> int:
    view = LiveView()
    named: list[tuple[str, connman.Connection]] = []
    for target in args.endpoints:
        name = str(target)

        def on_connect(conn: connman.Connection, name: str = name) -> None:
            view.event(f"{name}: connected in {(conn.stats.connect_latency or 0) * 1000:.1f} ms")

        def on_reset(name: str = name) -> None:
            view.event(f"{name}: connection lost")

        conn = connect_to(
            target,
            on_connect=None if args.once else on_connect,
            on_reset=None if args.once else on_reset,
            backoff=backoff,
            connect_timeout=args.connect_timeout,
        )
        named.append((name, conn))
    try:
        if args.once:
            deadline = time.monotonic() + args.timeout
            for _, conn in named:
                conn.wait_connected(max(0.0, deadline - time.monotonic()))
            view.print_table(named)
            return 0 if all(conn.is_connected for _, conn in named) else EXIT_NOT_ALL_UP
        while True:
            if view.live:
                view.draw(named)
            else:
                view.print_table(named)
                print(flush=True)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        connman.disconnect_all()
