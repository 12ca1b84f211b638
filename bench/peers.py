"""One benchmark run of one peer, in a fresh process: `python bench/peers.py PEER WORKLOAD PORT AMOUNT`.

Prints one JSON object on stdout. bench/run.py calls this, alternating peers run by run.

Workloads (the same Python-level logic for every peer, so only the I/O path differs):
- w1: ping-pong, 64-byte messages, one in flight; AMOUNT round trips. Result: round trips/s.
- w2: pipelined, 64-byte messages, a window of 100 in flight; AMOUNT messages. Result: messages/s.
- w3: bulk receive from a server that sends as fast as it can; AMOUNT bytes. Result: MB/s.
- w8: CONNECTIONS (5th argument, default 1,000) connections on one loop, each ping-ponging 64-byte
  messages at once, AMOUNT round trips each. Result: aggregate round trips/s, and per round trip the
  client's CPU split into user and system time and the times it was switched out (`getrusage`).
- w1i: W1 interleaved in one process. PEER (connman-asyncio or connman-uvloop) has one connection,
  and two raw `Protocol` connections on the same loop are its partner and an A/A control: the three
  take turns round trip by round trip, each round trip timed. AMOUNT round trips in all. Result: the
  raw round trip's median over PEER's (PEER's throughput relative to raw), and the first raw one's
  over the second's (the method's own error: 1.0 if exact).
- fanout: AMOUNT connections opened at once, kept idle. Result: seconds until all are connected,
  RSS per connection (KB), CPU used while idle (%).

Every stream result also carries `cpu_us`: the client process's CPU time (user + system,
`time.process_time()`) per operation over the measured span: per round trip (w1, w8), per message
(w2), per MB (w3). With client and server on one core, throughput is 1 / (client + server + kernel
CPU per op), so the client's own share is what a library can change.
"""

from __future__ import annotations

import asyncio
import gc
import json
import mmap
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

MESSAGE = b"m" * 64
WINDOW = 100


class Work:
    """What every peer does with the bytes it receives; `send` is the peer's own write."""

    def __init__(self, kind: str, amount: int) -> None:
        self.kind = kind
        self.amount = amount
        self.received = 0
        self.completed = 0
        self.sent = 0
        self.started = 0.0
        self.elapsed = 0.0
        self.cpu_started = 0.0
        self.cpu = 0.0
        self.on_done: Callable[[], object] = lambda: None
        self.send: Callable[[bytes], object] = lambda data: None

    def begin(self, send: Callable[[bytes], object]) -> None:
        self.send = send
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        if self.kind == "w1":
            self.sent = 1
            send(MESSAGE)
        elif self.kind == "w2":
            self.sent = min(WINDOW, self.amount)
            send(MESSAGE * self.sent)
        else:
            send(b"go")

    def data(self, size: int) -> None:
        self.received += size
        if self.kind == "w3":
            if self.received >= self.amount:
                self.finish()
            return
        completed = self.received // 64
        if completed == self.completed:
            return
        fresh, self.completed = completed - self.completed, completed
        if completed >= self.amount:
            self.finish()
            return
        more = min(fresh, self.amount - self.sent)
        if more:
            self.sent += more
            self.send(MESSAGE * more if more > 1 else MESSAGE)

    def finish(self) -> None:
        if not self.elapsed:
            self.elapsed = time.perf_counter() - self.started
            self.cpu = time.process_time() - self.cpu_started
            self.on_done()

    def result(self) -> dict[str, float | str]:
        if self.kind == "w1":
            per_op = self.cpu / self.amount * 1e6
            return {"value": self.amount / self.elapsed, "unit": "round trips/s", "cpu_us": per_op}
        if self.kind == "w2":
            per_op = self.cpu / self.amount * 1e6
            return {"value": self.amount / self.elapsed, "unit": "msgs/s", "cpu_us": per_op}
        per_mb = self.cpu / (self.received / 1e6) * 1e6
        return {"value": self.received / self.elapsed / 1e6, "unit": "MB/s", "cpu_us": per_mb}


# ---- asyncio-based peers ---------------------------------------------------------------------------


class CountingProtocol(asyncio.Protocol):
    def __init__(self, work: Work) -> None:
        self.work = work

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.work.data(len(data))


class CountingBufferedProtocol(asyncio.BufferedProtocol):
    """The hand-written fast path: one reused, page-aligned 256 KiB receive buffer."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.buffer = memoryview(mmap.mmap(-1, 256 * 1024))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.work.data(nbytes)


async def raw_protocol(work: Work, port: int, buffered: bool) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    work.on_done = lambda: done.set_result(None)
    factory = CountingBufferedProtocol if buffered else CountingProtocol
    transport, _ = await loop.create_connection(lambda: factory(work), "127.0.0.1", port)
    work.begin(transport.write)  # type: ignore[attr-defined]
    await done
    transport.close()


async def streams(work: Work, port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    work.begin(writer.write)
    while not work.elapsed:
        data = await reader.read(262144)
        if not data:
            raise ConnectionError("server closed")
        work.data(len(data))
        if work.kind != "w3":
            await writer.drain()
    writer.close()


async def managed(work: Work, port: int, **options: Any) -> None:
    import connman

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    work.on_done = lambda: done.set_result(None)
    async with connman.ConnectionManager() as cm:
        conn = cm.connect(port, "127.0.0.1", on_data=lambda data: work.data(len(data)), **options)
        await conn.wait_connected(10)
        work.begin(conn.write)
        await done


def twisted(work: Work, port: int) -> None:
    from twisted.application.internet import ClientService
    from twisted.internet import endpoints, protocol, reactor

    class Counting(protocol.Protocol):
        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)
            work.begin(self.transport.write)

        def dataReceived(self, data: bytes) -> None:
            work.data(len(data))

    service = ClientService(
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol.Factory.forProtocol(Counting)
    )
    work.on_done = lambda: (service.stopService(), reactor.stop())  # type: ignore[attr-defined]
    service.startService()
    reactor.run()  # type: ignore[attr-defined]


def uses_uvloop(peer: str) -> bool:
    return peer.startswith("uvloop") or peer.endswith("uvloop")


def run_stream_workload(peer: str, kind: str, port: int, amount: int) -> dict[str, float]:
    work = Work(kind, amount)
    if peer == "twisted":
        twisted(work, port)
        return work.result()
    use_uvloop = uses_uvloop(peer)
    coroutine: Any
    if peer in ("asyncio-protocol", "uvloop-protocol"):
        coroutine = raw_protocol(work, port, buffered=False)
    elif peer == "asyncio-buffered":
        coroutine = raw_protocol(work, port, buffered=True)
    elif peer == "asyncio-streams":
        coroutine = streams(work, port)
    elif peer in ("connman-asyncio", "connman-uvloop"):
        coroutine = managed(work, port)
    elif peer == "connman-asyncio+idle":
        coroutine = managed(work, port, idle_timeout=30.0)
    else:
        raise SystemExit(f"unknown peer {peer!r}")
    if use_uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
    return work.result()


# ---- W8: many connections busy at once ------------------------------------------------------------


async def many_busy(peer: str, port: int, count: int, amount: int) -> dict[str, float | str]:
    """`count` connections on this loop, each ping-ponging `amount` 64-byte round trips at once."""
    loop = asyncio.get_running_loop()
    works = [Work("w1", amount) for _ in range(count)]
    left = count
    all_done = loop.create_future()

    def one_done() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            all_done.set_result(None)

    for work in works:
        work.on_done = one_done
    sends: list[Callable[[bytes], object]] = []
    cm: Any = None
    transports: list[Any] = []
    if peer.startswith("connman"):
        import connman

        cm = connman.ConnectionManager()
        conns = [
            cm.connect(port, "127.0.0.1", on_data=lambda data, work=work: work.data(len(data)))
            for work in works
        ]
        for conn in conns:
            await conn.wait_connected(30)
        sends = [conn.write for conn in conns]
    else:
        results = await asyncio.gather(
            *(loop.create_connection(lambda w=work: CountingProtocol(w), "127.0.0.1", port) for work in works)
        )
        transports = [transport for transport, _ in results]
        sends = [transport.write for transport in transports]
    started = time.perf_counter()
    usage_started = resource.getrusage(resource.RUSAGE_SELF)
    for work, send in zip(works, sends, strict=True):
        work.begin(send)
    await asyncio.wait_for(all_done, 300)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    user = usage.ru_utime - usage_started.ru_utime
    system = usage.ru_stime - usage_started.ru_stime
    if cm is not None:
        await cm.aclose()
    for transport in transports:
        transport.close()
    total = count * amount
    return {
        "value": total / elapsed,
        "unit": "round trips/s",
        "cpu_us": (user + system) / total * 1e6,
        # The split tells the library's own (user) cost from the kernel's (system) per round trip.
        "user_us": user / total * 1e6,
        "sys_us": system / total * 1e6,
        # Server and client share a core: how often the client was switched out, per round trip.
        "switches": (usage.ru_nvcsw + usage.ru_nivcsw - usage_started.ru_nvcsw - usage_started.ru_nivcsw)
        / total,
        "voluntary": (usage.ru_nvcsw - usage_started.ru_nvcsw) / total,
    }


# ---- W1 interleaved: peers taking turns in one process ---------------------------------------------


class Turns:
    """Round trips that take turns between named connections, each timed from its send to its reply.

    The order repeats each name twice (a a b b c c): every name follows itself as often as the one
    before it, so the part of a round trip after the timestamp (the return from the receive path,
    which runs before the next send) falls on a neighbour evenly, and the A/A control shows what
    is left of it.
    """

    def __init__(self, names: list[str], amount: int, done: asyncio.Future[None]) -> None:
        self.order = [name for name in names for _ in range(2)]
        self.samples: dict[str, list[int]] = {name: [] for name in names}
        self.sends: dict[str, Callable[[bytes], object]] = {}
        self.amount = amount
        self.done = done
        self.turn = 0
        self.pending = 0
        self.started = 0

    def begin(self) -> None:
        self.started = time.perf_counter_ns()
        self.sends[self.order[0]](MESSAGE)

    def data(self, name: str, size: int) -> None:
        self.pending += size
        if self.pending < len(MESSAGE):
            return
        self.pending = 0
        now = time.perf_counter_ns()
        self.samples[name].append(now - self.started)
        self.started = now
        self.turn += 1
        if self.turn >= self.amount:
            self.done.set_result(None)
            return
        self.sends[self.order[self.turn % len(self.order)]](MESSAGE)


class TurnProtocol(asyncio.Protocol):
    def __init__(self, turns: Turns, name: str) -> None:
        self.turns, self.name = turns, name

    def data_received(self, data: bytes) -> None:
        self.turns.data(self.name, len(data))


async def interleaved(peer: str, port: int, amount: int) -> dict[str, float | str]:
    import connman

    loop = asyncio.get_running_loop()
    turns = Turns(["raw", peer, "raw-control"], amount, loop.create_future())
    transports = []
    for name in ("raw", "raw-control"):
        transport, _ = await loop.create_connection(
            lambda name=name: TurnProtocol(turns, name), "127.0.0.1", port
        )
        transports.append(transport)
        turns.sends[name] = transport.write  # type: ignore[attr-defined]
    async with connman.ConnectionManager() as cm:
        conn = cm.connect(port, "127.0.0.1", on_data=lambda data: turns.data(peer, len(data)))
        await conn.wait_connected(10)
        turns.sends[peer] = conn.write
        cpu_started = time.process_time()
        turns.begin()
        await asyncio.wait_for(turns.done, 300)
        cpu = time.process_time() - cpu_started
    for transport in transports:
        transport.close()
    median = {name: statistics.median(samples) for name, samples in turns.samples.items()}
    return {
        "value": median["raw"] / median[peer],
        "control": median["raw"] / median["raw-control"],
        "raw_us": median["raw"] / 1e3,
        "peer_us": median[peer] / 1e3,
        "unit": "x raw",
        "cpu_us": cpu / amount * 1e6,
    }


# ---- fan-out ---------------------------------------------------------------------------------------


def rss_kb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


async def fanout(peer: str, port: int, count: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    if peer.startswith("connman"):
        # Set-up, outside what is timed and measured: the raw peer imports nothing, and the import
        # (about 0.1 s and a few MB, once) is no cost of a connection.
        import connman

        cm = connman.ConnectionManager()
    gc.collect()
    before = rss_kb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    if peer.startswith("connman"):
        all_up = loop.create_future()
        up = 0

        def on_connect(conn: Any) -> None:
            nonlocal up
            up += 1
            if up == count:
                all_up.set_result(None)

        conns = [cm.connect(port, "127.0.0.1", on_connect=on_connect) for _ in range(count)]
        await asyncio.wait_for(all_up, 60)
        assert len(conns) == count
    else:
        results = await asyncio.gather(
            *(loop.create_connection(asyncio.Protocol, "127.0.0.1", port) for _ in range(count))
        )
        transports = [transport for transport, _ in results]
    connect_all = time.perf_counter() - started
    connect_cpu = time.process_time() - cpu_started
    await asyncio.sleep(0.1)  # let the last callbacks of the connects run, for both kinds of peer
    gc.collect()
    per_connection = (rss_kb() - before) / count
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    idle_started = time.perf_counter()
    await asyncio.sleep(2.0)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    idle_cpu = (
        (cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime)
        / (time.perf_counter() - idle_started)
        * 100
    )
    if peer.startswith("connman"):
        await cm.aclose()
    else:
        for transport in transports:
            transport.close()
        await asyncio.sleep(0.1)
    return {
        "connect_all_s": connect_all,
        "cpu_us": connect_cpu / count * 1e6,
        "kb_per_connection": per_connection,
        "idle_cpu_percent": idle_cpu,
    }


def raise_file_limit(connections: int) -> None:
    """Enough descriptors for `connections` sockets (and some spare), within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(f"{connections} connections need {wanted} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def uvloop_run(coroutine: Any) -> Any:
    import uvloop

    return uvloop.run(coroutine)


def main() -> None:
    coroutine: Any
    peer, kind, port, amount = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})  # the client on core 0; the server pins itself to core 1
    if kind == "w1i":
        coroutine = interleaved(peer, port, amount)
        result = uvloop_run(coroutine) if uses_uvloop(peer) else asyncio.run(coroutine)
    elif kind in ("fanout", "w8"):
        raise_file_limit(amount if kind == "fanout" else int(sys.argv[5]) if len(sys.argv) > 5 else 1000)
        coroutine = (
            fanout(peer, port, amount)
            if kind == "fanout"
            else many_busy(peer, port, int(sys.argv[5]) if len(sys.argv) > 5 else 1000, amount)
        )
        result = uvloop_run(coroutine) if uses_uvloop(peer) else asyncio.run(coroutine)
    else:
        result = run_stream_workload(peer, kind, port, amount)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
