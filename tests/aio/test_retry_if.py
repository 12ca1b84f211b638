"""`retry_if` against real servers: a certificate that will never verify, a raising or async predicate,
and a loss the application does not want retried."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme

import connman
from connman import Cause
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder


async def test_a_wrong_hostname_gives_up_after_one_attempt_when_retry_if_refuses_tls(
    ca: trustme.CA, tls_server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)  # trusted, but issued for localhost, not for this name
    asked: list[tuple[BaseException | None, Cause]] = []
    gave_up: list[BaseException] = []

    def retry_if(error: BaseException | None, cause: Cause) -> bool:
        asked.append((error, cause))
        return cause is not connman.Cause.TLS

    def on_give_up(error: BaseException) -> None:
        gave_up.append(error)
        recorder.add("gave up")

    conn = cm.connect(
        tls_server.port,
        "127.0.0.1",
        **recorder.callbacks(),
        ssl=context,
        server_hostname="wrong.example",
        backoff=FAST,
        retry_if=retry_if,
        on_give_up=on_give_up,
    )
    await recorder.wait("gave up")
    assert conn.state is connman.State.FAILED
    assert conn.stats.failed_attempts == 1
    assert len(asked) == 1
    error, cause = asked[0]
    assert isinstance(error, ssl.SSLCertVerificationError) and cause is Cause.TLS
    assert gave_up == [error]
    with pytest.raises(connman.GaveUp, match="retry_if returned False") as info:
        conn.write(b"x")
    assert info.value.reason == "retry_if"
    assert info.value.last_error is error
    assert recorder.count("connect") == 0


async def test_the_same_certificate_is_retried_without_retry_if(
    ca: trustme.CA, tls_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    conn = cm.connect(
        tls_server.port,
        "127.0.0.1",
        ssl=context,
        server_hostname="wrong.example",
        backoff=FAST,
        max_attempts=3,
    )
    assert not await conn.wait_connected(BOUND)
    assert conn.stats.failed_attempts == 3  # retried until max_attempts: retry_if is what stops it at once


async def test_a_retry_if_that_raises_is_reported_and_counts_as_yes(
    down_server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def retry_if(error: BaseException | None, cause: Cause) -> bool:
        raise LookupError("no policy")

    with caplog.at_level(logging.ERROR, logger="connman"):
        conn = cm.connect(
            down_server.port,
            "127.0.0.1",
            retry_if=retry_if,
            on_error=lambda exc: rec.add("error", exc),
            backoff=FAST,
        )
        await rec.wait("error", 3)
    assert conn.state in (connman.State.WAITING, connman.State.CONNECTING)
    assert conn.stats.failed_attempts >= 3
    assert all(isinstance(exc, LookupError) for kind, exc in rec.events)
    assert "retry_if callback failed" in caplog.text
    await down_server.start()
    assert await conn.wait_connected(BOUND)


async def test_an_async_retry_if_is_reported_and_counts_as_yes(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def retry_if(error: BaseException | None, cause: Cause) -> bool:
        return False

    conn = cm.connect(
        down_server.port,
        "127.0.0.1",
        retry_if=retry_if,  # type: ignore[arg-type]
        on_error=lambda exc: rec.add("error", exc),
        backoff=FAST,
    )
    await rec.wait("error")
    (_, error), *_ = rec.events
    assert isinstance(error, TypeError)
    assert "retry_if must return a bool, not an awaitable" in str(error)
    assert conn.state is not connman.State.FAILED


async def test_a_loss_retry_if_refuses_fires_on_reset_then_on_give_up_and_stays_down(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    asked: list[Cause] = []

    def retry_if(error: BaseException | None, cause: Cause) -> bool:
        asked.append(cause)
        return cause is not Cause.EOF  # say the server closing on us means "go away"

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        **recorder.callbacks(),
        retry_if=retry_if,
        on_give_up=lambda error: recorder.add("gave up", error),
        backoff=FAST,
    )
    await recorder.wait("connect")
    server.drop_clients()
    await recorder.wait("gave up")
    assert recorder.kinds() == ["connect", "reset", "gave up"]
    assert isinstance(recorder.events[-1][1], EOFError)
    assert asked == [Cause.EOF]
    assert conn.state is connman.State.FAILED
    assert server.accepts == 1
    conn.reconnect()  # the application may still revive it
    await recorder.wait("connect", 2)
