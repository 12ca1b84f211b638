"""connman.Pipeline over real loopback servers: answers in order to the right caller, failures at once
when the connection drops, waits bounded by the timeout, memory bounded by max_in_flight."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from collections.abc import AsyncIterator

import pytest

import connman
from connman import Cause, Pipeline, framing
from connman.testing import EchoServer, ServerThread
from tests.conftest import BOUND, FAST, Recorder


class HeldServer:
    """A line server that answers each line with itself, but only once `release()` says so."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        answers: list[asyncio.Task[None]] = []
        try:
            while line := await reader.readline():
                self.lines.append(line)
                # One task per line, each waiting for the release: they answer in order.
                answers.append(asyncio.ensure_future(self._answer(writer, line)))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for task in answers:
                task.cancel()
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        await self._release.wait()
        if not writer.is_closing():
            writer.write(line)

    def release(self) -> None:
        self._release.set()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        await self._server.wait_closed()


@pytest.fixture
async def held() -> AsyncIterator[HeldServer]:
    server = HeldServer()
    await server.start()
    yield server
    await server.stop()


async def test_eight_callers_each_get_their_own_answer(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
    pipeline.connect(server.port, "127.0.0.1", manager=cm)

    async def caller(number: int) -> None:
        for n in range(200):
            request = b"caller %d request %d" % (number, n)
            assert await pipeline.request(request + b"\n") == request

    await asyncio.gather(*(caller(number) for number in range(8)))
    assert pipeline.in_flight == 0
    await pipeline.close()


async def test_a_request_made_while_down_waits_for_the_connection(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
    conn = pipeline.connect(down_server.port, "127.0.0.1", manager=cm, backoff=FAST)
    answer = asyncio.ensure_future(pipeline.request(b"hello\n"))
    await asyncio.sleep(0)
    assert not answer.done() and not conn.is_connected
    await down_server.start()
    async with asyncio.timeout(BOUND):
        assert await answer == b"hello"
    await pipeline.close()


async def test_a_request_down_for_its_whole_timeout_fails_with_not_connected(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pipeline: Pipeline[bytes] = Pipeline()
    pipeline.connect(down_server.port, "127.0.0.1", manager=cm, backoff=FAST)
    with pytest.raises(connman.NotConnected, match=r"not connected within 0\.05 s"):
        await pipeline.request(b"hello\n", timeout=0.05)
    await pipeline.close()


async def test_a_drop_fails_every_request_in_flight_at_once_and_the_next_ones_go_on(
    held: HeldServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=30)  # a failure must not wait for the timeout
    conn = pipeline.connect(held.port, "127.0.0.1", manager=cm, backoff=FAST)
    await conn.wait_connected(BOUND)
    answers = [asyncio.ensure_future(pipeline.request(b"r%d\n" % n)) for n in range(5)]
    await recorder.until(lambda: len(held.lines) == 5)
    assert pipeline.in_flight == 5
    for writer in held.writers:
        writer.transport.abort()
    async with asyncio.timeout(BOUND):
        outcomes = await asyncio.gather(*answers, return_exceptions=True)
    assert all(isinstance(outcome, connman.NotConnected) for outcome in outcomes), outcomes
    assert "may have been applied" in str(outcomes[0])
    held.release()
    async with asyncio.timeout(BOUND):
        assert await pipeline.request(b"after\n") == b"after"
    await pipeline.close()


async def test_a_caller_that_timed_out_never_receives_another_callers_answer(
    held: HeldServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
    conn = pipeline.connect(held.port, "127.0.0.1", manager=cm)
    await conn.wait_connected(BOUND)
    with pytest.raises(TimeoutError, match=r"no answer within 0\.05 s"):
        await pipeline.request(b"first\n", timeout=0.05)
    cancelled = asyncio.ensure_future(pipeline.request(b"second\n"))
    await recorder.until(lambda: len(held.lines) == 2)
    cancelled.cancel()
    second = pipeline.request(b"third\n")
    held.release()
    async with asyncio.timeout(BOUND):
        assert await second == b"third"  # not b"first" nor b"second", whose answers came before
    assert pipeline.in_flight == 0
    await pipeline.close()


async def test_max_in_flight_bounds_what_is_sent_and_the_rest_waits_for_a_slot(
    held: HeldServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND, max_in_flight=2)
    conn = pipeline.connect(held.port, "127.0.0.1", manager=cm)
    await conn.wait_connected(BOUND)
    answers = [asyncio.ensure_future(pipeline.request(b"r%d\n" % n)) for n in range(3)]
    await recorder.until(lambda: len(held.lines) == 2)
    await asyncio.sleep(0.02)  # a chance for a third line to arrive, which it must not
    assert len(held.lines) == 2 and pipeline.in_flight == 2
    with pytest.raises(TimeoutError, match="no free slot"):
        await pipeline.request(b"late\n", timeout=0.05)
    held.release()
    async with asyncio.timeout(BOUND):
        assert await asyncio.gather(*answers) == [b"r0", b"r1", b"r2"]
    await pipeline.close()


async def test_an_answer_nobody_asked_for_is_a_protocol_error(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(mode="silent") as server:
        pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
        conn = pipeline.connect(server.port, "127.0.0.1", manager=cm, backoff=FAST)
        await conn.wait_connected(BOUND)
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"unsolicited\n")
        await recorder.until(lambda: conn.stats.resets == 1)
        assert conn.last_cause is Cause.PROTOCOL
        await pipeline.close()


class ErrorReply(Exception):
    pass


def error_or_line(line: bytes) -> bytes | ErrorReply:
    return ErrorReply(line.decode()) if line.startswith(b"-") else line


async def test_a_frame_that_is_an_exception_is_raised_to_its_caller_only(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(
        lambda on_frame: framing.lines(lambda line: on_frame(error_or_line(line))), timeout=BOUND
    )
    pipeline.connect(server.port, "127.0.0.1", manager=cm)
    bad = pipeline.request(b"-ERR no\n")
    good = pipeline.request(b"+OK\n")
    with pytest.raises(ErrorReply, match="-ERR no"):
        await bad
    assert await good == b"+OK"
    await pipeline.close()


async def test_a_pool_pipeline_routes_by_key_and_keeps_each_members_order(
    cm: connman.ConnectionManager,
) -> None:
    async with EchoServer() as one, EchoServer() as two:
        pool = cm.create_pool("pipelined")
        pipeline: Pipeline[bytes] = Pipeline(pool=pool, timeout=BOUND)
        for server in (one, two):
            pipeline.connect(server.port, "127.0.0.1")
        await pool.wait_any(BOUND)
        await asyncio.gather(*(conn.wait_connected(BOUND) for conn in pool))
        keys = [f"key{n}" for n in range(40)]
        answers = await asyncio.gather(*(pipeline.request(b"%s\n" % k.encode(), key=k) for k in keys))
        assert answers == [k.encode() for k in keys]
        assert one.received > 0 and two.received > 0  # both members carried some
        await pipeline.close()


async def test_close_fails_what_is_waiting_with_disconnected(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
    pipeline.connect(down_server.port, "127.0.0.1", manager=cm, backoff=FAST)
    waiting = asyncio.ensure_future(pipeline.request(b"x\n"))
    await asyncio.sleep(0)
    assert await pipeline.close(BOUND)
    with pytest.raises(connman.Disconnected):
        await waiting
    with pytest.raises(connman.Disconnected):
        await pipeline.request(b"y\n")


def test_the_same_call_blocks_in_sync_code() -> None:
    with ServerThread() as server:
        pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
        pipeline.connect(server.port, "127.0.0.1")
        assert pipeline.request(b"hello\n").result() == b"hello"
        results: list[bytes] = []

        def caller(n: int) -> None:
            for i in range(50):
                results.append(pipeline.request(b"t%d-%d\n" % (n, i)).result())

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BOUND)
        assert sorted(results) == sorted(b"t%d-%d" % (n, i) for n in range(4) for i in range(50))
        assert pipeline.close(BOUND)


def test_bad_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match="framing must be callable"):
        Pipeline(framing=b"lines")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_in_flight"):
        Pipeline(max_in_flight=0)
    with pytest.raises(TypeError, match="max_in_flight"):
        Pipeline(max_in_flight=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        Pipeline(timeout=-1)
    pipeline: Pipeline[bytes] = Pipeline()
    with pytest.raises(TypeError, match="data must be bytes-like"):
        pipeline.request("text\n")  # type: ignore[arg-type]
    with pytest.raises(connman.NotConnected, match="connect"):
        pipeline.request(b"x\n")
    with pytest.raises(TypeError, match="its own callbacks"):
        pipeline.connect(1, "127.0.0.1", on_data=print)


async def test_a_refused_write_fails_its_own_requests_only_and_the_order_holds(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
    conn = pipeline.connect(server.port, "127.0.0.1", manager=cm, max_write_buffer=1024)
    await conn.wait_connected(BOUND)
    assert await pipeline.request(b"before\n") == b"before"
    with pytest.raises(connman.BufferFull):
        await pipeline.request(b"x" * 4096 + b"\n")  # more than max_write_buffer: never sent
    assert pipeline.in_flight == 0
    assert await pipeline.request(b"after\n") == b"after"  # not an answer meant for another
    await pipeline.close()


async def test_a_heartbeat_pings_through_the_pipeline_without_stalling_it(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # `send=lambda conn: pipeline.request(PING)` returns a Wait. connman awaited it like an async
    # send, with reading paused until it returned: the answer could never be read, so every ping
    # failed at the pipeline's timeout (reported to on_error) and stalled the other requests.
    async with EchoServer(keep_data=True) as server:
        pipeline: Pipeline[bytes] = Pipeline(timeout=0.5)
        errors: list[BaseException] = []
        conn = pipeline.connect(
            server.port,
            "127.0.0.1",
            manager=cm,
            on_error=errors.append,
            heartbeat=connman.Heartbeat(0.05, 1.0, lambda conn: pipeline.request(b"PING\n")),
        )
        assert await conn.wait_connected(BOUND)
        await recorder.until(lambda: bytes(server.data).count(b"PING\n") >= 4)  # pinged, answered, ...
        assert await pipeline.request(b"mine\n") == b"mine"  # in step with the pings
        assert errors == []
        assert conn.stats.resets == 0
        assert pipeline.in_flight <= 1
        await pipeline.close()


async def test_a_heartbeat_through_the_pipeline_drops_a_silent_peer(cm: connman.ConnectionManager) -> None:
    async with EchoServer(mode="silent") as server:
        pipeline: Pipeline[bytes] = Pipeline(timeout=None)
        conn = pipeline.connect(
            server.port,
            "127.0.0.1",
            manager=cm,
            heartbeat=connman.Heartbeat(0.05, 0.1, lambda conn: pipeline.request(b"PING\n")),
            backoff=FAST,
        )
        request = asyncio.ensure_future(pipeline.request(b"mine\n"))
        with pytest.raises(connman.NotConnected):
            await asyncio.wait_for(request, BOUND)  # failed by the drop (it has no timeout)
        assert conn.last_cause is Cause.HALF_OPEN
        await pipeline.close()


async def test_a_request_the_connection_lost_before_writing_it_waits_for_the_next_one(
    cm: connman.ConnectionManager,
) -> None:
    # A request is written at the end of its loop turn. A connection lost in that same turn failed
    # it with "may have been applied", though it never left: a request not sent waits instead.
    async with EchoServer() as server:
        pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)
        conn = pipeline.connect(server.port, "127.0.0.1", manager=cm, backoff=FAST)
        assert await conn.wait_connected(BOUND)
        answer = pipeline.request(b"hello\n")
        conn.reconnect()  # in the same turn: before the write
        assert await answer == b"hello"
        assert conn.stats.connects == 2
        after = pipeline.request(b"next\n")
        await conn.disconnect()  # in the same turn again: nothing can carry it now
        with pytest.raises(connman.Disconnected):
            await after
        await pipeline.close()


def test_a_request_after_the_connections_loop_ended_raises_loop_gone() -> None:
    # What request() documents: the loop the pipeline's connection lived on is gone for good.
    with ServerThread() as server:
        pipeline: Pipeline[bytes] = Pipeline(timeout=BOUND)

        async def first() -> bytes:
            conn = pipeline.connect(server.port, "127.0.0.1")
            assert await conn.wait_connected(BOUND)
            return await pipeline.request(b"one\n")

        assert asyncio.run(first()) == b"one"
        with pytest.raises(connman.LoopGone):
            pipeline.request(b"two\n")
        assert pipeline.close(BOUND)  # closes the socket by hand


async def test_requests_that_timed_out_while_down_do_not_pile_up_behind_one_still_waiting(
    cm: connman.ConnectionManager,
) -> None:
    # A request with no timeout waits at the head of the queue while the connection is down; each
    # later one times out, and used to stay queued behind it with its bytes, without bound.
    pipeline: Pipeline[bytes] = Pipeline(timeout=0.001)
    pipeline.connect(1, "127.0.0.1", manager=cm, backoff=FAST)  # refused: down for good
    head = asyncio.ensure_future(pipeline.request(b"head\n", timeout=None))
    request = bytearray(b"x" * 10_000 + b"\n")  # copied by each request(): 10 KB each
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with asyncio.timeout(60):
            for _ in range(2000):  # 20 MB of requests in all
                with pytest.raises(connman.NotConnected):
                    await pipeline.request(request)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 4_000_000, held
    assert not head.done()  # still waiting, within no timeout
    head.cancel()
    await pipeline.close()
