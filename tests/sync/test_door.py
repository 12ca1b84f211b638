"""Every promise holds: side effects happen at the call, awaiting only waits, every wait is bounded.

Regression tests for the issue "Every promise holds (2)"; the numbered sections follow its list.

The same call must behave the same from the connection's own loop, from another running loop (on
another thread), and from plain sync code. The connections of a test live on a "home": connman's own
loop thread (made from sync code; uvloop unless CONNMAN_UVLOOP=0), or an asyncio or uvloop loop on a
thread of the test's own. Callers
on another loop run on a fresh asyncio or uvloop loop in the test's thread, as `asyncio.run()` would.

What needs connman's background loop thread to be blocked, the process to exit or to fork runs as
scripts in subprocesses, one per event loop (`CONNMAN_UVLOOP`), all started at once and checked by the
tests at the end of this file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

import connman
from connman import State
from connman.testing import EchoServer, FaultProxy, ServerThread
from tests.conftest import BOUND, FAST

T = TypeVar("T")

HOST = "127.0.0.1"
LOOPS = ["asyncio", "uvloop"]
HOMES = ["connman", "asyncio", "uvloop"]
#: Where a caller waits from: the connection's own loop, another running loop, or plain sync code.
CONTEXTS = ["own-loop", "other-asyncio", "other-uvloop", "sync"]

MIB = 1 << 20
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def eventually(predicate: Callable[[], bool], timeout: float = BOUND) -> bool:
    """Whether `predicate()` holds within `timeout` seconds (checked every millisecond)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def on_loop(loop: asyncio.AbstractEventLoop, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on `loop`, running on another thread, and return its result (bounded)."""
    return asyncio.run_coroutine_threadsafe(main(), loop).result(BOUND)


def elsewhere(kind: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on a fresh loop of `kind` in this thread, as `asyncio.run()` would (bounded)."""
    with asyncio.Runner(loop_factory=lambda: new_loop(kind)) as runner:
        return runner.run(asyncio.wait_for(main(), BOUND))


class Home:
    """Where a test's connections live: connman's own loop thread, or a loop on a thread of ours."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.manager = connman.ConnectionManager()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if kind != "connman":
            self._loop = new_loop(kind)
            self._thread = threading.Thread(target=self._loop.run_forever, name=f"home-{kind}", daemon=True)
            self._thread.start()

    def run(self, make: Callable[[connman.ConnectionManager], T]) -> T:
        """Call `make(manager)` where connections are made to live here."""
        if self._loop is None:
            return make(self.manager)  # plain sync code: connman's loop thread

        async def inside() -> T:
            return make(self.manager)

        return on_loop(self._loop, inside)

    def close(self) -> None:
        assert self.manager.disconnect_all(BOUND)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(BOUND)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


@pytest.fixture(params=HOMES, ids=[f"home-{kind}" for kind in HOMES])
def home(request: pytest.FixtureRequest) -> Iterator[Home]:
    place = Home(request.param)
    yield place
    place.close()


@pytest.fixture
def echo() -> Iterator[ServerThread]:
    with ServerThread() as server:
        yield server


class Echoes:
    """An `on_data` for any thread: keeps what arrived and lets the test wait for it, bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.data = bytearray()

    def __call__(self, data: bytes) -> None:
        with self._lock:
            self.data += data

    def got(self, expected: bytes) -> bool:
        return eventually(lambda: expected in self.data)


def wait_from(context: str, loop: asyncio.AbstractEventLoop, make: Callable[[], connman.Wait[T]]) -> T:
    """The outcome of the `Wait` that `make()` returns, called and waited for from `context`."""

    async def awaited() -> T:
        wait = make()
        assert isinstance(wait, connman.Wait)
        return await wait

    if context == "own-loop":
        return on_loop(loop, awaited)
    if context == "sync":
        wait = make()
        assert isinstance(wait, connman.Wait)
        assert wait.done()  # a sync caller has blocked already
        return wait.result()
    return elsewhere(context.removeprefix("other-"), awaited)


def connected(home: Home, port: int, **on: Any) -> connman.Connection:
    conn = home.run(lambda cm: cm.connect(port, HOST, **on))
    assert conn.wait_connected(BOUND)
    return conn


def quiet(home: Home, server: ServerThread) -> connman.Connection:
    """A connection that is up and has settled: one echo came back, so nothing is left to change."""
    echoes = Echoes()
    conn = connected(home, server.port, on_data=echoes)
    conn.write(b"settle")
    assert echoes.got(b"settle")
    return conn


# ---- 1. Side effects happen at the call, from another loop too ----------------------------------


@pytest.mark.parametrize("caller", LOOPS)
def test_disconnect_called_from_another_loop_and_never_awaited_closes_the_connection(
    echo: ServerThread, home: Home, caller: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connected(home, echo.port)
    assert eventually(lambda: echo.server.clients == 1)

    async def drop_it() -> None:
        conn.disconnect()  # the Wait is dropped: never awaited

    elsewhere(caller, drop_it)
    assert eventually(lambda: conn.state is State.CLOSED), conn.state
    assert eventually(lambda: echo.server.clients == 0)
    # The registry forgets it in the same loop callback that closed it, just after the FIN went out:
    # the server can see the FIN first. (An awaited disconnect() returns only once it is forgotten.)
    assert eventually(lambda: conn not in home.manager.connections)
    assert conn.wait_closed(BOUND)
    assert conn not in home.manager.connections
    # Nothing complained about the dropped Wait (a future resolved on a closed loop, say).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("caller", LOOPS)
def test_disconnect_from_another_loop_acts_at_the_call_and_awaiting_it_only_waits(
    echo: ServerThread, home: Home, caller: str
) -> None:
    conn = connected(home, echo.port)

    async def disconnect_then_await() -> tuple[State, bool]:
        wait = conn.disconnect()
        # Not awaited yet, and this loop does not even run meanwhile: the disconnect is on its way.
        assert eventually(lambda: conn.state is State.CLOSED)
        return conn.state, await wait

    assert elsewhere(caller, disconnect_then_await) == (State.CLOSED, True)
    assert eventually(lambda: echo.server.clients == 0)


@pytest.mark.parametrize("caller", LOOPS)
def test_reconnect_called_from_another_loop_reconnects_without_being_awaited(
    echo: ServerThread, home: Home, caller: str
) -> None:
    conn = connected(home, echo.port)

    async def reconnect_it() -> None:
        conn.reconnect()

    elsewhere(caller, reconnect_it)
    assert eventually(lambda: echo.server.accepts == 2)
    assert eventually(lambda: conn.is_connected and conn.stats.connects == 2), conn.stats


@pytest.mark.parametrize("caller", LOOPS)
def test_write_from_another_loop_is_delivered_without_awaiting_anything(
    echo: ServerThread, home: Home, caller: str
) -> None:
    echoes = Echoes()
    conn = connected(home, echo.port, on_data=echoes)

    async def write_it() -> None:
        conn.write(b"from another loop")

    elsewhere(caller, write_it)
    assert echoes.got(b"from another loop")


@pytest.mark.parametrize("caller", LOOPS)
def test_disconnect_all_from_another_loop_never_awaited_closes_everything(
    echo: ServerThread, home: Home, caller: str
) -> None:
    conns = [connected(home, echo.port) for _ in range(3)]
    assert eventually(lambda: echo.server.clients == 3)

    async def drop_all() -> None:
        home.manager.disconnect_all()

    elsewhere(caller, drop_all)
    assert eventually(lambda: all(conn.state is State.CLOSED for conn in conns))
    assert eventually(lambda: echo.server.clients == 0)
    assert len(home.manager) == 0


@pytest.mark.parametrize("caller", LOOPS)
def test_pool_disconnect_from_another_loop_never_awaited_closes_its_members(
    echo: ServerThread, home: Home, caller: str
) -> None:
    pool = home.manager.create_pool("p")
    members = [home.run(lambda _: pool.add_connection(echo.port, HOST)) for _ in range(2)]
    outsider = connected(home, echo.port)
    assert all(member.wait_connected(BOUND) for member in members)

    async def drop_pool() -> None:
        pool.disconnect()

    elsewhere(caller, drop_pool)
    assert eventually(lambda: all(member.state is State.CLOSED for member in members))
    assert eventually(lambda: echo.server.clients == 1)
    assert outsider.is_connected
    assert len(pool) == 0


# ---- 2. wait_changed() and wait_writable() from anywhere ----------------------------------------


@pytest.mark.parametrize("context", CONTEXTS)
def test_wait_changed_is_true_at_a_change_from_anywhere(echo: ServerThread, home: Home, context: str) -> None:
    # A refused port with a fast backoff: the state changes every few milliseconds.
    echo.stop()
    conn = home.run(lambda cm: cm.connect(echo.port, HOST, backoff=FAST))
    started = time.monotonic()
    wait_changed = conn.wait_changed
    changed = wait_from(context, conn.loop, lambda: wait_changed(BOUND))
    assert changed is True
    assert time.monotonic() - started < BOUND


@pytest.mark.parametrize("context", CONTEXTS)
def test_wait_changed_is_false_at_its_timeout_from_anywhere(
    echo: ServerThread, home: Home, context: str
) -> None:
    conn = quiet(home, echo)
    started = time.monotonic()
    wait_changed = conn.wait_changed
    changed = wait_from(context, conn.loop, lambda: wait_changed(0.1))
    elapsed = time.monotonic() - started
    assert changed is False
    assert 0.09 < elapsed < BOUND
    assert conn.is_connected


def test_wait_changed_on_its_own_loop_wakes_at_the_next_change(echo: ServerThread, home: Home) -> None:
    conn = quiet(home, echo)

    async def watch() -> tuple[bool, State]:
        wait = conn.wait_changed(BOUND)
        waiting = asyncio.ensure_future(wait)
        await asyncio.sleep(0)  # the waiter is in place
        assert not waiting.done()
        echo.drop_clients()  # the change: the server closes the connection
        return await waiting, conn.state

    changed, state = on_loop(conn.loop, watch)
    assert changed is True
    assert state is not State.CONNECTED


@dataclass
class Stallable:
    """A proxy in front of a server that reads everything; `stall()` stops the proxy reading."""

    upstream: ServerThread
    proxy: FaultProxy

    @property
    def port(self) -> int:
        return self.proxy.port

    def stall(self, on: bool) -> None:
        async def switch() -> None:
            self.proxy.stall(on)

        self.upstream.call(switch())


@pytest.fixture
def stallable() -> Iterator[Stallable]:
    with ServerThread(EchoServer(mode="silent")) as upstream:
        proxy = FaultProxy(upstream.port)
        upstream.call(proxy.start())
        yield Stallable(upstream, proxy)
        upstream.call(proxy.stop())


@pytest.mark.parametrize("context", CONTEXTS)
def test_wait_writable_is_true_at_once_when_nothing_is_buffered_from_anywhere(
    echo: ServerThread, home: Home, context: str
) -> None:
    conn = connected(home, echo.port)
    started = time.monotonic()
    wait_writable = conn.wait_writable
    writable = wait_from(context, conn.loop, lambda: wait_writable(BOUND))
    assert writable is True
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("context", CONTEXTS)
def test_wait_writable_times_out_while_the_peer_stalls_and_wakes_when_it_reads_from_anywhere(
    stallable: Stallable, home: Home, context: str
) -> None:
    conn = connected(home, stallable.port)
    stallable.stall(True)
    conn.write(b"x" * (16 * MIB))  # far more than the kernel's buffers hold
    assert eventually(lambda: not conn.writable)

    wait_writable = conn.wait_writable
    started = time.monotonic()
    writable = wait_from(context, conn.loop, lambda: wait_writable(0.1))
    elapsed = time.monotonic() - started
    assert writable is False
    assert 0.09 < elapsed < BOUND

    stallable.stall(False)
    assert wait_from(context, conn.loop, lambda: wait_writable(BOUND)) is True
    assert conn.writable
    assert wait_from(context, conn.loop, lambda: conn.drain(BOUND)) is True  # the old name stays


# ---- 6. A connection whose loop is gone ---------------------------------------------------------


# uvloop warns as asyncio.run() closes a loop with a transport still open: that is this test's
# premise, not a leak. (As an error, the warning makes uvloop's loop.close() spin forever.)
@pytest.mark.filterwarnings("ignore:unclosed resource <TCPTransport:ResourceWarning")
@pytest.mark.parametrize("loop", LOOPS)
def test_disconnect_all_after_the_connections_loop_is_gone_closes_its_socket(
    echo: ServerThread, loop: str
) -> None:
    cm = connman.ConnectionManager()

    async def main() -> connman.Connection:
        conn = cm.connect(echo.port, HOST)
        assert await conn.wait_connected(BOUND)
        return conn  # returns without disconnecting: asyncio.run() then closes the loop

    conn = elsewhere(loop, main)
    assert conn.loop.is_closed()
    assert eventually(lambda: echo.server.accepts == 1)
    assert cm.disconnect_all(BOUND).result() is True
    assert eventually(lambda: echo.server.clients == 0), "disconnect_all() said True; the socket is open"
    assert conn.state is State.CLOSED
    assert len(cm) == 0


# ---- 8. Pools can be removed --------------------------------------------------------------------


@pytest.mark.parametrize("context", CONTEXTS)
def test_remove_pool_disconnects_its_members_and_forgets_it(
    echo: ServerThread, home: Home, context: str
) -> None:
    cm = home.manager
    pool = cm.create_pool("p")
    members = [home.run(lambda _: pool.add_connection(echo.port, HOST)) for _ in range(2)]
    outsider = connected(home, echo.port)
    assert all(member.wait_connected(BOUND) for member in members)

    remove_pool = cm.remove_pool
    assert wait_from(context, members[0].loop, lambda: remove_pool("p")) is True
    assert all(member.state is State.CLOSED for member in members)
    assert eventually(lambda: echo.server.clients == 1)
    assert outsider.is_connected
    assert "p" not in cm.pools
    with pytest.raises(connman.PoolNotFound):
        cm.get_pool("p")
    again = cm.create_pool("p")
    assert again is not pool
    assert len(again) == 0


@pytest.mark.parametrize("context", CONTEXTS)
def test_pool_close_disconnects_its_members_and_removes_it_from_its_manager(
    echo: ServerThread, home: Home, context: str
) -> None:
    cm = home.manager
    pool = cm.create_pool("p")
    members = [home.run(lambda _: pool.add_connection(echo.port, HOST)) for _ in range(2)]
    assert all(member.wait_connected(BOUND) for member in members)

    close = pool.close
    assert wait_from(context, members[0].loop, close) is True
    assert all(member.state is State.CLOSED for member in members)
    assert eventually(lambda: echo.server.clients == 0)
    assert len(pool) == 0
    with pytest.raises(connman.PoolNotFound):
        cm.get_pool("p")
    assert cm.create_pool("p") is not pool


# ---- 3, 4, 5, 7. Scripts: connman's own loop thread busy, exit, fork, SystemExit -----------------

SRC = Path(connman.__file__).resolve().parents[1]
ROOT = Path(__file__).resolve().parents[2]
#: A script that has not exited by then is killed; its test fails.
SCRIPT_TIMEOUT = 40.0

BUSY_WAITS = """
    # Item 3: every wait honours its timeout while a sync callback blocks connman's loop thread.
    import json, threading, time
    import connman
    from connman.testing import ServerThread

    SLOW = connman.Backoff(initial=30, cap=30, jitter="none")
    server = ServerThread().start()
    down = ServerThread().start()
    down.stop()  # its port refuses from now on

    blocking = threading.Event()

    def on_data(data):
        blocking.set()
        time.sleep(5)  # hogs connman's loop thread

    busy = connman.connect(server.port, "127.0.0.1", on_data=on_data)
    quiet = connman.connect(server.port, "127.0.0.1")
    refused = connman.connect(down.port, "127.0.0.1", backoff=SLOW)
    pool = connman.create_pool("down")
    pool.add_connection(down.port, "127.0.0.1", backoff=SLOW)
    assert busy.wait_connected(5) and quiet.wait_connected(5)
    busy.write(b"x")
    assert blocking.wait(5)
    calls = {
        "wait_changed": lambda: quiet.wait_changed(1),
        "wait_closed": lambda: quiet.wait_closed(1),
        "wait_connected": lambda: refused.wait_connected(1),
        "wait_any": lambda: pool.wait_any(1),
    }
    outcomes = {"loop": type(busy.loop).__module__}

    def measure(name):
        started = time.monotonic()
        try:
            outcome = repr(calls[name]().result())
        except BaseException as exc:
            outcome = repr(exc)
        outcomes[name] = [outcome, time.monotonic() - started]

    # All four start while the loop is blocked: one in the main thread, three in threads of their own.
    others = [threading.Thread(target=measure, args=(name,)) for name in list(calls)[1:]]
    for thread in others:
        thread.start()
    measure("wait_changed")
    for thread in others:
        thread.join(10)
    print(json.dumps(outcomes), flush=True)
"""

BUSY_AT_EXIT = """
    # Item 4: the script ends while a sync callback blocks connman's loop thread.
    import json, threading, time
    import connman
    from connman.testing import ServerThread

    server = ServerThread().start()
    blocking = threading.Event()

    def on_data(data):
        blocking.set()
        time.sleep(60)

    conn = connman.connect(server.port, "127.0.0.1", on_data=on_data)
    assert conn.wait_connected(5)
    conn.write(b"x")
    assert blocking.wait(5)
    print(json.dumps({"loop": type(conn.loop).__module__, "leaving": time.monotonic()}), flush=True)
"""

FLUSH_AT_EXIT = """
    # Item 4: a plain script writes 20 MiB to the test's server and just ends.
    import json, sys, time
    import connman

    conn = connman.connect(int(sys.argv[1]), "127.0.0.1")
    assert conn.wait_connected(5)
    chunk = b"x" * (1 << 20)
    for _ in range(20):
        conn.write(chunk)
    print(json.dumps({"loop": type(conn.loop).__module__, "leaving": time.monotonic()}), flush=True)
"""

FORK = """
    # Item 5: a forked child uses connman, writes 20 MiB and calls sys.exit(0).
    import json, os, signal, sys, threading, time
    import connman
    from connman.testing import EchoServer, ServerThread

    echo = ServerThread().start()
    sink = ServerThread(EchoServer(mode="silent")).start()
    echoes = bytearray()
    echoed = threading.Event()

    def on_data(data):
        echoes.extend(data)
        if b"after the fork" in echoes:
            echoed.set()

    conn = connman.connect(echo.port, "127.0.0.1", on_data=on_data)
    assert conn.wait_connected(5)
    pid = os.fork()
    if pid == 0:
        child = connman.connect(sink.port, "127.0.0.1")
        if not child.wait_connected(5):
            os._exit(1)
        chunk = b"x" * (1 << 20)
        for _ in range(20):
            child.write(chunk)
        sys.exit(0)

    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        child_status = "killed: did not exit in 20 s"
    else:
        child_status = os.waitstatus_to_exitcode(done[1])
    # The child's socket is closed now (by connman, or by the kernel as the child died): let the
    # sink read what reached it.
    deadline = time.monotonic() + 5
    while (sink.server.accepts == 0 or sink.server.clients) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        conn.write(b"after the fork")
        parent = echoed.wait(5)
    except Exception as exc:
        parent = repr(exc)
    print(json.dumps({
        "loop": type(conn.loop).__module__,
        "child": child_status,
        "received": sink.server.received,
        "parent_echoed": parent,
    }), flush=True)
    connman.disconnect_all()
"""

SYSTEM_EXIT = """
    # Item 7: sys.exit(3) raised in a sync on_data on connman's loop thread.
    import json, logging, sys, threading
    import connman
    from connman.testing import ServerThread

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logging.getLogger("connman").addHandler(Keep())
    server = ServerThread().start()
    raised = threading.Event()
    echoed = threading.Event()

    def on_data(data):
        if not raised.is_set():
            raised.set()
            sys.exit(3)
        if b"still there?" in data:
            echoed.set()

    conn = connman.connect(server.port, "127.0.0.1", on_data=on_data)
    assert conn.wait_connected(5)
    conn.write(b"boom")
    assert raised.wait(5)
    try:
        up = bool(conn.wait_connected(5))
        conn.write(b"still there?")
        works = echoed.wait(5)
    except Exception as exc:
        up, works = None, repr(exc)

    def mentions_system_exit(record):
        error = record.exc_info[0] if record.exc_info else None
        return error is SystemExit or "SystemExit" in record.getMessage()

    print(json.dumps({
        "loop": type(conn.loop).__module__,
        "up": up,
        "works": works,
        "logged": [
            record.getMessage() for record in records
            if record.levelno >= logging.ERROR and mentions_system_exit(record)
        ],
    }), flush=True)
    connman.disconnect_all()
"""


@dataclass(frozen=True)
class Finished:
    """How a script ended."""

    stdout: str
    stderr: str
    returncode: int
    exited_at: float  # time.monotonic() (system-wide on Linux, so comparable with the script's)
    elapsed: float

    def outcome(self) -> dict[str, Any]:
        """The JSON object the script printed last."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"no output; stderr:\n{self.stderr}"
        outcome: dict[str, Any] = json.loads(lines[-1])
        return outcome


class Script:
    """A script started in a subprocess at once; `finished()` waits for it (bounded)."""

    def __init__(self, tmp: Path, name: str, source: str, loop: str, args: tuple[str, ...] = ()) -> None:
        path = tmp / f"{name}_{loop}.py"
        path.write_text(textwrap.dedent(source))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SRC), str(ROOT)]),
            "CONNMAN_UVLOOP": "1" if loop == "uvloop" else "0",
        }
        self.loop = loop
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            [sys.executable, str(path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._finished: Finished | None = None
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        try:
            stdout, stderr = self._process.communicate(timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            stdout, stderr = self._process.communicate()
            stderr += f"\n[killed: still running after {SCRIPT_TIMEOUT} s]"
        now = time.monotonic()
        self._finished = Finished(stdout, stderr, self._process.returncode, now, now - self._started)

    def finished(self) -> Finished:
        self._waiter.join(SCRIPT_TIMEOUT + BOUND)
        assert self._finished is not None
        done = self._finished
        if done.stdout.strip():
            assert done.outcome().get("loop", "").startswith(self.loop), done.stdout
        return done


@dataclass
class Scripts:
    runs: dict[tuple[str, str], Script]
    sinks: dict[str, ServerThread]

    def __getitem__(self, key: tuple[str, str]) -> Script:
        if key not in self.runs:
            pytest.skip("uvloop is not installed")
        return self.runs[key]


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scripts]:
    """Every script on both loops, started together so that the file runs in seconds."""
    tmp = tmp_path_factory.mktemp("door")
    loops = [loop for loop in LOOPS if loop != "uvloop" or HAVE_UVLOOP]
    sinks = {loop: ServerThread(EchoServer(mode="silent")).start() for loop in loops}
    runs: dict[tuple[str, str], Script] = {}
    for loop in loops:
        runs["busy_waits", loop] = Script(tmp, "busy_waits", BUSY_WAITS, loop)
        runs["busy_at_exit", loop] = Script(tmp, "busy_at_exit", BUSY_AT_EXIT, loop)
        runs["flush_at_exit", loop] = Script(tmp, "flush", FLUSH_AT_EXIT, loop, (str(sinks[loop].port),))
        runs["fork", loop] = Script(tmp, "fork", FORK, loop)
        runs["system_exit", loop] = Script(tmp, "system_exit", SYSTEM_EXIT, loop)
    yield Scripts(runs, sinks)
    for run in runs.values():
        run.finished()
    for sink in sinks.values():
        sink.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    ("call", "expected"),
    [("wait_changed", "False"), ("wait_closed", "False"), ("wait_connected", "False"), ("wait_any", "None")],
)
def test_a_wait_honours_its_timeout_while_a_sync_callback_blocks_connmans_loop(
    scripts: Scripts, loop: str, call: str, expected: str
) -> None:
    done = scripts["busy_waits", loop].finished()
    measured = done.outcome().get(call)
    assert measured is not None, f"{call}() did not return in 10 s; stderr:\n{done.stderr}"
    outcome, elapsed = measured
    assert outcome == expected, done.stderr
    assert 0.9 < elapsed < 2.0


@pytest.mark.parametrize("loop", LOOPS)
def test_exit_while_a_sync_callback_blocks_connmans_loop_is_prompt_and_quiet(
    scripts: Scripts, loop: str
) -> None:
    done = scripts["busy_at_exit", loop].finished()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "did not answer in time" not in done.stderr
    assert done.exited_at - done.outcome()["leaving"] < 8


@pytest.mark.parametrize("loop", LOOPS)
def test_a_script_that_writes_20_mib_and_ends_delivers_all_of_it(scripts: Scripts, loop: str) -> None:
    done = scripts["flush_at_exit", loop].finished()
    assert done.returncode == 0, done.stderr
    sink = scripts.sinks[loop].server
    assert eventually(lambda: sink.accepts == 1 and sink.clients == 0 and sink.received == 20 * MIB)
    assert sink.received == 20 * MIB


@pytest.mark.parametrize("loop", LOOPS)
def test_a_forked_child_that_writes_20_mib_and_exits_delivers_all_of_it(scripts: Scripts, loop: str) -> None:
    done = scripts["fork", loop].finished()
    assert done.returncode == 0, done.stderr
    outcome = done.outcome()
    assert outcome["child"] == 0, done.stderr
    assert outcome["received"] == 20 * MIB
    assert outcome["parent_echoed"] is True  # the parent's own connection still works


@pytest.mark.parametrize("loop", LOOPS)
def test_system_exit_in_a_sync_callback_is_logged_and_the_loop_thread_carries_on(
    scripts: Scripts, loop: str
) -> None:
    done = scripts["system_exit", loop].finished()
    assert done.returncode == 0, done.stderr
    outcome = done.outcome()
    assert outcome["up"] is True, done.stderr
    assert outcome["works"] is True, done.stderr
    assert outcome["logged"] != [], "the SystemExit was not logged on the connman logger"
