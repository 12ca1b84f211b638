"""`connman watch HOST:PORT...`: live status of a managed connection to each endpoint.

Until Ctrl-C, the status table is redrawn in place on a terminal (printed every `--interval` seconds
elsewhere). With `--once`, it waits up to `--timeout` seconds for every endpoint to connect, prints one
table and exits 0 if all are up, 1 if not: usable in scripts and health checks. Ctrl-C exits 130.
With `--metrics-port`, the watched connections' metrics are served for Prometheus as well.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import connman

from ._status import LiveView, connect_to

if TYPE_CHECKING:
    from connman.prometheus import MetricsServer

__all__ = ["run"]

EXIT_NOT_ALL_UP = 1
EXIT_BAD_ARGUMENTS = 2
EXIT_INTERRUPTED = 130


def _serve_metrics(port: int, addr: str) -> MetricsServer | str:
    """The Prometheus endpoint for connman's default manager (where `connect_to` puts the watched
    connections), or why it cannot be served."""
    try:
        import connman.prometheus  # only with --metrics-port: the extra is optional
    except ImportError as error:
        return f"--metrics-port needs prometheus_client: pip install 'connman[prometheus]' ({error})"
    try:
        return connman.prometheus.serve(connman.default_manager(), port, addr)
    except (OSError, TypeError, ValueError) as error:
        return f"--metrics-port {port} --metrics-addr {addr}: {error}"


def run(args: argparse.Namespace, backoff: connman.Backoff) -> int:
    metrics: MetricsServer | None = None
    if args.metrics_port is not None:  # before connecting, so that the first attempts are counted
        served = _serve_metrics(args.metrics_port, args.metrics_addr)
        if isinstance(served, str):
            print(f"connman watch: error: {served}", file=sys.stderr)
            return EXIT_BAD_ARGUMENTS
        metrics = served
        print(f"metrics at {metrics.url}", file=sys.stderr, flush=True)
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
        if metrics is not None:
            metrics.close()
