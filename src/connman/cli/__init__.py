"""The `connman` command: `connman demo`, `connman cat HOST:PORT`, `connman watch HOST:PORT...`.

Exit status: 0 success; 1 `demo` did not recover everything, or `watch --once` found an endpoint down;
2 bad arguments; 3 `cat` gave up (`--max-attempts` / `--give-up-after`) with input unsent; 130
interrupted (Ctrl-C); 141 `cat`'s stdout closed (`| head`). 4 is not used: `cat` pushes back on stdin
rather than overflow (decision 28).
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
  printf 'PING\\r\\n' | connman cat unix:/run/redis/redis.sock

exit status: 0 stdin sent, 2 bad arguments, 3 gave up with input unsent, 130 interrupted,
141 stdout closed (| head)""",
    "watch": """examples:
  connman watch 127.0.0.1:11211 127.0.0.1:6379
  connman watch --once --timeout 2 db:5432 cache:11211 && echo all up
  connman watch unix:/run/redis/redis.sock 127.0.0.1:11211
  connman watch --metrics-port 9464 db:5432 cache:11211   Prometheus metrics too

exit status: (--once) 0 all up, 1 at least one down; 2 bad arguments, 130 interrupted""",
}

EXIT_STATUSES = """exit status:
  0    success
  1    demo: not everything recovered; watch --once: an endpoint is down
  2    bad arguments
  3    cat: gave up (--max-attempts, --give-up-after) with input unsent
  130  interrupted (Ctrl-C)
  141  cat: stdout closed (a `| head` that stopped reading)"""

EXIT_INTERRUPTED = 130


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None


def _positive(text: str) -> float:
    value = _number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535 (0: any free one), not {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return int(text)


def _bytes(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of bytes >= 0, not {text!r}")
    return int(text)


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, not {text!r}") from None
    try:
        connman.Backoff(factor=value)  # Backoff's own rule, so the two cannot disagree
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


#: The Backoff fields the retry flags set, by flag.
BACKOFF_FLAGS = {"initial": "--initial", "factor": "--factor", "cap": "--cap", "jitter": "--jitter"}


def _add_retry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reconnecting")
    defaults = connman.Backoff()
    group.add_argument(
        "--initial", type=_positive, default=defaults.initial, help="first retry delay, s (%(default)s)"
    )
    group.add_argument(
        "--factor", type=_factor, default=defaults.factor, help="delay growth factor, >= 1 (%(default)s)"
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
    parser.set_defaults(parser=parser)  # so that errors found after parsing show this command's usage


def _backoff(args: argparse.Namespace) -> connman.Backoff:
    """The retry flags as a `Backoff`; a usage error of the command, naming the flag, if they clash."""
    try:
        return connman.Backoff(initial=args.initial, factor=args.factor, cap=args.cap, jitter=args.jitter)
    except (TypeError, ValueError) as exc:
        field = str(exc).split(" ", 1)[0]  # Backoff's messages start with the field at fault
        flag = BACKOFF_FLAGS.get(field)
        command: argparse.ArgumentParser = args.parser
        command.error(f"argument {flag}: {exc}" if flag else str(exc))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connman",
        description="Managed TCP connections that come back: see them work, pipe through one, watch some.",
        epilog="Run `connman COMMAND --help` for each command's options and examples.\n\n" + EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    demo.set_defaults(parser=demo)

    cat = sub.add_parser(
        "cat",
        help="a netcat that survives restarts of the other end",
        description="stdin to the connection, the connection to stdout. While the connection is down,\n"
        "input is queued (up to --queue bytes); once the queue is full, cat stops reading stdin until\n"
        "the connection is back (bytes in flight when a connection drops can be lost with it).\n"
        "Exits when stdin ends and everything read has been sent.",
        epilog=EXAMPLES["cat"],
        formatter_class=formatter,
    )
    cat.add_argument(
        "endpoint", type=endpoint, metavar="HOST:PORT", help="HOST:PORT, [IPv6]:PORT or unix:/path"
    )
    cat.add_argument("-v", "--verbose", action="store_true", help="report the connection's status on stderr")
    cat.add_argument(
        "--queue",
        type=_bytes,
        default=1 << 20,
        help="bytes to queue while down, then stop reading stdin (%(default)s)",
    )
    cat.add_argument(
        "--linger",
        type=_non_negative,
        default=0.5,
        help="after everything is sent, print replies for this long, s (%(default)s)",
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
    watch.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also serve Prometheus metrics at http://ADDR:PORT/metrics (needs connman[prometheus];"
        " 0 picks a free port; the URL goes to stderr)",
    )
    watch.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="the address --metrics-port listens on (%(default)s; 0.0.0.0 for every interface)",
    )
    _add_retry_options(watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see `connman --help`)."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # a usage error of the command, with its usage, not the top level's
            command: argparse.ArgumentParser = getattr(args, "parser", parser)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling: while starting, say
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from ._demo import run as demo

        return demo(duration=args.duration)
    backoff = _backoff(args)
    if args.command == "cat":
        from ._cat import run as cat

        return cat(args, backoff)
    from ._watch import run as watch

    return watch(args, backoff)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
