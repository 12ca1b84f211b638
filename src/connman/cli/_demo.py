"""`connman demo`: a scripted run against a flaky local echo server, shown as it happens.

A pool of managed connections and a single one talk to an embedded echo server on a free loopback
port, through connman's fault proxy, while a fault schedule restarts the server, resets every client
(RST), stalls every connection long enough for the idle timeout to notice, and refuses connections for
a while. On a terminal a status table is redrawn in place; elsewhere each event is a log line.
Every connection writes numbered records through its write queue
(`queue_while_down`), so nothing is lost while it is down. Records already handed to the kernel when
a connection drops can be lost with it (no library can save those); the demo closes that gap the way
an application should, at its protocol level: a record counts as delivered when its echo comes back,
and `on_reset` returns a resume callable that sends the unacknowledged ones again. The summary checks
that every record came back.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable

import connman
from connman.testing import EchoServer, FaultProxy

from ._status import LiveView

__all__ = ["run"]

EXIT_INTERRUPTED = 130


class _Client:
    """One demo client, as a connman handler object: records go out, echoes come back."""

    def __init__(self, name: str, view: _Events) -> None:
        self.name = name
        self.say = view.say
        self.conn: connman.Connection | None = None
        self.sent = self.echoed = self.resets = self.resent = 0
        self.down_since: float | None = None
        self.recoveries: list[float] = []
        self.unacked: dict[bytes, None] = {}  # records in flight, in order
        self.everything_echoed = asyncio.Event()
        self.buffer = b""

    def on_connect(self, conn: connman.Connection) -> None:
        self.conn = conn
        if self.down_since is not None:
            recovery = time.monotonic() - self.down_since
            self.recoveries.append(recovery)
            self.say(f"{self.name}: reconnected after {recovery * 1000:.0f} ms")
            self.down_since = None
        else:
            self.say(f"{self.name}: connected to {conn.peername}")

    def on_data(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            if self.unacked.pop(line + b"\n", False) is None:
                self.echoed += len(line) + 1
        if not self.unacked:
            self.everything_echoed.set()

    def on_reset(self) -> object:
        self.resets += 1
        self.down_since = time.monotonic()
        self.buffer = b""
        in_flight = list(self.unacked)  # writes from now on go to the write queue
        reason = self.conn.last_cause.value if self.conn is not None and self.conn.last_cause else "?"
        self.say(f"{self.name}: connection lost ({reason}), {len(in_flight)} records unacknowledged")

        def resume(conn: connman.Connection) -> None:
            # Records the dead connection took with it go again, before anything new.
            again = [record for record in in_flight if record in self.unacked]
            conn.writelines(again)
            self.resent += len(again)
            self.on_connect(conn)

        return resume

    def send(self, conn: connman.Connection, record: int) -> None:
        payload = f"record {record:08d}\n".encode()
        conn.write(payload)
        self.unacked[payload] = None
        self.everything_echoed.clear()
        self.sent += len(payload)


class _Events:
    """Timestamped event lines, to the live view (a terminal) or to stdout as they come."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        self.view.event(f"[{time.monotonic() - self.start:6.2f}s] {message}")


class _Timing:
    """The demo's schedule, scaled to fit `duration` seconds: the idle timeout, how long the stall and
    the refusal last, and the gap before each fault. A 20 s run uses a 0.5 s idle timeout; short runs
    a shorter one (0.2 s at least), so that every fault still fits."""

    FAULTS = 4

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.idle_timeout = min(max(duration / 10, 0.2), 0.5)
        self.stall = 2.5 * self.idle_timeout  # long enough for the idle timeout to notice
        self.refuse = min(max(duration / 10, 0.1), 1.0)
        # The faults take 90 % of the run, the rest is to see everything recover.
        busy = 0.9 * duration - self.stall - self.refuse
        self.gap = max(busy / self.FAULTS, 0.05)


async def _demo(duration: float) -> int:
    timing = _Timing(duration)
    view = LiveView()
    events = _Events(view)
    server = await EchoServer().start()
    try:
        proxy = await FaultProxy(server.port).start()
        try:
            return await _run_clients(timing, view, events, server, proxy)
        finally:
            await proxy.stop()
    finally:
        await server.stop()


async def _run_clients(
    timing: _Timing, view: LiveView, events: _Events, server: EchoServer, proxy: FaultProxy
) -> int:
    say = events.say
    say(f"echo server on 127.0.0.1:{server.port}, fault proxy in front of it on 127.0.0.1:{proxy.port}")
    options: connman.ConnectOptions = {
        "backoff": connman.Backoff(initial=0.05, factor=1.6, cap=0.5),
        "queue_while_down": 1 << 20,
        "idle_timeout": timing.idle_timeout,
    }
    clients: dict[connman.Connection, _Client] = {}
    async with connman.ConnectionManager() as cm:
        pool = cm.create_pool("demo")
        for index in range(3):
            client = _Client(f"pool[{index}]", events)
            clients[pool.add_connection(proxy.port, "127.0.0.1", handler=client, **options)] = client
        client = _Client("single", events)
        clients[cm.connect(proxy.port, "127.0.0.1", handler=client, **options)] = client
        named = [(c.name, conn) for conn, c in clients.items()]

        async def traffic() -> None:
            record = 0
            while True:
                for conn, client in clients.items():
                    client.send(conn, record)
                record += 1
                await asyncio.sleep(0.01)

        async def redraw() -> None:
            while True:
                view.draw(named)
                await asyncio.sleep(0.2)

        async def stall() -> None:
            proxy.stall(True)
            await asyncio.sleep(timing.stall)
            proxy.stall(False)

        async def refuse() -> None:
            await proxy.refuse()
            proxy.close_all()
            await asyncio.sleep(timing.refuse)
            await proxy.start()

        async def reset_all() -> None:
            proxy.reset_all()

        # Coroutine functions, not coroutines: a run cut short leaves none never awaited.
        schedule: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("restart the server", server.restart),
            ("reset every connection (RST)", reset_all),
            (f"stall every connection for {timing.stall:g} s (idle_timeout={timing.idle_timeout:g})", stall),
            (f"refuse connections for {timing.refuse:g} s", refuse),
        ]
        tasks = [asyncio.create_task(traffic()), asyncio.create_task(redraw())]
        try:
            for what, fault in schedule:
                await asyncio.sleep(timing.gap)
                say(f"FAULT: {what}")
                await fault()
            await asyncio.sleep(max(timing.duration - (time.monotonic() - events.start), 0.05))
            tasks[0].cancel()  # no new records: let every echo come home before judging
            try:
                async with asyncio.timeout(max(timing.duration / 4, 1.0)):
                    for client in clients.values():
                        await client.everything_echoed.wait()
            except TimeoutError:
                pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        view.draw(named)
        if not view.live:
            view.print_table(named)
        say("disconnecting everything")

    recoveries = [r for c in clients.values() for r in c.recoveries]
    sent = sum(c.sent for c in clients.values())
    echoed = sum(c.echoed for c in clients.values())
    print()
    print("summary")
    print(f"  faults injected     {len(schedule)}")
    print(f"  resets seen         {sum(c.resets for c in clients.values())}")
    if recoveries:
        print(f"  recovery median     {statistics.median(recoveries) * 1000:.0f} ms")
        print(f"  recovery worst      {max(recoveries) * 1000:.0f} ms")
    print(f"  bytes sent          {sent}")
    print(f"  bytes echoed        {echoed}")
    resent = sum(c.resent for c in clients.values())
    print(f"  records re-sent     {resent} (in flight when a connection dropped)")
    print(f"  bytes lost          {sent - echoed}")
    ok = echoed == sent and all(c.resets == len(c.recoveries) for c in clients.values())
    print(f"  result              {'everything recovered' if ok else 'NOT everything recovered'}")
    return 0 if ok else 1


def run(duration: float = 20.0) -> int:
    """Run the demo for about `duration` seconds; return 0 if everything recovered, 130 on Ctrl-C."""
    logging.getLogger("connman").setLevel(logging.WARNING)
    try:
        return asyncio.run(_demo(duration))
    except KeyboardInterrupt:  # asyncio.run() cancelled the demo, which cleaned up after itself
        return EXIT_INTERRUPTED
