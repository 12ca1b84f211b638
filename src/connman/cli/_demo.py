"""`connman demo`: a scripted run against a flaky local echo server, printed as it happens.

A pool of managed connections and a single one talk to an embedded echo server on a free loopback
port, while a fault schedule restarts the server, resets every client (RST), closes every client (FIN)
and refuses connections for a while. Every connection writes numbered records through its write queue
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
from dataclasses import dataclass, field

import connman
from connman.testing import EchoServer

__all__ = ["run"]


@dataclass
class _Client:
    name: str
    sent: int = 0
    echoed: int = 0
    resets: int = 0
    resent: int = 0
    down_since: float | None = None
    recoveries: list[float] = field(default_factory=list)
    unacked: dict[bytes, None] = field(default_factory=dict)  # records in flight, in order
    buffer: bytes = b""


def _say(start: float, message: str) -> None:
    print(f"[{time.monotonic() - start:6.2f}s] {message}", flush=True)


async def _demo(duration: float) -> int:
    start = time.monotonic()
    server = await EchoServer().start()
    _say(start, f"echo server listening on 127.0.0.1:{server.port}")
    backoff = connman.Backoff(initial=0.05, factor=1.6, cap=0.5)
    clients: dict[connman.Connection, _Client] = {}

    def hooks(client: _Client) -> dict[str, object]:
        def on_connect(conn: connman.Connection) -> None:
            if client.down_since is not None:
                recovery = time.monotonic() - client.down_since
                client.recoveries.append(recovery)
                _say(start, f"{client.name}: reconnected after {recovery * 1000:.0f} ms")
                client.down_since = None
            else:
                _say(start, f"{client.name}: connected to {conn.peername}")

        def on_data(data: bytes) -> None:
            *lines, client.buffer = (client.buffer + data).split(b"\n")
            for line in lines:
                if client.unacked.pop(line + b"\n", False) is None:
                    client.echoed += len(line) + 1

        def on_reset() -> object:
            client.resets += 1
            client.down_since = time.monotonic()
            client.buffer = b""
            in_flight = list(client.unacked)  # writes from now on go to the write queue
            _say(start, f"{client.name}: connection lost ({_reason(conn_of[client.name])})")

            def resume(conn: connman.Connection) -> None:
                # Records the dead connection took with it go again, before anything new.
                again = [record for record in in_flight if record in client.unacked]
                conn.writelines(again)
                client.resent += len(again)
                on_connect(conn)

            return resume

        return {"on_connect": on_connect, "on_data": on_data, "on_reset": on_reset}

    conn_of: dict[str, connman.Connection] = {}
    async with connman.ConnectionManager() as cm:
        pool = cm.create_pool("demo")
        for index in range(3):
            client = _Client(f"pool[{index}]")
            conn = pool.add_connection(
                server.port, "127.0.0.1", backoff=backoff, queue_while_down=1 << 20, **hooks(client)
            )  # type: ignore[arg-type]
            clients[conn] = client
            conn_of[client.name] = conn
        single = _Client("single")
        conn = cm.connect(
            server.port, "127.0.0.1", backoff=backoff, queue_while_down=1 << 20, **hooks(single)
        )  # type: ignore[arg-type]
        clients[conn] = single
        conn_of[single.name] = conn

        async def traffic() -> None:
            record = 0
            while True:
                for conn, client in clients.items():
                    payload = f"record {record:08d}\n".encode()
                    conn.write(payload)
                    client.unacked[payload] = None
                    client.sent += len(payload)
                record += 1
                await asyncio.sleep(0.01)

        async def faults() -> int:
            step = max(duration / 6, 0.5)
            schedule = [
                ("restart the server", server.restart()),
                ("reset every client (RST)", _drop(server, reset=True)),
                ("close every client (FIN)", _drop(server, reset=False)),
                ("refuse connections for 1 s", _refuse(server, 1.0)),
            ]
            for what, fault in schedule:
                await asyncio.sleep(step)
                _say(start, f"FAULT: {what}")
                await fault
            return len(schedule)

        traffic_task = asyncio.create_task(traffic())
        injected = await faults()
        await asyncio.sleep(max(duration - (time.monotonic() - start), 0.5))
        traffic_task.cancel()
        # Let every echo come home before judging.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(c.echoed < c.sent for c in clients.values()):
            await asyncio.sleep(0.05)
        _say(start, "disconnecting everything")
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
    print(f"  records re-sent     {sum(c.resent for c in clients.values())} (in flight when a connection dropped)")
    print(f"  bytes lost          {sent - echoed}")
    ok = echoed == sent and all(c.resets == len(c.recoveries) for c in clients.values())
    print(f"  result              {'everything recovered' if ok else 'NOT everything recovered'}")
    return 0 if ok else 1


def _reason(conn: connman.Connection) -> str:
    error = conn.last_error
    return "peer closed" if error is None else f"{type(error).__name__}: {error}"


async def _drop(server: EchoServer, *, reset: bool) -> None:
    server.drop_clients(reset=reset)


async def _refuse(server: EchoServer, seconds: float) -> None:
    await server.stop(reset=False)
    await asyncio.sleep(seconds)
    await server.start()


def run(duration: float = 8.0) -> int:
    """Run the demo for about `duration` seconds; return 0 if everything recovered."""
    logging.getLogger("connman").setLevel(logging.WARNING)
    return asyncio.run(_demo(duration))
