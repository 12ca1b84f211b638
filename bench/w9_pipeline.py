"""W9: pipelined request/response against a real redis-server, 100 requests in flight.

    python bench/w9_pipeline.py [--quick] [--runs N] [--ops N]

Peers, each in a fresh client process on asyncio's default loop:

- `connman-pipeline`: `connman.Pipeline` + `connman.framing.lines(delimiter=b"\\r\\n")`, 100 tasks
  awaiting `pipeline.request()` (each with the default 10 s timeout).
- `raw-protocol`: the same protocol by hand on an asyncio `Protocol`: a FIFO of futures, split on
  CRLF, no timeout (the lean lower bound of hand-written code).
- `raw-protocol+timeout`: the same with `asyncio.timeout()` around each request, as a hand-written
  client that never hangs must have.
- `redis-py-tasks`: redis-py's asyncio client, 100 tasks calling `await r.ping()` (its pool opens a
  connection per concurrent caller).
- `redis-py-pipeline`: redis-py's asyncio pipeline, batches of 100 PINGs on one connection.

The request is a 64-byte inline PING (`PING` padded with spaces, CRLF) answered `+PONG`; redis-py
sends its own RESP PING. Client and server are pinned together on core 0 (`taskset -c 0`), so a
faster client leaves the server more of the core, as in a real single-core deployment. Each run
rotates the peers' order; each ratio is the median of per-run ratios against `raw-protocol` (paired
runs: machine noise mostly cancels). The client's CPU time per request (user + system, from
`time.process_time()`) is shown beside each throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUEST = b"PING".ljust(62) + b"\r\n"
ANSWER = b"+PONG"
IN_FLIGHT = 100
PEERS = ["connman-pipeline", "raw-protocol", "raw-protocol+timeout", "redis-py-tasks", "redis-py-pipeline"]
BASELINE = "raw-protocol"

assert len(REQUEST) == 64


def pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


# ---- the clients (run in a process of their own) ------------------------------------------------


async def run_tasks(request: object, ops: int) -> None:
    per_task = ops // IN_FLIGHT

    async def worker() -> None:
        for _ in range(per_task):
            answer = await request(REQUEST)  # type: ignore[operator]
            assert answer == ANSWER, answer

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def connman_pipeline(port: int, ops: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import connman

    async with connman.ConnectionManager() as cm:
        pipeline: connman.Pipeline[bytes] = connman.Pipeline(
            lambda on_frame: connman.framing.lines(on_frame, delimiter=b"\r\n")
        )
        conn = pipeline.connect(port, "127.0.0.1", manager=cm)
        assert await conn.wait_connected(5)
        await run_tasks(pipeline.request, ops)
        await pipeline.close()


class RawClient(asyncio.Protocol):
    """The hand-written peer: what a careful user writes on asyncio without a library."""

    def __init__(self) -> None:
        self.rest = b""
        self.waiting: deque[asyncio.Future[bytes]] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
        lines = data.split(b"\r\n")
        self.rest = lines.pop()
        waiting = self.waiting
        for line in lines:
            future = waiting.popleft()
            if not future.done():
                future.set_result(line)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError("lost"))

    async def request(self, data: bytes) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        assert self.transport is not None
        self.transport.write(data)
        return await future

    async def request_with_timeout(self, data: bytes) -> bytes:
        async with asyncio.timeout(10):
            return await self.request(data)


async def raw_protocol(port: int, ops: int, with_timeout: bool) -> None:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(RawClient, "127.0.0.1", port)
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await run_tasks(client.request_with_timeout if with_timeout else client.request, ops)
    transport.close()


async def redis_py_tasks(port: int, ops: int) -> None:
    import redis.asyncio as redis

    client = redis.Redis(port=port, max_connections=IN_FLIGHT)

    async def ping(_: bytes) -> bytes:
        return ANSWER if await client.ping() else b"?"

    await run_tasks(ping, ops)
    await client.aclose()


async def redis_py_pipeline(port: int, ops: int) -> None:
    import redis.asyncio as redis

    client = redis.Redis(port=port)
    for _ in range(ops // IN_FLIGHT):
        pipe = client.pipeline(transaction=False)
        for _ in range(IN_FLIGHT):
            pipe.ping()
        answers = await pipe.execute()
        assert all(answers)
    await client.aclose()


def client_main(peer: str, port: int, ops: int) -> None:
    runs = {
        "connman-pipeline": lambda: connman_pipeline(port, ops),
        "raw-protocol": lambda: raw_protocol(port, ops, False),
        "raw-protocol+timeout": lambda: raw_protocol(port, ops, True),
        "redis-py-tasks": lambda: redis_py_tasks(port, ops),
        "redis-py-pipeline": lambda: redis_py_pipeline(port, ops),
    }
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runs[peer]())  # a warm-up: connections, imports, caches
    cpu, wall = time.process_time(), time.perf_counter()
    loop.run_until_complete(runs[peer]())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    loop.close()
    done = ops // IN_FLIGHT * IN_FLIGHT
    print(json.dumps({"ops_per_s": done / wall, "cpu_us_per_op": cpu / done * 1e6}))


# ---- the driver ---------------------------------------------------------------------------------


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*pin(), *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.02)
    server.kill()
    raise RuntimeError("redis-server did not start")


def peers_available() -> list[str]:
    try:
        import redis  # noqa: F401
    except ImportError:
        return [peer for peer in PEERS if not peer.startswith("redis-py")]
    return PEERS


def w9(runs: int = 5, ops: int = 100_000) -> list[dict[str, object]]:
    """Run W9: one row per peer with its median throughput (requests/s, min-max), the client's CPU
    time per request (µs) and the median of its per-run ratios to `raw-protocol`."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("W9 needs redis-server (apt-get install redis-server)")
    peers = peers_available()
    server, port = start_redis()
    results: dict[str, list[dict[str, float]]] = {peer: [] for peer in peers}
    try:
        for run in range(runs):
            order = peers[run % len(peers) :] + peers[: run % len(peers)]
            for peer in order:
                output = subprocess.run(
                    [
                        *pin(),
                        sys.executable,
                        __file__,
                        "--client",
                        peer,
                        "--port",
                        str(port),
                        "--ops",
                        str(ops),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                )
                results[peer].append(json.loads(output.stdout.strip().splitlines()[-1]))
    finally:
        server.kill()
        server.wait()
    rows: list[dict[str, object]] = []
    for peer in peers:
        rates = [r["ops_per_s"] for r in results[peer]]
        ratios = [
            r["ops_per_s"] / b["ops_per_s"] for r, b in zip(results[peer], results[BASELINE], strict=True)
        ]
        rows.append(
            {
                "peer": peer,
                "ops_per_s": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "cpu_us_per_op": statistics.median(r["cpu_us_per_op"] for r in results[peer]),
                "ratio": statistics.median(ratios),
                "ratios": ratios,
            }
        )
    return rows


def print_table(rows: list[dict[str, object]], runs: int, ops: int) -> None:
    print(
        f"### W9 pipelined PING against redis-server, {IN_FLIGHT} in flight ({runs} paired runs x {ops} requests)\n"
    )
    print(
        f"| peer | requests/s (median, min-max) | client CPU µs/request | ratio to {BASELINE} (median of runs) |"
    )
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['peer']} | {row['ops_per_s']:,.0f} ({row['min']:,.0f}-{row['max']:,.0f}) "
            f"| {row['cpu_us_per_op']:.1f} | {row['ratio']:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run: checks that W9 works")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ops", type=int, default=100_000, help="requests per peer per run")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.port, args.ops)
        return
    runs, ops = (1, 5_000) if args.quick else (args.runs, args.ops)
    print_table(w9(runs, ops), runs, ops)


if __name__ == "__main__":
    main()
