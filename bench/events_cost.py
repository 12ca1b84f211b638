"""What observing a manager costs on the data path: W1 and W2 with an event listener and both metric
exporters on (OpenTelemetry with the SDK's in-memory reader, and a Prometheus endpoint being served),
against the same connman without them.

    python bench/events_cost.py [--runs 7] [--callgrind] [--quick]

Two measures, each on bench/epoll_server.c (built here, as bench/run.py builds it):

- paired wall-clock runs: each run is a fresh process per variant, the two variants moments apart and
  in alternating order; the figure is the median of the per-pair ratios (observed / plain);
- with --callgrind, instruction counts under `valgrind --tool=callgrind`, which are repeatable on a
  loaded machine: each variant runs N and 2N messages, and the difference is the cost of N messages,
  start-up and imports (OpenTelemetry's are large) cancelled out.

Events are per state change, never per read or write, so the ratio should be 1 within the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from run import build_server  # bench/run.py's: the same C server, built once

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

VARIANTS = ("plain", "observed")


async def run_variant(variant: str, kind: str, port: int, amount: int) -> dict[str, float]:
    from peers import Work

    import connman

    work = Work(kind, amount)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    work.on_done = lambda: done.set_result(None)
    async with connman.ConnectionManager() as cm:
        closers: list[Any] = []
        if variant == "observed":
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            import connman.otel
            import connman.prometheus

            seen: list[object] = []
            cm.subscribe(seen.append)
            reader = InMemoryMetricReader()
            provider = MeterProvider(metric_readers=[reader])
            closers += [connman.otel.instrument(cm, meter_provider=provider).uninstrument, provider.shutdown]
            closers.append(connman.prometheus.serve(cm, 0).close)
        conn = cm.connect(port, "127.0.0.1", on_data=lambda data: work.data(len(data)))
        await conn.wait_connected(10)
        work.begin(conn.write)
        await done
    for close in closers:
        close()
    return work.result()


def child(variant: str, kind: str, port: int, amount: int, prefix: list[str] | None = None) -> dict[str, Any]:
    command = [*(prefix or []), sys.executable, __file__, "--child", variant, kind, str(port), str(amount)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def instructions(variant: str, kind: str, port: int, amount: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        child(variant, kind, port, amount, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
        text = Path(out).read_text()
    match = re.search(r"^summary: (\d+)", text, re.MULTILINE) or re.search(
        r"^totals: (\d+)", text, re.MULTILINE
    )
    if match is None:
        raise RuntimeError("no instruction count in the callgrind output")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="paired runs per workload (default 7)")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions with valgrind")
    parser.add_argument("--quick", action="store_true", help="small amounts: checks that the script works")
    parser.add_argument(
        "--child", nargs=4, metavar=("VARIANT", "WORKLOAD", "PORT", "AMOUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        variant, kind, port, amount = args.child
        print(json.dumps(asyncio.run(run_variant(variant, kind, int(port), int(amount)))))
        return

    amounts = {"w1": 2_000, "w2": 20_000} if args.quick else {"w1": 20_000, "w2": 200_000}
    server = subprocess.Popen([str(build_server()), "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        echo = int(server.stdout.readline().split()[0])
        print(
            "| workload | plain (median) | observed (median) | observed / plain: median of pair ratios (min-max) |"
        )
        print("|---|---|---|---|")
        for kind, amount in amounts.items():
            values: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            ratios = []
            for run in range(1 if args.quick else args.runs):
                order = VARIANTS if run % 2 == 0 else VARIANTS[::-1]
                pair = {variant: child(variant, kind, echo, amount)["value"] for variant in order}
                for variant in VARIANTS:
                    values[variant].append(pair[variant])
                ratios.append(pair["observed"] / pair["plain"])
            print(
                f"| {kind} | {statistics.median(values['plain']):,.0f} | {statistics.median(values['observed']):,.0f}"
                f" | {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |"
            )
        if args.callgrind:
            if shutil.which("valgrind") is None:
                raise SystemExit("--callgrind needs valgrind (apt-get install valgrind)")
            print()
            print("| workload | messages | plain, instructions per message | observed | observed / plain |")
            print("|---|---|---|---|---|")
            small = {"w1": 1_000, "w2": 10_000} if args.quick else {"w1": 4_000, "w2": 40_000}
            for kind, amount in small.items():
                per = {}
                for variant in VARIANTS:
                    once = instructions(variant, kind, echo, amount)
                    twice = instructions(variant, kind, echo, 2 * amount)
                    per[variant] = (twice - once) / amount
                print(
                    f"| {kind} | {amount:,} | {per['plain']:,.0f} | {per['observed']:,.0f}"
                    f" | {per['observed'] / per['plain']:.4f} |"
                )
    finally:
        server.kill()
        server.wait(5)


if __name__ == "__main__":
    main()
