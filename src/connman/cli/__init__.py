"""The `connman` command: `connman demo`, `connman cat HOST:PORT`, `connman watch HOST:PORT...`.

Exit status: 0 success; 1 `demo` did not recover everything, or `watch --once` found an endpoint down;
2 bad arguments; 3 `cat` gave up (`--max-attempts` / `--give-up-after`); 4 `cat`'s queue overflowed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import connman

from ._status import endpoint

__all__ = ["main"]

_ENDPOINT_FORMS = "HOST:PORT, [IPv6]:PORT or unix:/path"

EXAMPLES = {
    "demo": """examples:
  connman demo                   a 20 s run with faults, then a summary
  connman demo --duration 8      a shorter one""",
    "cat": """examples:
  printf 'stats\\r\\nquit\\r\\n' | connman cat 127.0.0.1:11211
  tail -f app.log | connman cat -v --queue 10000000 logs.internal:5140
  connman cat --max-attempts 5 [::1]:6379 < commands.txt
  printf 'PING\r\n' | connman cat unix:/run/redis/redis.sock

exit status: 0 stdin sent, 2 bad arguments, 3 gave up, 4 queue overflow, 130 interrupted""",
    "watch": """examples:
  connman watch 127.0.0.1:11211 127.0.0.1:6379
  connman watch --once --timeout 2 db:5432 cache:11211 && echo all up
  connman watch unix:/run/redis/redis.sock 127.0.0.1:11211

exit status (--once): 0 all up, 1 at least one down, 2 bad arguments""",
}


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return int(text)


def _bytes(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of bytes >= 0, not {text!r}")
    return int(text)


def _add_retry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reconnecting")
    defaults = connman.Backoff()
    group.add_argument(
        "--initial", type=_positive, default=defaults.initial, help="first retry delay, s (%(default)s)"
    )
    group.add_argument(
        "--factor", type=float, default=defaults.factor, help="delay growth factor (%(default)s)"
    )
    group.add_argument(
        "--cap", type=_positive, default=defaults.cap, help="largest retry delay, s (%(default)s)"
    )
    group.add_argument(
        "--jitter",
        choices=["none", "full", "equal", "decorrelated"],
        default=defaults.jitter,
        help="(%(default)s)",
    )
    group.add_argument("--connect-timeout", type=_positive, default=10.0, help="per attempt, s (%(default)s)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connman",
        description="Managed TCP connections that come back: see them work, pipe through one, watch some.",
        epilog="Run `connman COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"connman {connman.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = argparse.RawDescriptionHelpFormatter

    demo = sub.add_parser(
        "demo",
        help="show connman reconnecting to a flaky local server",
        description="A pool and a single connection to an embedded echo server, through a fault proxy,"
        " with faults on a schedule; a live status table on a terminal; a summary at the end.",
        epilog=EXAMPLES["demo"],
        formatter_class=formatter,
    )
    demo.add_argument("--duration", type=_positive, default=20.0, help="seconds to run (default 20)")

    cat = sub.add_parser(
        "cat",
        help="a netcat that survives restarts of the other end",
        description="stdin to the connection, the connection to stdout; input is queued while the"
        " connection is down. Exits when stdin ends and the queue is flushed.",
        epilog=EXAMPLES["cat"],
        formatter_class=formatter,
    )
    cat.add_argument(
        "endpoint", type=endpoint, metavar="HOST:PORT", help="HOST:PORT, [IPv6]:PORT or unix:/path"
    )
    cat.add_argument("-v", "--verbose", action="store_true", help="report the connection's status on stderr")
    cat.add_argument("--queue", type=_bytes, default=1 << 20, help="bytes to queue while down (%(default)s)")
    cat.add_argument(
        "--linger", type=float, default=0.5, help="after stdin ends, print replies for this long"
    )
    cat.add_argument(
        "--max-attempts", type=_count, default=None, help="give up after N failed attempts in a row"
    )
    cat.add_argument(
        "--give-up-after", type=_positive, default=None, help="give up after being down this long, s"
    )
    _add_retry_options(cat)

    watch = sub.add_parser(
        "watch",
        help="live status of managed connections to each endpoint",
        description="A managed connection to each endpoint, with its state, time in state, attempts,"
        " connect latency and last error, until Ctrl-C.",
        epilog=EXAMPLES["watch"],
        formatter_class=formatter,
    )
    watch.add_argument(
        "endpoints",
        type=endpoint,
        nargs="+",
        metavar="HOST:PORT",
        help="HOST:PORT, [IPv6]:PORT or unix:/path",
    )
    watch.add_argument("--once", action="store_true", help="print one table and exit: 0 if all are up")
    watch.add_argument(
        "--timeout", type=_positive, default=2.0, help="with --once: how long to wait, s (%(default)s)"
    )
    watch.add_argument(
        "--interval", type=_positive, default=0.5, help="seconds between updates (%(default)s)"
    )
    _add_retry_options(watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run as demo

        return demo(duration=args.duration)
    try:
        backoff = connman.Backoff(initial=args.initial, factor=args.factor, cap=args.cap, jitter=args.jitter)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if args.command == "cat":
        from ._cat import run as cat

        return cat(args, backoff)
    from ._watch import run as watch

    return watch(args, backoff)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
