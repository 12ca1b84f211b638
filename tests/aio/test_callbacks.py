"""The dispatcher's promises: one at a time, in order, every failure reported, the loop never ended.

Callbacks of one connection never overlap, even when one asks for another; every callback, queued
or not, sync or async, goes through one path (slow-callback warning, catching, `on_error`); and what
a callback raises, `SystemExit` and `KeyboardInterrupt` included, never ends the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND, SLOW, Recorder

# ---- one path: a queued callback is timed like any other ---------------------------------------


async def test_a_sync_callback_queued_behind_an_async_one_is_warned_about_when_slow(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    rec = Recorder()

    async def on_data(data: bytes) -> None:
        inside.set()
        await release.wait()

    def sluggish_on_reset() -> None:
        time.sleep(0.15)  # longer than SLOW_CALLBACK (0.1 s): it blocks the loop, on purpose
        rec.add("reset")

    asyncio.get_running_loop().set_debug(True)  # on the application's loop, timed in debug mode only
    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data, on_reset=sluggish_on_reset, backoff=SLOW)
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    async with asyncio.timeout(BOUND):
        await inside.wait()
    conn.reconnect()  # on_reset queues behind the async on_data still running
    with caplog.at_level(logging.WARNING, logger="connman"):
        release.set()
        await rec.wait("reset")
    messages = [r.getMessage() for r in caplog.records]
    assert any("on_reset callback" in m and "sluggish_on_reset blocked the event loop" in m for m in messages)


# ---- where callbacks are timed (decision 48) -----------------------------------------------------


async def test_callbacks_on_a_loop_not_in_debug_mode_are_not_timed(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def sluggish_on_data(data: bytes) -> None:
        time.sleep(0.15)  # past 0.1 s: a debug-mode loop would name it
        rec.add("data")

    assert not asyncio.get_running_loop().get_debug()
    conn = cm.connect(server.port, "127.0.0.1", on_data=sluggish_on_data)
    assert await conn.wait_connected(BOUND)
    with caplog.at_level(logging.WARNING, logger="connman"):
        conn.write(b"x")
        await rec.wait("data")
    assert not [r for r in caplog.records if "blocked the event loop" in r.getMessage()]


def run_sluggish_on_data(
    tmp_path: Path, setting: str, debug: bool, sleep: float
) -> subprocess.CompletedProcess[str]:
    """A plain script whose `on_data` sleeps `sleep` s, with CONNMAN_SLOW_CALLBACK=`setting`; its
    stdout says "delivered" once the callback ran, its stderr has connman's warnings."""
    return run_script(
        tmp_path,
        f"""
        import asyncio, logging, time
        import connman
        from connman.testing import EchoServer

        logging.basicConfig(level=logging.WARNING, format="%(message)s")

        async def main():
            got = asyncio.Event()

            def sluggish_on_data(data):
                time.sleep({sleep})
                got.set()

            async with EchoServer() as server, connman.ConnectionManager() as cm:
                conn = cm.connect(server.port, "127.0.0.1", on_data=sluggish_on_data)
                await conn.wait_connected(5)
                conn.write(b"x")
                await asyncio.wait_for(got.wait(), 5)
            print("delivered")

        asyncio.run(main(), debug={debug})
        """,
        {"CONNMAN_SLOW_CALLBACK": setting},
    )


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_connman_slow_callback_set_times_callbacks_on_any_loop(tmp_path: Path, debug: bool) -> None:
    done = run_sluggish_on_data(tmp_path, "0.05", debug, sleep=0.08)
    assert done.returncode == 0, done.stderr
    assert (
        "on_data callback" in done.stderr and "sluggish_on_data blocked the event loop for 0.0" in done.stderr
    )


def test_connman_slow_callback_0_turns_timing_off_even_in_debug_mode(tmp_path: Path) -> None:
    done = run_sluggish_on_data(tmp_path, "0", debug=True, sleep=0.15)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "delivered"
    assert "blocked the event loop" not in done.stderr


# ---- on_error is a callback like the others ------------------------------------------------------


async def test_an_async_on_error_is_awaited(server: EchoServer, cm: connman.ConnectionManager) -> None:
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        raise RuntimeError("boom")

    async def on_error(exc: BaseException) -> None:
        await asyncio.sleep(0)
        rec.add("error", exc)

    cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_error=on_error)
    await rec.wait("error")
    assert [str(exc) for _, exc in rec.events] == ["boom"]


async def test_on_error_runs_right_after_the_failed_callback_and_never_overlaps(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()
    release = asyncio.Event()

    def on_data(data: bytes) -> None:
        rec.add("data")
        if rec.count("data") == 1:
            conn.reconnect()  # asks for on_reset, which must wait for on_error
            raise ValueError("boom in on_data")

    async def on_error(exc: BaseException) -> None:
        rec.add("error-start")
        await release.wait()
        rec.add("error-end")

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=lambda conn: rec.add("connect"),
        on_data=on_data,
        on_reset=lambda: rec.add("reset"),
        on_error=on_error,
        backoff=SLOW,
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("error-start")
    release.set()
    await rec.wait("connect", 2)
    assert rec.kinds() == ["connect", "data", "error-start", "error-end", "reset", "connect"]


async def test_an_async_on_error_that_raises_is_only_logged(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        raise RuntimeError("boom")

    async def on_error(exc: BaseException) -> None:
        await asyncio.sleep(0)
        rec.add("error", exc)
        raise RuntimeError("on_error broke")  # in the same step: logged before the test wakes

    with caplog.at_level(logging.ERROR, logger="connman"):
        cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_error=on_error)
        await rec.wait("error")
    assert rec.count("error") == 1  # not called again with its own failure
    assert [r.getMessage() for r in caplog.records] == [
        "on_connect callback failed",
        "on_error callback failed",
    ]


# ---- no overlap: a callback asked for by another one runs after it -----------------------------


async def test_reconnect_inside_on_data_runs_on_reset_after_on_data_returns(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    def on_data(data: bytes) -> None:
        rec.add("data-start")
        conn.reconnect()
        rec.add("data-end")

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=lambda conn: rec.add("connect"),
        on_data=on_data,
        on_reset=lambda: rec.add("reset"),
        backoff=SLOW,
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("connect", 2)
    assert rec.kinds() == ["connect", "data-start", "data-end", "reset", "connect"]


async def test_reconnect_inside_on_connect_runs_on_reset_after_on_connect_returns(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        rec.add("connect-start")
        if rec.count("connect-start") == 1:
            conn.reconnect()
        rec.add("connect-end")

    cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_reset=lambda: rec.add("reset"))
    await rec.wait("connect-end", 2)
    assert rec.kinds() == ["connect-start", "connect-end", "reset", "connect-start", "connect-end"]


async def test_a_queued_on_reset_still_hands_over_its_resume_callable(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    def on_data(data: bytes) -> None:
        rec.add("data-start")
        conn.reconnect()
        rec.add("data-end")

    def on_reset() -> Callable[[], None]:
        rec.add("reset")
        return lambda: rec.add("resume")

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=lambda conn: rec.add("connect"),
        on_data=on_data,
        on_reset=on_reset,
        backoff=SLOW,
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("resume")
    assert rec.kinds() == ["connect", "data-start", "data-end", "reset", "resume"]


# ---- disconnect() and the callbacks still to come ------------------------------------------------


async def test_disconnect_cancels_the_async_callback_running_and_drops_those_queued(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_data(data: bytes) -> None:
        rec.add("data")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            rec.add("cancelled")
            raise

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data, on_reset=lambda: rec.add("reset"))
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("data")
    conn.reconnect()  # on_reset queues behind on_data
    assert await conn.disconnect(BOUND)
    assert rec.kinds() == ["data", "cancelled"]


async def test_disconnect_from_inside_an_async_callback_lets_it_finish(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_data(data: bytes) -> None:
        conn.disconnect()
        await asyncio.sleep(0)
        rec.add("finished")

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data)
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    assert await conn.wait_closed(BOUND)
    assert rec.kinds() == ["finished"]


async def test_an_async_callback_cancelled_before_it_started_is_closed(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_reset() -> None:
        rec.add("reset")

    conn = cm.connect(server.port, "127.0.0.1", on_reset=on_reset)
    assert await conn.wait_connected(BOUND)
    conn.reconnect()  # on_reset's coroutine is made, its task not started yet
    assert await conn.disconnect(BOUND)
    assert rec.kinds() == []
    # Had its coroutine been left unclosed, collecting it would warn "never awaited" (an error here).


# ---- exceptions that end threads do not end the loop -------------------------------------------

LOOPS = pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)


def run_on(new_loop: Callable[[], asyncio.AbstractEventLoop], scenario: Callable[[], object]) -> None:
    """Run `scenario()` on a loop of its own; an exception escaping the loop fails the test.

    (A KeyboardInterrupt reaching pytest would end the whole session, not just this test.)
    """
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(scenario())  # type: ignore[arg-type]
    except (SystemExit, KeyboardInterrupt) as exc:
        pytest.fail(f"{exc!r} escaped the event loop")


@LOOPS
@pytest.mark.parametrize("exit_exception", [SystemExit(3), KeyboardInterrupt()], ids=repr)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_system_exit_and_keyboard_interrupt_in_a_callback_are_reported_and_the_connection_carries_on(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
    exit_exception: BaseException,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        rec = Recorder()

        def record(data: bytes) -> None:
            if data == b"boom":
                raise exit_exception
            rec.on_data(data)

        async def record_later(data: bytes) -> None:
            await asyncio.sleep(0)
            record(data)

        async with EchoServer() as server, connman.ConnectionManager() as cm:
            conn = cm.connect(
                server.port,
                "127.0.0.1",
                on_data=record if kind == "sync" else record_later,
                on_error=lambda exc: rec.add("error", exc),
                backoff=SLOW,
            )
            assert await conn.wait_connected(BOUND)
            conn.write(b"boom")
            await rec.wait("error")
            conn.write(b"ping")
            await rec.wait_bytes(4)
            assert bytes(rec.data) == b"ping"
            assert conn.is_connected and conn.stats.connects == 1

        assert [exc for kind, exc in rec.events if kind == "error"] == [exit_exception]

    with caplog.at_level(logging.ERROR, logger="connman"):
        run_on(new_loop, scenario)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(
        f"on_data callback failed: it raised {type(exit_exception).__name__}, which did not end the program"
    )
    assert record.exc_info is not None and record.exc_info[1] is exit_exception


@LOOPS
def test_an_async_callback_cancelled_by_disconnect_is_not_reported(
    new_loop: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        rec = Recorder()

        async def on_data(data: bytes) -> None:
            rec.add("data")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                rec.add("cancelled")
                raise

        async with EchoServer() as server, connman.ConnectionManager() as cm:
            conn = cm.connect(
                server.port, "127.0.0.1", on_data=on_data, on_error=lambda exc: rec.add("error", exc)
            )
            assert await conn.wait_connected(BOUND)
            conn.write(b"x")
            await rec.wait("data")
            assert await conn.disconnect()
            assert rec.kinds() == ["data", "cancelled"]

    with caplog.at_level(logging.ERROR, logger="connman"):
        run_on(new_loop, scenario)
    assert caplog.records == []


def run_script(tmp_path: Path, source: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `source` as a plain script with the connman under test (not whichever one is installed)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    src = str(Path(connman.__file__).resolve().parents[1])
    env = {**os.environ, **env, "PYTHONPATH": src}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize("uvloop_env", ["0", "1"], ids=["asyncio", "uvloop"])
def test_sys_exit_in_a_sync_on_data_leaves_the_loop_thread_running(tmp_path: Path, uvloop_env: str) -> None:
    done = run_script(
        tmp_path,
        """
        import sys, threading
        import connman
        from connman.testing import ServerThread

        server = ServerThread().start()
        exited = threading.Event()
        echoed = threading.Event()
        received = bytearray()

        def on_data(data):
            if not exited.is_set():
                exited.set()
                sys.exit(3)
            received.extend(data)
            if len(received) >= 4:
                echoed.set()

        conn = connman.connect(server.port, "127.0.0.1", on_data=on_data)
        assert conn.wait_connected(5)
        conn.write(b"boom")
        assert exited.wait(5)
        conn.write(b"ping")
        assert echoed.wait(5), "no echo after sys.exit() in on_data"
        assert bytes(received) == b"ping" and conn.is_connected
        assert conn.disconnect()
        server.close()
        print("carried on")
        """,
        {"CONNMAN_UVLOOP": uvloop_env},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "carried on\n"
    assert "on_data callback failed: it raised SystemExit, which did not end the program" in done.stderr
