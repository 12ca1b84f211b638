"""Plain synchronous use: scripts with no asyncio in subprocesses, and threads hammering write()."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import connman
from connman.testing import EchoServer, ServerThread

ROOT = Path(__file__).resolve().parents[2]
FAST = "connman.Backoff(initial=0.005, factor=1.5, cap=0.05, jitter='none')"


def run_script(tmp_path: Path, source: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env=env
    )
    done.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return done


def test_seed_readme_single_connection_example_as_a_plain_script(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        f"""
        import threading
        import connman
        from connman.testing import ServerThread

        server = ServerThread().start()
        got = threading.Event()
        received = bytearray()
        log = []
        sock = None

        def use_socket():
            log.append("use")
            for _ in range(100):
                sock.write(b"ping\\r\\n")

        def on_data(buff):
            received.extend(buff)
            if len(received) % 600 == 0:
                got.set()

        def on_connect(socket):
            global sock
            sock = socket
            log.append("connect")
            use_socket()

        def on_reset():
            log.append("reset")
            return use_socket

        connman.connect(server.port, "127.0.0.1", on_connect=on_connect, on_data=on_data,
                        on_reset=on_reset, backoff={FAST})
        assert got.wait(10)
        got.clear()
        server.restart()
        assert got.wait(10)
        assert connman.get_connection(server.port, "127.0.0.1") is sock
        assert connman.disconnect_all()
        assert bytes(received) == b"ping\\r\\n" * 200, len(received)
        assert log == ["connect", "use", "reset", "use"], log
        server.close()
        print("ok")
        """,
    )
    assert done.stderr == ""
    assert done.stdout == "ok\n"
    assert done.returncode == 0
    assert done.elapsed < 10  # type: ignore[attr-defined]


def test_seed_readme_pool_example_as_a_plain_script(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        f"""
        import threading
        import connman
        from connman.testing import ServerThread

        servers = [ServerThread().start() for _ in range(3)]
        pool = connman.create_pool("myPool")
        for server in servers:
            pool.add_connection(server.port, "127.0.0.1", backoff={FAST})
        for conn in pool:
            assert conn.wait_connected(5)
        assert connman.get_pool("myPool") is pool
        assert len(pool.connected()) == 3
        servers[0].stop()
        while len(pool.connected()) != 2:
            assert pool.wait_any(5).result() is not None
        assert servers[0].server.port not in [c.endpoint.port for c in pool.connected()]
        servers[0].start()
        assert connman.get_pool("myPool").disconnect()
        assert len(pool) == 0
        for server in servers:
            server.close()
        print("ok")
        """,
    )
    assert done.stderr == ""
    assert done.stdout == "ok\n"
    assert done.returncode == 0


def test_exit_with_connections_still_open_is_prompt_and_quiet(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        """
        import connman
        from connman.testing import ServerThread

        server = ServerThread().start()
        up = connman.connect(server.port, "127.0.0.1", on_data=print)
        assert up.wait_connected(5)
        # One waiting on a long retry timer, one async callback in flight: neither may hold exit.
        connman.connect(9, "127.0.0.1", backoff=connman.Backoff(initial=60, cap=60))
        async def slow(data):
            import asyncio
            await asyncio.sleep(60)
        busy = connman.connect(server.port, "127.0.0.1", on_data=slow)
        assert busy.wait_connected(5)
        busy.write(b"x")
        print("leaving")
        """,
    )
    assert done.stdout == "leaving\n"
    assert done.stderr == ""
    assert done.returncode == 0
    assert done.elapsed < 8  # type: ignore[attr-defined]


def test_uvloop_is_used_when_installed_unless_turned_off(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    source = """
        import connman
        conn = connman.connect(9, "127.0.0.1")
        print(type(conn.loop).__module__)
        connman.disconnect_all()
        """
    assert run_script(tmp_path, source).stdout.startswith("uvloop")
    os.environ["CONNMAN_UVLOOP"] = "0"
    try:
        assert run_script(tmp_path, source).stdout.startswith("asyncio")
    finally:
        del os.environ["CONNMAN_UVLOOP"]


def test_eight_threads_writing_10000_records_each_arrive_whole_and_in_order() -> None:
    threads, records = 8, 10_000
    with ServerThread(EchoServer(mode="silent", keep_data=True)) as server:
        with connman.ConnectionManager() as cm:
            conn = cm.connect(server.port, "127.0.0.1")
            assert conn.wait_connected(5)
            start = threading.Barrier(threads)

            def writer(thread: int) -> None:
                start.wait()
                for n in range(records):
                    conn.write(b"<%d:%d>" % (thread, n))

            workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
            started = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(30)
            expected = sum(len(b"<%d:%d>" % (t, n)) for t in range(threads) for n in range(records))
            deadline = time.monotonic() + 10
            while server.server.received < expected and time.monotonic() < deadline:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            assert conn.stats.bytes_out == expected
        data = bytes(server.server.data)
    assert len(data) == expected
    assert data.startswith(b"<") and data.endswith(b">")
    seen = [-1] * threads
    for record in data[1:-1].split(b"><"):
        thread, n = map(int, record.split(b":"))  # a torn record would not parse
        assert n == seen[thread] + 1
        seen[thread] = n
    assert seen == [records - 1] * threads
    logging.getLogger("tests").info("8 x 10,000 records in %.3f s", elapsed)


def test_calls_from_inside_callbacks_on_the_loop_thread_do_not_deadlock() -> None:
    with ServerThread() as server, connman.ConnectionManager() as cm:
        results: list[object] = []
        done = threading.Event()

        def on_connect(conn: connman.Connection) -> None:
            results.append(cm.get_connection(server.port, "127.0.0.1") is conn)
            conn.write(b"hi")
            wait = conn.wait_connected(1)  # on the loop thread: pending, never blocks
            results.append(wait.done())
            pool = cm.create_pool("inside")
            results.append(pool.connected())
            results.append(cm.disconnect_all().done())  # takes effect at once, returns
            done.set()

        cm.connect(server.port, "127.0.0.1", on_connect=on_connect)
        assert done.wait(5)
        assert results == [True, False, [], False]
        assert len(cm) == 0


def test_wait_connected_blocks_and_returns_a_bool() -> None:
    with ServerThread() as server, connman.ConnectionManager() as cm:
        conn = cm.connect(server.port, "127.0.0.1")
        assert conn.wait_connected(5)
        assert conn.wait_connected(5).result() is True
        server.stop()
        started = time.monotonic()
        while conn.is_connected and time.monotonic() - started < 5:
            time.sleep(0.005)
        slow = connman.Backoff(initial=30, cap=30)
        down = cm.connect(server.port, "127.0.0.1", backoff=slow)
        wait = down.wait_connected(0.05)
        assert not wait
        assert wait.result() is False
        assert "done: False" in repr(wait)
        assert conn.disconnect()
        assert not conn.wait_connected(1)


def test_write_from_a_thread_while_down_raises_at_the_call() -> None:
    with connman.ConnectionManager() as cm:
        conn = cm.connect(9, "127.0.0.1", backoff=connman.Backoff(initial=30, cap=30))
        with pytest.raises(connman.NotConnected):
            conn.write(b"x")
        conn.disconnect()
        with pytest.raises(connman.Disconnected):
            conn.write(b"x")


def test_a_full_queue_raises_at_the_call_from_a_thread() -> None:
    with connman.ConnectionManager() as cm:
        conn = cm.connect(9, "127.0.0.1", backoff=connman.Backoff(initial=30, cap=30), queue_while_down=10)
        conn.write(b"12345")
        conn.write(b"678")
        with pytest.raises(connman.QueueFull, match="would exceed queue_while_down=10"):
            conn.write(b"abc")
        conn.write(b"90")  # the queue kept what it had, and takes what still fits
        assert _eventually(lambda: conn.stats.queued == 10)
        conn.disconnect()


def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_slow_callbacks_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    def sluggish_on_data(data: bytes) -> None:
        time.sleep(0.15)
        done.set()

    done = threading.Event()
    with caplog.at_level(logging.WARNING, logger="connman"):
        with ServerThread() as server, connman.ConnectionManager() as cm:
            conn = cm.connect(server.port, "127.0.0.1", on_data=sluggish_on_data)
            assert conn.wait_connected(5)
            conn.write(b"x")
            assert done.wait(5)
    messages = [r.getMessage() for r in caplog.records]
    assert any("sluggish_on_data blocked the event loop for 0.1" in m for m in messages), messages


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_after_use_child_starts_afresh(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        """
        import os, connman
        from connman.testing import ServerThread

        server = ServerThread().start()
        conn = connman.connect(server.port, "127.0.0.1")
        assert conn.wait_connected(5)
        pid = os.fork()
        if pid == 0:
            # The child: no registry from the parent, a loop thread of its own on first use.
            assert len(connman.default_manager()) == 0
            child = connman.connect(server.port, "127.0.0.1")
            ok = bool(child.wait_connected(5)) and bool(connman.disconnect_all())
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert conn.is_connected
        assert connman.disconnect_all()
        server.close()
        print("ok")
        """,
    )
    assert done.stdout == "ok\n", done.stderr
    assert done.returncode == 0


def test_a_forked_child_writes_even_if_a_thread_held_the_write_lock_at_the_fork(tmp_path: Path) -> None:
    # A parent thread inside write() at the moment of the fork leaves the lock held in the child,
    # where that thread does not exist: the child must get fresh locks, not hang on its first write.
    done = run_script(
        tmp_path,
        """
        import os, signal, threading, connman, connman.connection
        from connman.testing import ServerThread

        server = ServerThread().start()
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with connman.connection._BATCH_LOCK:
                held.set()
                release.wait(10)

        threading.Thread(target=hold, daemon=True).start()
        held.wait(5)
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)  # a hang fails the test instead of holding it
            child = connman.connect(server.port, "127.0.0.1")
            ok = bool(child.wait_connected(5))
            child.write(b"from the child")
            ok = ok and bool(child.wait_flushed(5)) and bool(connman.disconnect_all())
            os._exit(0 if ok else 1)
        release.set()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        server.close()
        print("ok")
        """,
    )
    assert done.stdout == "ok\n", done.stderr
    assert done.returncode == 0
