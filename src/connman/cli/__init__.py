"""The `connman` command: `connman demo`, `connman cat HOST:PORT`, `connman watch HOST:PORT...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="connman", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="show connman reconnecting to a flaky local server")
    demo.add_argument("--duration", type=float, default=8.0, help="seconds to run (default 8)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        return run(duration=args.duration)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
