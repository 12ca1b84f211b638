"""W5 recovery lag and W6 reconnect storm, in one process: `python bench/recovery.py w5|w6 [--quick]`.

W5: CLIENTS connections per policy (connman's default, and the original's schedule via
`Backoff.original()`) to a server that goes down for 5 s / 15 s / 30 s (all three at once, each on its
own server) and comes back; the lag is the time from the server listening again to each `on_connect`.

W6: 1,000 connections, one server restart with a 2 s outage, per policy (default, and default without
jitter); attempts are the SYNs counted on the wire (root) and the time until all are back. Prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import connman
from connman._backoff import peak_window_share
from connman.testing import EchoServer, SynCounter

POLICIES = {"default": connman.Backoff(), "original": connman.Backoff.original()}


async def outage(seconds: float, clients: int) -> dict[str, dict[str, float]]:
    server = await EchoServer().start()
    lags: dict[str, list[float]] = {name: [] for name in POLICIES}
    back_at = 0.0
    async with connman.ConnectionManager() as cm:
        conns = []
        for name, policy in POLICIES.items():
            for _ in range(clients):

                def on_connect(conn: connman.Connection, name: str = name) -> None:
                    if back_at:
                        lags[name].append(time.monotonic() - back_at)

                conns.append(cm.connect(server.port, "127.0.0.1", on_connect=on_connect, backoff=policy))
        for conn in conns:
            await conn.wait_connected(10)
        await asyncio.sleep(1.0)  # stable: every backoff starts afresh at the drop
        await server.stop()
        await asyncio.sleep(seconds)
        back_at = time.monotonic()
        await server.start()
        async with asyncio.timeout(200):
            for conn in conns:
                await conn.wait_connected()
    await server.stop()
    return {
        name: {"median_s": statistics.median(values), "max_s": max(values), "min_s": min(values)}
        for name, values in lags.items()
    }


async def w5(quick: bool) -> dict[str, object]:
    outages = [1.0] if quick else [5.0, 15.0, 30.0]
    clients = 5 if quick else 20
    results = await asyncio.gather(*(outage(seconds, clients) for seconds in outages))
    return {
        "clients_per_policy": clients,
        "outages": dict(zip([str(o) for o in outages], results, strict=True)),
    }


async def storm(policy: connman.Backoff, clients: int, down: float) -> dict[str, object]:
    async with EchoServer() as server, connman.ConnectionManager() as cm:
        conns = [cm.connect(server.port, "127.0.0.1", backoff=policy) for _ in range(clients)]
        for conn in conns:
            await conn.wait_connected(20)
        await asyncio.sleep(policy.min_uptime)
        counter = SynCounter(server.port) if os.geteuid() == 0 else None
        dropped = time.time()
        await server.stop()
        await asyncio.sleep(down)
        back = time.time()
        await server.start()
        async with asyncio.timeout(60):
            for conn in conns:
                await conn.wait_connected()
        all_back = time.time() - back
        await asyncio.sleep(0.05)
    times = []
    if counter is not None:
        counter.close()
        times = [t - dropped for t in counter.times]
    late = [t for t in times if t >= 1.0]
    return {
        "attempts": len(times),
        "peak_share_of_attempts_after_1s": peak_window_share(late, 0.01, 1.0, len(late)) if late else None,
        "peak_share_of_clients_after_1s": peak_window_share(late, 0.01, 1.0, clients) if late else None,
        "all_back_s": all_back,
        "down_s": down,
        "timeline": times,
    }


async def w6(quick: bool) -> dict[str, object]:
    clients = 200 if quick else 1000
    policies = {"default": connman.Backoff(), "no jitter": connman.Backoff(jitter="none")}
    return {
        "clients": clients,
        "counted_syns": os.geteuid() == 0,
        "policies": {name: await storm(policy, clients, 2.0) for name, policy in policies.items()},
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    workload = sys.argv[1]
    result = asyncio.run(w5(quick) if workload == "w5" else w6(quick))
    print(json.dumps(result))
