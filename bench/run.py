"""connman's benchmark suite: `python bench/run.py [--quick] [--runs N] [--plots DIR]` (`make bench`).

Builds a small C epoll server with the machine's compiler. Every client runs in a fresh process
pinned to core 0. The primary set-up pins the server to the same core 0: the run is then CPU-bound,
throughput is 1 / (client + server + kernel CPU per operation), and what a client library costs
shows. The split set-up (server on core 1) is printed as a second table for reference: there every
round trip pays the machine's cross-core wake-up, which swamps what the clients cost. Every row gives
the client's CPU time per operation beside the throughput.

Peers run side by side, in an order that keeps the two peers of each targeted ratio adjacent,
reversed every other run; each figure is the median of the runs with the min-max, and each ratio is
the median of per-run ratios (the two peers of a pair ran moments apart, so machine noise mostly
cancels). Prints Markdown tables, every target marked met or missed.

--quick runs a reduced version (one run, small amounts) that checks the suite works; CI runs it. It
makes no timing assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BUILD = BENCH / ".build"
NODE_DIR = BENCH / ".node"
PYTHON = sys.executable

#: In this order, each peer of a targeted ratio runs right before or after its partner (connman-uvloop
#: sits between both of its), so the two runs of a pair see the same machine.
STREAM_PEERS = [
    "asyncio-protocol",
    "connman-asyncio",
    "connman-asyncio+idle",
    "connman-asyncio+slow-check",
    "asyncio-buffered",
    "asyncio-streams",
    "twisted",
    "uvloop-protocol-control",
    "uvloop-protocol",
    "connman-uvloop",
    "node-connman-1.0",
    "node-net",
]


def run_order(peers: list[str], run: int) -> list[str]:
    """Forward on even runs, reversed on odd ones: no peer always first, partners stay adjacent."""
    return list(peers) if run % 2 == 0 else peers[::-1]


#: (numerator, denominator, target or None, workloads the target applies to); same-core figures.
RATIOS = [
    ("connman-uvloop", "uvloop-protocol", 0.97, ("w1", "w2")),
    ("connman-uvloop", "uvloop-protocol", 0.95, ("w3",)),
    ("connman-uvloop", "node-connman-1.0", 1.15, ("w1", "w2", "w3")),
    ("connman-asyncio", "asyncio-protocol", 1.7, ("w1", "w2")),
    ("connman-asyncio", "asyncio-protocol", 0.95, ("w3",)),
    ("connman-asyncio", "asyncio-buffered", None, ()),
    ("connman-asyncio+idle", "connman-asyncio", None, ()),
    ("connman-asyncio+slow-check", "connman-asyncio", None, ()),
    ("connman-uvloop", "twisted", None, ()),
    ("node-connman-1.0", "node-net", None, ()),
    ("uvloop-protocol-control", "uvloop-protocol", None, ()),  # A/A: the method's own error
]

#: W8 targets: managed / raw `Protocol` on the same loop, aggregate round trips/s.
W8_TARGETS = {("connman-uvloop", "uvloop-protocol"): 0.95, ("connman-asyncio", "asyncio-protocol"): 1.5}
#: W4 targets at the largest size: connect-all time managed / raw (at most), KB per connection (at most).
W4_TIME_TARGET = 1.1
#: The connect-all target is the default loop's (#16); on uvloop the ratio is reported, unmarked.
W4_TIME_TARGETED = {"connman-asyncio"}
W4_KB_TARGET = 5.0

#: Where the server runs: the client's core (primary), or the other one (reference).
LAYOUTS = {"same": "server and client on core 0", "split": "server on core 1, client on core 0"}

WORKLOADS = {
    "w1": "W1 ping-pong, round trips/s",
    "w2": "W2 pipelined (100 in flight), msgs/s",
    "w3": "W3 bulk, MB/s",
}


def build_server() -> Path:
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "epoll_server"
    source = BENCH / "epoll_server.c"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if compiler is None:
            raise SystemExit("bench needs a C compiler (cc, gcc or clang) for its server")
        subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def install_node_connman() -> str | None:
    """Install connman 1.0 from the npm registry into bench/.node; None if node is not usable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm not found: the node.js peers are skipped"
    if not (NODE_DIR / "node_modules" / "connman").exists():
        done = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_DIR),
                "connman@1.0.0",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"npm install connman@1.0.0 failed ({done.stderr.strip()[:200]}): node.js peers skipped"
    return None


def client_command(peer: str, workload: str, port: int, amount: int, *extra: str) -> list[str]:
    if peer.startswith("node-"):
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
        kind = "net" if peer == "node-net" else "connman"
        return [*pin, "node", str(BENCH / "node_peer.js"), kind, workload, str(port), str(amount)]
    return [PYTHON, str(BENCH / "peers.py"), peer, workload, str(port), str(amount), *extra]


#: Peers that are another peer run with an environment variable set.
PEER_ENVIRONMENT = {
    "connman-asyncio+slow-check": ("connman-asyncio", {"CONNMAN_SLOW_CALLBACK": "0.1"}),
    # The same peer twice: the ratio of the two is what the method cannot tell from 1.0.
    "uvloop-protocol-control": ("uvloop-protocol", {}),
}


def run_json(
    command: list[str], timeout: float = 300, env: dict[str, str] | None = None
) -> dict[str, object]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def spread(values: list[float], digits: int = 0) -> str:
    def fmt(value: float) -> str:
        return f"{value:,.{digits}f}"

    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


#: results[workload][peer] = [(value, client CPU µs per op), ...], one pair per run.
Results = dict[str, dict[str, list[tuple[float, float]]]]


def run_peer(peer: str, workload: str, port: int, amount: int, *extra: str) -> tuple[float, float]:
    actual, variables = PEER_ENVIRONMENT.get(peer, (peer, {}))
    env = {**os.environ, **variables} if variables else None
    result = run_json(client_command(actual, workload, port, amount, *extra), env=env)
    return float(result["value"]), float(result["cpu_us"])  # type: ignore[arg-type]


def stream_benchmarks(port_of: dict[str, int], runs: int, quick: bool, peers: list[str]) -> dict[str, object]:
    amounts = (
        {"w1": 2_000, "w2": 20_000, "w3": 64 << 20} if quick else {"w1": 20_000, "w2": 200_000, "w3": 1 << 30}
    )
    results: Results = {w: {p: [] for p in peers} for w in WORKLOADS}
    for run in range(runs):
        order = run_order(peers, run)
        for workload in WORKLOADS:
            port = port_of["bulk" if workload == "w3" else "echo"]
            for peer in order:
                results[workload][peer].append(run_peer(peer, workload, port, amounts[workload]))
        print(f"  run {run + 1}/{runs} done", file=sys.stderr, flush=True)
    return {"amounts": amounts, "results": results}


def cell(samples: list[tuple[float, float]], digits: int) -> str:
    values = [value for value, _ in samples]
    cpu = statistics.median(c for _, c in samples)
    return f"{spread(values, digits)} · {cpu:,.{3 if cpu < 1 else 1}f} µs"


def ratio_of(results: Results, workload: str, top: str, bottom: str) -> float:
    pairs = zip(results[workload][top], results[workload][bottom], strict=True)
    return statistics.median(a[0] / b[0] for a, b in pairs)


def print_stream_tables(data: dict[str, object], peers: list[str], layout: str) -> None:
    results: Results = data["results"]  # type: ignore[assignment]
    runs = len(results["w1"][peers[0]])
    print(f"### W1-W3, {LAYOUTS[layout]}, {runs} run(s)\n")
    print("Each cell: throughput, median (min-max) · the client's CPU time per round trip / message / MB.\n")
    print("| client | " + " | ".join(WORKLOADS.values()) + " |")
    print("|---|" + "---|" * len(WORKLOADS))
    for peer in peers:
        cells = [
            cell(results[w][peer], 1 if w == "w3" and results[w][peer][0][0] < 100 else 0) for w in WORKLOADS
        ]
        print(f"| {peer} | " + " | ".join(cells) + " |")
    print()
    print("| ratio (median of per-run ratios) | W1 | W2 | W3 | target |")
    print("|---|---|---|---|---|")
    seen: set[tuple[str, str]] = set()
    for top, bottom, _, _ in RATIOS:
        if (top, bottom) in seen or top not in peers or bottom not in peers:
            continue
        seen.add((top, bottom))
        cells, targets = [], []
        for workload in WORKLOADS:
            ratio = ratio_of(results, workload, top, bottom)
            goal = next((t for a, b, t, ws in RATIOS if (a, b) == (top, bottom) and workload in ws), None)
            if layout != "same":
                goal = None  # the targets are for the same-core set-up
            mark = "" if goal is None else (" ✓ met" if ratio >= goal else " ✗ missed")
            cells.append(f"{ratio:.3f}{mark}")
            if goal is not None:
                targets.append(f"{workload.upper()} ≥ {goal}")
        print(f"| {top} / {bottom} | " + " | ".join(cells) + f" | {', '.join(targets) or '-'} |")
    print()


def many_busy(port: int, runs: int, quick: bool) -> dict[str, object]:
    """W8: 1,000 connections ping-ponging at once on one loop, managed against raw `Protocol`."""
    # 200 round trips each (200,000 in all, about 4 s): long enough that the start, where 1,000
    # connections write at once, is a small part of a run.
    connections, amount = (100, 20) if quick else (1_000, 200)
    peers = ["asyncio-protocol", "connman-asyncio", "uvloop-protocol", "connman-uvloop"]
    results: dict[str, list[dict[str, float]]] = {p: [] for p in peers}
    for run in range(runs):
        order = run_order(peers, run)
        for peer in order:
            command = client_command(peer, "w8", port, amount, str(connections))
            results[peer].append(run_json(command))  # type: ignore[arg-type]
    print(f"### W8: {connections:,} connections busy at once, 64-byte ping-pong, {amount} round trips each\n")
    print(
        "Per round trip: the client's CPU time, split into user (the client's code) and system (the"
        " kernel's, with the server on the same core), and how often the client was switched out (the"
        " server preempting it, or a wait for data).\n"
    )
    print("| client | aggregate round trips/s | client CPU per round trip | user · system | switched out |")
    print("|---|---|---|---|---|")
    for peer in peers:
        rows = results[peer]
        med = {
            key: statistics.median(row[key] for row in rows)
            for key in ("cpu_us", "user_us", "sys_us", "switches")
        }
        print(
            f"| {connections:,} × {peer} | {spread([row['value'] for row in rows])} | {med['cpu_us']:.2f} µs"
            f" | {med['user_us']:.2f} · {med['sys_us']:.2f} µs | {med['switches']:.3f} |"
        )
    print()
    for (top, bottom), goal in W8_TARGETS.items():
        pairs = zip(results[top], results[bottom], strict=True)
        ratio = statistics.median(a["value"] / b["value"] for a, b in pairs)
        mark = "✓ met" if ratio >= goal else "✗ missed"
        print(f"- W8 {top} / {bottom} = {ratio:.3f} (target ≥ {goal}: {mark})")
    print()
    return {"connections": connections, "amount": amount, "results": results}


#: The interleaved W1's target: connman's round trip against raw uvloop's in the same process.
W1I_TARGETS = {"connman-uvloop": 0.97}


def interleaved_w1(port: int, runs: int, quick: bool) -> dict[str, list[dict[str, float]]]:
    """W1 with connman and two raw `Protocol` connections taking turns in one process (peers.py w1i).

    Round trip by round trip, so that what the machine does meanwhile falls on both alike; the
    second raw connection is an A/A control, whose ratio to the first is the method's error.
    """
    amount = 2_000 if quick else 40_000
    peers = ["connman-uvloop", "connman-asyncio"]
    results: dict[str, list[dict[str, float]]] = {peer: [] for peer in peers}
    for run in range(runs):
        for peer in run_order(peers, run):
            results[peer].append(run_json(client_command(peer, "w1i", port, amount)))  # type: ignore[arg-type]
    print(f"### W1 interleaved: one connman and two raw `Protocol` connections taking turns, {runs} run(s)\n")
    print(
        f"{amount:,} round trips per run in all, each timed; per run, the ratio of the median round trips.\n"
    )
    print("| loop | connman / raw | raw control / raw (A/A) | round trip, raw · connman | target |")
    print("|---|---|---|---|---|")
    for peer in peers:
        rows = results[peer]
        ratio = statistics.median(row["value"] for row in rows)
        raw_us = statistics.median(row["raw_us"] for row in rows)
        peer_us = statistics.median(row["peer_us"] for row in rows)
        goal = W1I_TARGETS.get(peer)
        target = "-" if goal is None else f"≥ {goal}: {'✓ met' if ratio >= goal else '✗ missed'}"
        print(
            f"| {peer.removeprefix('connman-')} | {spread([row['value'] for row in rows], 3)}"
            f" | {spread([row['control'] for row in rows], 3)} | {raw_us:.1f} · {peer_us:.1f} µs | {target} |"
        )
    print(
        "\nNo target for the default loop here: its raw `Protocol` costs about half as much in a process"
        " shared with connman as alone (docs/performance.md), so only W1 above measures it.\n"
    )
    return results


def fanout(port: int, runs: int, quick: bool) -> dict[str, dict[str, list[dict[str, float]]]]:
    sizes = [200] if quick else [1_000, 5_000, 10_000]
    peers = ["asyncio-protocol", "connman-asyncio", "uvloop-protocol", "connman-uvloop"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for size in sizes:
        results[str(size)] = {peer: [] for peer in peers}
        repeat = runs if size == sizes[-1] else 1  # the target is at the largest size: paired runs there
        for run in range(repeat):
            for peer in run_order(peers, run):
                result = run_json(client_command(peer, "fanout", port, size), timeout=600)
                results[str(size)][peer].append(result)  # type: ignore[arg-type]
    print(
        "| W4 fan-out | connect all, s | client CPU per connection | RSS per connection, KB | idle CPU, % |"
    )
    print("|---|---|---|---|---|")
    for size, by_peer in results.items():
        for peer, rs in by_peer.items():
            med = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            print(
                f"| {int(size):,} × {peer} | {med['connect_all_s']:.3f} | {med['cpu_us']:.1f} µs"
                f" | {med['kb_per_connection']:.1f} | {med['idle_cpu_percent']:.2f} |"
            )
    print()
    largest = str(sizes[-1])
    for size, by_peer in results.items():
        for managed, raw in (("connman-asyncio", "asyncio-protocol"), ("connman-uvloop", "uvloop-protocol")):
            pairs = zip(by_peer[managed], by_peer[raw], strict=True)
            pairs = list(pairs)
            ratio = statistics.median(a["connect_all_s"] / b["connect_all_s"] for a, b in pairs)
            cpu_ratio = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in pairs)
            kb = statistics.median(r["kb_per_connection"] for r in by_peer[managed])
            if size == largest:
                if managed in W4_TIME_TARGETED:
                    time_mark = "✓ met" if ratio <= W4_TIME_TARGET else "✗ missed"
                    time_target = f"target ≤ {W4_TIME_TARGET}: {time_mark}"
                else:
                    time_target = "no target on this loop"
                kb_mark = "✓ met" if kb <= W4_KB_TARGET else "✗ missed"
                print(
                    f"- {int(size):,} connections: connect-all {managed} / {raw} = {ratio:.3f}"
                    f" ({time_target}), client CPU {cpu_ratio:.2f}x;"
                    f" {kb:.1f} KB per connection (target ≤ {W4_KB_TARGET:g}: {kb_mark})"
                )
            else:
                print(
                    f"- {int(size):,} connections: connect-all {managed} / {raw} = {ratio:.2f},"
                    f" client CPU {cpu_ratio:.2f}x"
                )
    print()
    return results


def recovery(quick: bool) -> dict[str, object]:
    flag = ["--quick"] if quick else []
    w5 = run_json([PYTHON, str(BENCH / "recovery.py"), "w5", *flag], timeout=600)
    print("| W5 outage | policy | recovery lag median | min-max |")
    print("|---|---|---|---|")
    for outage, by_policy in w5["outages"].items():  # type: ignore[attr-defined]
        for policy, r in by_policy.items():
            print(
                f"| {float(outage):.0f} s | {policy} | {r['median_s'] * 1000:.0f} ms | {r['min_s'] * 1000:.0f}-{r['max_s'] * 1000:.0f} ms |"
            )
    print()
    w6 = run_json([PYTHON, str(BENCH / "recovery.py"), "w6", *flag], timeout=600)
    if not w6["counted_syns"]:
        print("W6: not root, so SYNs were not counted; only the time until all were back is shown.")
    print(
        f"| W6 storm, {w6['clients']} clients, 2 s outage | SYNs | peak 10 ms window after 1 s (of attempts / of clients) | all back |"
    )
    print("|---|---|---|---|")
    for policy, r in w6["policies"].items():  # type: ignore[attr-defined]
        shares = (
            f"{r['peak_share_of_attempts_after_1s']:.1%} / {r['peak_share_of_clients_after_1s']:.1%}"
            if r["peak_share_of_attempts_after_1s"] is not None
            else "-"
        )
        print(f"| {policy} | {r['attempts']} | {shares} | {r['all_back_s'] * 1000:.0f} ms |")
    print()
    return {"w5": w5, "w6": w6}


def sync_writes(ports: dict[str, int], runs: int, quick: bool) -> dict[str, list[float]]:
    count = 20_000 if quick else 200_000
    results: dict[str, list[float]] = {"connman": [], "sendall": []}
    for run in range(runs):
        for mode in ["connman", "sendall"] if run % 2 == 0 else ["sendall", "connman"]:
            command = [PYTHON, str(BENCH / "sync_writes.py"), mode, str(ports["sink"]), str(count)]
            results[mode].append(float(run_json(command)["value"]))  # type: ignore[arg-type]
    ratio = statistics.median(a / b for a, b in zip(results["connman"], results["sendall"], strict=True))
    print("| W7 sync writes, 64-byte records, one thread | records/s |")
    print("|---|---|")
    for mode, values in results.items():
        print(
            f"| {'connman write() via the loop thread' if mode == 'connman' else 'blocking socket.sendall()'} | {spread(values)} |"
        )
    print(f"\nW7 ratio connman / sendall: {ratio:.2f} (target ≥ 0.5)\n")
    return results


def svg_plots(recovered: dict[str, object], directory: Path) -> None:
    from plots import storm_svg, w5_svg  # bench/plots.py

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "w5-recovery.svg").write_text(w5_svg(recovered["w5"]))  # type: ignore[arg-type]
    (directory / "w6-storm.svg").write_text(storm_svg(recovered["w6"]))  # type: ignore[arg-type]
    print(f"plots written to {directory}/w5-recovery.svg and w6-storm.svg\n")


def start_server(cpu: int) -> tuple[subprocess.Popen[str], dict[str, int]]:
    server = subprocess.Popen([str(build_server()), str(cpu)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    echo, bulk, sink = (int(port) for port in server.stdout.readline().split())
    return server, {"echo": echo, "bulk": bulk, "sink": sink}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run that checks the suite works")
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per peer, same core (default 5, quick 1)"
    )
    parser.add_argument(
        "--split-runs", type=int, default=None, help="runs per peer, split (default 3, quick 1)"
    )
    parser.add_argument("--plots", type=Path, default=None, help="write the W5/W6 SVG plots here")
    parser.add_argument("--only", default="w1,w2,w3,w1i,w4,w5,w6,w7,w8,w9", help="comma-separated workloads")
    parser.add_argument("--peers", default=None, help="comma-separated W1-W3 peers (default: all)")
    parser.add_argument("--layouts", default="same,split", help="W1-W3 set-ups: same, split or both")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    split_runs = args.split_runs or (1 if args.quick else 3)
    only = set(args.only.split(","))
    layouts = [layout for layout in args.layouts.split(",") if layout in LAYOUTS]
    started = time.monotonic()

    two_cores = (os.cpu_count() or 1) > 1
    same_server, same_ports = start_server(0)
    split_server, split_ports = start_server(1) if two_cores else (same_server, same_ports)
    if not two_cores:
        layouts = ["same"]
    ports = {"same": same_ports, "split": split_ports}
    results: dict[str, object] = {}
    try:
        print(f"# connman benchmarks{' (quick)' if args.quick else ''}\n")
        print(
            f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()},"
            f" node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip() if shutil.which('node') else '-'};"
            f" every client pinned to core 0, the server (C, epoll) to core 0 too (W1-W3 primary, W4, W8)"
            f" or to core 1 (W1-W3 split, W7); {runs} run(s) per peer same-core, {split_runs} split.\n"
        )
        peers = list(STREAM_PEERS) if args.peers is None else args.peers.split(",")
        skipped = install_node_connman()
        if skipped:
            print(f"{skipped}\n")
            peers = [p for p in peers if not p.startswith("node-")]
        try:
            import twisted  # noqa: F401
        except ImportError:
            if "twisted" in peers:
                print("Twisted is not installed (pip install '.[bench]'): its peer is skipped\n")
                peers.remove("twisted")
        if only & {"w1", "w2", "w3"}:
            results["stream"] = {}
            for layout in layouts:
                count = runs if layout == "same" else split_runs
                stream = stream_benchmarks(ports[layout], count, args.quick, peers)
                print_stream_tables(stream, peers, layout)
                results["stream"][layout] = stream  # type: ignore[index]
        if "w1i" in only:
            results["w1i"] = interleaved_w1(same_ports["echo"], runs, args.quick)
        if "w8" in only:
            results["w8"] = many_busy(same_ports["echo"], runs, args.quick)
        if "w4" in only:
            results["w4"] = fanout(same_ports["echo"], 1 if args.quick else 5, args.quick)
        if only & {"w5", "w6"}:
            recovered = recovery(args.quick)
            results["recovery"] = recovered
            if args.plots:
                svg_plots(recovered, args.plots)
        if "w7" in only:
            results["w7"] = sync_writes(split_ports, max(runs, 1 if args.quick else 3), args.quick)
        if "w9" in only and shutil.which("redis-server"):  # bench/w9_pipeline.py: Pipeline vs raw vs redis-py
            import w9_pipeline

            ops = 5_000 if args.quick else 100_000
            results["w9"] = w9_pipeline.w9(runs, ops)
            w9_pipeline.print_table(results["w9"], runs, ops)  # type: ignore[arg-type]
    finally:
        for server in {id(same_server): same_server, id(split_server): split_server}.values():
            server.kill()
            server.wait()
    out = BENCH / ".results"
    out.mkdir(exist_ok=True)
    (out / ("quick.json" if args.quick else "latest.json")).write_text(json.dumps(results))
    print(f"done in {time.monotonic() - started:.0f} s; raw results in {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    main()
