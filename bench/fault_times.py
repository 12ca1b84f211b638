"""Detection and recovery time for each fault of the matrix, with connman's default options.

    python bench/fault_times.py [--runs N]

For each fault: detection is the time from injecting it to `on_reset`; recovery is the time from
healing it to `on_connect`. Faults go through `connman.testing.FaultProxy` in front of an echo server,
all on loopback. Prints a Markdown table (median and worst of N runs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import connman
from connman.testing import EchoServer, FaultProxy


@dataclass
class Lab:
    server: EchoServer
    proxy: FaultProxy


@dataclass
class Fault:
    name: str
    inject: Callable[[Lab], Awaitable[object]]
    heal: Callable[[Lab], Awaitable[object]]
    options: dict[str, object] = field(default_factory=dict)
    outage: float = 0.0  # how long the fault lasts before it is healed
    direct: bool = False  # connect to the server itself, not through the proxy


async def nothing(lab: Lab) -> None:
    pass


async def restart_server(lab: Lab) -> None:
    await lab.server.stop()


async def start_server(lab: Lab) -> None:
    await lab.server.start()


async def refuse(lab: Lab) -> None:
    await lab.proxy.refuse()
    lab.proxy.reset_all()


async def stall(lab: Lab) -> None:
    lab.proxy.stall(True)


async def unstall(lab: Lab) -> None:
    lab.proxy.stall(False)


async def blackhole(lab: Lab) -> None:
    lab.proxy.blackhole = True


async def no_blackhole(lab: Lab) -> None:
    lab.proxy.blackhole = False


async def rst(lab: Lab) -> None:
    lab.proxy.reset_all()


async def fin(lab: Lab) -> None:
    lab.proxy.close_all()


async def accept(lab: Lab) -> None:
    await lab.proxy.start()


FAULTS = [
    Fault("RST mid-stream", rst, nothing),
    Fault("FIN mid-stream", fin, nothing),
    Fault("server restart (down 1 s)", restart_server, start_server, outage=1.0, direct=True),
    Fault("refused for 1 s", refuse, accept, outage=1.0),
    Fault("stall, idle_timeout=1", stall, unstall, {"idle_timeout": 1.0}, outage=0.0),
    Fault("blackhole, idle_timeout=1", blackhole, no_blackhole, {"idle_timeout": 1.0}, outage=0.0),
]


async def measure(fault: Fault) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[str] = asyncio.Queue()
    async with EchoServer() as server, FaultProxy(server.port) as proxy:
        lab = Lab(server, proxy)
        async with connman.ConnectionManager() as cm:
            conn = cm.connect(
                server.port if fault.direct else proxy.port,
                "127.0.0.1",
                on_connect=lambda c: events.put_nowait("connect"),
                on_reset=lambda: events.put_nowait("reset"),
                on_data=lambda data: None,
                **fault.options,  # type: ignore[arg-type]
            )
            assert await events.get() == "connect"
            if fault.options.get("idle_timeout"):
                # The application's heartbeat keeps a healthy connection from idling out.
                async def heartbeat() -> None:
                    while True:
                        if conn.is_connected:
                            conn.write(b".")
                        await asyncio.sleep(0.1)

                beating = loop.create_task(heartbeat())
            injected = loop.time()
            await fault.inject(lab)
            assert await events.get() == "reset"
            detected = loop.time() - injected
            await asyncio.sleep(fault.outage)
            while not events.empty():  # nothing connects during these outages; be sure of it
                assert events.get_nowait() != "connect"
            healed = loop.time()
            await fault.heal(lab)
            while await events.get() != "connect":
                pass
            recovered = loop.time() - healed
            if fault.options.get("idle_timeout"):
                beating.cancel()
    return detected, recovered


async def main(runs: int) -> None:
    print("| fault | detection median (worst) | recovery median (worst) |")
    print("|---|---|---|")
    for fault in FAULTS:
        detections, recoveries = [], []
        for _ in range(runs):
            detected, recovered = await measure(fault)
            detections.append(detected)
            recoveries.append(recovered)
        print(
            f"| {fault.name} | {statistics.median(detections) * 1000:.1f} ms ({max(detections) * 1000:.1f})"
            f" | {statistics.median(recoveries) * 1000:.1f} ms ({max(recoveries) * 1000:.1f}) |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
