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

import connman
from connman.testing import EchoServer, FaultProxy

from ._status import LiveView

__all__ = ["run"]


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


#: Seconds without an echo after which a connection is presumed dead (the stall fault shows it).
IDLE_TIMEOUT = 0.5


async def _demo(duration: float) -> int:
    view = LiveView()
    events = _Events(view)
    say = events.say
    server = await EchoServer().start()
    proxy = await FaultProxy(server.port).start()
    say(f"echo server on 127.0.0.1:{server.port}, fault proxy in front of it on 127.0.0.1:{proxy.port}")
    options: connman.ConnectOptions = {
        "backoff": connman.Backoff(initial=0.05, factor=1.6, cap=0.5),
        "queue_while_down": 1 << 20,
        "idle_timeout": IDLE_TIMEOUT,
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

        async def faults() -> int:
            step = max(duration / 5, 0.5)
            schedule = [
                ("restart the server", server.restart()),
                ("reset every connection (RST)", _call(proxy.reset_all)),
                (
                    f"stall every connection for {3 * IDLE_TIMEOUT} s (idle_timeout={IDLE_TIMEOUT})",
                    _stall(proxy),
                ),
                ("refuse connections for 1 s", _refuse(proxy, 1.0)),
            ]
            for what, fault in schedule:
                await asyncio.sleep(step)
                say(f"FAULT: {what}")
                await fault
            return len(schedule)

        traffic_task = asyncio.create_task(traffic())
        redraw_task = asyncio.create_task(redraw())
        injected = await faults()
        await asyncio.sleep(max(duration - (time.monotonic() - events.start), 0.5))
        traffic_task.cancel()
        # Let every echo come home before judging.
        try:
            async with asyncio.timeout(5):
                for client in clients.values():
                    await client.everything_echoed.wait()
        except TimeoutError:
            pass
        redraw_task.cancel()
        view.draw(named)
        if not view.live:
            view.print_table(named)
        say("disconnecting everything")
    await proxy.stop()
    await server.stop()

    recoveries = [r for c in clients.values() for r in c.recoveries]
    sent = sum(c.sent for c in clients.values())
    echoed = sum(c.echoed for c in clients.values())
    print()
    print("summary")
    print(f"  faults injected     {injected}")
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


async def _call(fault: object) -> None:
    assert callable(fault)
    fault()


async def _stall(proxy: FaultProxy) -> None:
    proxy.stall(True)
    await asyncio.sleep(3 * IDLE_TIMEOUT)
    proxy.stall(False)


async def _refuse(proxy: FaultProxy, seconds: float) -> None:
    await proxy.refuse()
    proxy.close_all()
    await asyncio.sleep(seconds)
    await proxy.start()


def run(duration: float = 20.0) -> int:
    """Run the demo for about `duration` seconds; return 0 if everything recovered."""
    logging.getLogger("connman").setLevel(logging.WARNING)
    return asyncio.run(_demo(duration))
