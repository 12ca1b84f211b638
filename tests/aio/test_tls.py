"""TLS against a loopback TLS server with a test CA (trustme), verification on."""

from __future__ import annotations

import ssl

import trustme

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_round_trip_with_verification_survives_a_restart(
    ca: trustme.CA, tls_server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    context = client_context(ca)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    conn = cm.connect(
        tls_server.port,
        "127.0.0.1",
        on_connect=lambda c: c.write(b"secret"),
        on_data=recorder.on_data,
        on_reset=recorder.on_reset,
        ssl=context,
        server_hostname="localhost",
        backoff=FAST,
    )
    await recorder.wait_bytes(6)
    assert conn.transport is not None
    assert conn.transport.get_extra_info("ssl_object") is not None
    await tls_server.restart()
    await recorder.wait_bytes(12)
    assert bytes(recorder.data) == b"secret" * 2
    assert recorder.count("reset") == 1


async def test_tls_handshake_failure_is_a_failed_attempt_never_plain_text(
    tls_server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    untrusted = ssl.create_default_context()  # does not trust the test CA
    gave_up: list[BaseException] = []
    conn = cm.connect(
        tls_server.port,
        "127.0.0.1",
        **recorder.callbacks(),
        ssl=untrusted,
        server_hostname="localhost",
        backoff=FAST,
        max_attempts=2,
        on_give_up=gave_up.append,
    )
    assert not await conn.wait_connected(BOUND)
    assert conn.state is connman.State.FAILED
    assert isinstance(conn.last_error, ssl.SSLCertVerificationError)
    assert gave_up == [conn.last_error]
    assert recorder.events == []
    assert tls_server.received == 0  # no application byte ever went out in plain text
