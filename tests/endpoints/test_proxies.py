"""dialer=, connman.dialers.socks5 and http_connect, against real danted and tinyproxy on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

import connman
from connman import Cause, State
from connman.dialers import http_connect, socks5
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder
from tests.endpoints.daemons import Daemon, danted, tinyproxy


def proxy_url(daemon: Daemon) -> str:
    return f"{'socks5' if daemon.name == 'danted' else 'http'}://127.0.0.1:{daemon.port}"


def dialer_for(daemon: Daemon) -> connman.Dialer:
    return socks5(proxy_url(daemon)) if daemon.name == "danted" else http_connect(proxy_url(daemon))


@pytest.fixture(params=["socks5", "http_connect"])
def proxy(request: pytest.FixtureRequest) -> Daemon:
    name = "socks_proxy" if request.param == "socks5" else "http_proxy"
    daemon: Daemon = request.getfixturevalue(name)
    return daemon


async def test_echo_through_the_proxy(
    proxy: Daemon, server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(
        server.port, "127.0.0.1", **recorder.callbacks(), dialer=dialer_for(proxy), backoff=FAST
    )
    assert await conn.wait_connected(BOUND)
    assert conn.peername == ("127.0.0.1", proxy.port)  # the socket goes to the proxy
    await recorder.until(lambda: server.clients == 1)
    conn.write(b"through the tunnel")
    await recorder.wait_bytes(18)
    assert bytes(recorder.data) == b"through the tunnel"
    # connman owns the socket as usual: its TCP options are set on it.
    sock = conn.socket
    assert sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


async def test_a_proxy_that_is_down_is_cause_proxy_and_recovers(
    proxy: Daemon, server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    proxy.kill()
    conn = cm.connect(
        server.port, "127.0.0.1", **recorder.callbacks(), dialer=dialer_for(proxy), backoff=FAST
    )
    await recorder.until(lambda: conn.stats.failed_attempts >= 2)
    assert conn.last_cause is Cause.PROXY
    assert isinstance(conn.last_error, connman.ProxyError)
    assert f"127.0.0.1:{proxy.port} could not be reached" in str(conn.last_error)
    assert "ECONNREFUSED" in str(conn.last_error)
    proxy.start()
    assert await conn.wait_connected(BOUND)


async def test_a_target_down_behind_a_live_proxy_recovers(
    proxy: Daemon, down_server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(
        down_server.port, "127.0.0.1", **recorder.callbacks(), dialer=dialer_for(proxy), backoff=FAST
    )
    await recorder.until(lambda: conn.stats.failed_attempts >= 2)
    assert conn.last_cause is Cause.PROXY
    message = str(conn.last_error)
    assert f"127.0.0.1:{proxy.port}" in message
    if proxy.name == "danted":
        assert f"could not connect to 127.0.0.1:{down_server.port}: reply 5 (connection refused)" in message
    else:  # tinyproxy: "HTTP/1.0 500 Unable to connect"
        assert f"refused CONNECT 127.0.0.1:{down_server.port}: 'HTTP/1." in message
        assert " 500 " in message
    await down_server.start()
    assert await conn.wait_connected(BOUND)
    conn.write(b"up")
    await recorder.wait_bytes(2)


@pytest.mark.parametrize("kind", ["socks5", "http_connect"])
async def test_a_proxy_that_refuses_the_tunnel_then_allows_it(
    kind: str, tmp_path: Path, server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    make = danted if kind == "socks5" else tinyproxy
    strict = make(tmp_path, refuse=True)
    strict.start()
    try:
        conn = cm.connect(
            server.port, "127.0.0.1", **recorder.callbacks(), dialer=dialer_for(strict), backoff=FAST
        )
        await recorder.until(lambda: conn.stats.failed_attempts >= 2)
        assert conn.last_cause is Cause.PROXY
        if kind == "socks5":
            assert "reply 2 (connection not allowed by ruleset)" in str(conn.last_error)
        else:
            assert f"refused CONNECT 127.0.0.1:{server.port}: 'HTTP/1.1 403 Access violation'" in str(
                conn.last_error
            )
    finally:
        strict.kill()
    relaxed = make(tmp_path, port=strict.port)  # the rule lifted, same address
    relaxed.start()
    try:
        assert await conn.wait_connected(BOUND)
        conn.write(b"allowed")
        await recorder.wait_bytes(7)
    finally:
        relaxed.kill()


async def test_a_proxy_that_dies_mid_stream_recovers(
    proxy: Daemon, server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(
        server.port, "127.0.0.1", **recorder.callbacks(), dialer=dialer_for(proxy), backoff=FAST
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"one")
    await recorder.wait_bytes(3)
    proxy.kill()  # SIGKILL, workers too: the kernel closes the tunnel
    await recorder.wait("reset")
    assert conn.last_cause in (Cause.EOF, Cause.RESET)  # as a direct connection would see it
    await recorder.until(lambda: conn.stats.failed_attempts >= 1)
    assert conn.stats.last_cause is Cause.PROXY
    proxy.start()
    await recorder.wait("connect", 2)
    conn.write(b"two")
    await recorder.wait_bytes(6)
    assert bytes(recorder.data) == b"onetwo"


async def test_the_target_server_restarting_behind_the_proxy(
    proxy: Daemon, server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(
        server.port, "127.0.0.1", **recorder.callbacks(), dialer=dialer_for(proxy), backoff=FAST
    )
    assert await conn.wait_connected(BOUND)
    await server.restart()
    await recorder.wait("connect", 2)
    conn.write(b"x")
    await recorder.wait_bytes(1)
    assert conn.stats.resets == 1


async def test_socks5_with_username_and_password(
    socks_auth_proxy: Daemon,
    socks_user: tuple[str, str],
    server: EchoServer,
    cm: connman.ConnectionManager,
    recorder: Recorder,
) -> None:
    user, password = socks_user
    url = f"127.0.0.1:{socks_auth_proxy.port}"
    conn = cm.connect(
        server.port, "127.0.0.1", **recorder.callbacks(), dialer=socks5(url, user, password), backoff=FAST
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"authenticated")
    await recorder.wait_bytes(13)

    in_url = cm.connect(server.port, "127.0.0.1", dialer=socks5(f"socks5://{user}:{password}@{url}"))
    assert await in_url.wait_connected(BOUND)

    wrong = cm.connect(server.port, "127.0.0.1", dialer=socks5(url, user, "wrong"), max_attempts=1)
    await wrong.wait_connected(BOUND)
    assert wrong.state is State.FAILED
    assert wrong.last_cause is Cause.PROXY
    assert str(wrong.last_error) == f"proxy socks5://{url} refused the username/password: status 1"

    anonymous = cm.connect(server.port, "127.0.0.1", dialer=socks5(url), max_attempts=1)
    await anonymous.wait_connected(BOUND)
    assert anonymous.last_cause is Cause.PROXY
    assert "accepts none of the methods offered (no authentication): reply 0xff" in str(anonymous.last_error)


async def test_tls_through_the_proxy_is_checked_against_the_host(
    socks_proxy: Daemon, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("db.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    through = socks5(f"127.0.0.1:{socks_proxy.port}")
    names: list[str] = []

    async def dialer(host: str, port: int) -> socket.socket:
        names.append(host)
        return await through("127.0.0.1", port)  # the test's own name service: db.test is here

    async with EchoServer(ssl=server_context) as tls_server:
        conn = cm.connect(
            tls_server.port, "db.test", **recorder.callbacks(), dialer=dialer, ssl=client_context
        )
        assert await conn.wait_connected(BOUND)
        assert names == ["db.test"]
        conn.write(b"secret")
        await recorder.wait_bytes(6)
        # The certificate names db.test only: a connection to another name through the same
        # tunnel fails the check.
        other = cm.connect(tls_server.port, "other.test", dialer=dialer, ssl=client_context, max_attempts=1)
        await other.wait_connected(BOUND)
        assert other.last_cause is Cause.TLS


async def test_a_dialer_that_outlasts_connect_timeout(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    calls = 0

    async def stuck(host: str, port: int) -> socket.socket:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    conn = cm.connect(1, "127.0.0.1", dialer=stuck, connect_timeout=0.05, backoff=FAST)
    await recorder.until(lambda: conn.stats.failed_attempts >= 2)
    assert conn.last_cause is Cause.TIMEOUT
    assert calls >= 2  # called for every attempt


async def test_a_dialer_that_returns_garbage(cm: connman.ConnectionManager, recorder: Recorder) -> None:
    async def garbage(host: str, port: int) -> socket.socket:
        return "not a socket"  # type: ignore[return-value]

    conn = cm.connect(1, "127.0.0.1", dialer=garbage, max_attempts=1)
    await conn.wait_connected(BOUND)
    assert "dialer must return a connected stream socket.socket, not 'not a socket'" in str(conn.last_error)


async def test_a_dialer_that_returns_an_unconnected_socket_is_a_failed_attempt(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    made: list[socket.socket] = []

    async def unconnected(host: str, port: int) -> socket.socket:
        made.append(socket.socket())
        return made[-1]

    conn = cm.connect(1, "127.0.0.1", dialer=unconnected, on_connect=recorder.on_connect, max_attempts=1)
    await recorder.until(lambda: conn.state is connman.State.FAILED)
    assert conn.stats.connects == 0 and recorder.count("connect") == 0
    assert "dialer must return a connected stream socket.socket" in str(conn.last_error)
    assert made[0].fileno() == -1  # closed, not leaked


def test_bad_dialers_and_proxies() -> None:
    manager = connman.ConnectionManager()
    with pytest.raises(
        TypeError, match="dialer must be an async callable or None, not <built-in function print>"
    ):
        manager.connect(1, "127.0.0.1", dialer=print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolver has no effect with dialer="):
        manager.connect(1, "127.0.0.1", dialer=socks5("127.0.0.1:1"), resolver=lambda host, port: host)
    with pytest.raises(ValueError, match="local_addr has no effect with dialer="):
        manager.connect(1, "127.0.0.1", dialer=socks5("127.0.0.1:1"), local_addr=("127.0.0.1", 0))
    with pytest.raises(ValueError, match=r"proxy 'socks5://127.0.0.1:99999' does not parse"):
        socks5("socks5://127.0.0.1:99999")
    with pytest.raises(ValueError, match=r"the scheme must be socks5:// or socks5h://, not 'http'"):
        socks5("http://127.0.0.1:1080")
    with pytest.raises(ValueError, match=r"the scheme must be http://, not 'https'"):
        http_connect("https://127.0.0.1:3128")
    with pytest.raises(ValueError, match="expected scheme://host:port"):
        http_connect("http://127.0.0.1:3128/path")
    with pytest.raises(TypeError, match="proxy must be a str"):
        socks5(1080)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="username and password together"):
        socks5("127.0.0.1:1080", username="me")
    with pytest.raises(ValueError, match="not a valid header"):
        http_connect("127.0.0.1:3128", headers={"X-Bad": "a\r\nb"})
    assert len(manager) == 0


async def test_http_connect_sends_the_headers_and_keeps_the_first_server_bytes(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # A server that speaks first (SMTP-style) right behind the proxy's reply, in the same segment:
    # those bytes are the tunnel's and must reach on_data. A scripted proxy shows it.
    seen: list[bytes] = []

    async def fake_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n220 ready\r\n")
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    listener = await asyncio.start_server(fake_proxy, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        dialer = http_connect(f"http://user:pw@127.0.0.1:{port}", headers={"User-Agent": "connman-test"})
        conn = cm.connect(11211, "cache.test", **recorder.callbacks(), dialer=dialer)
        await recorder.wait_bytes(11)
        assert bytes(recorder.data) == b"220 ready\r\n"
        assert seen[0].startswith(b"CONNECT cache.test:11211 HTTP/1.1\r\nHost: cache.test:11211\r\n")
        assert b"Proxy-Authorization: Basic dXNlcjpwdw==\r\n" in seen[0]
        assert b"User-Agent: connman-test\r\n" in seen[0]
        await conn.disconnect()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")


@needs_ipv6
async def test_an_ipv6_target_through_http_connect(
    http_proxy: Daemon, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer("::1") as server:
        conn = cm.connect(
            server.port, "::1", **recorder.callbacks(), dialer=dialer_for(http_proxy), backoff=FAST
        )
        assert await conn.wait_connected(BOUND)
        conn.write(b"over [::1]")
        await recorder.wait_bytes(10)
        assert bytes(recorder.data) == b"over [::1]"


@needs_ipv6
async def test_a_socks5_refusal_names_an_ipv6_target_in_brackets(
    socks_proxy: Daemon, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # The test's danted has only an IPv4 external address: it answers an IPv6 target with reply 8.
    conn = cm.connect(4242, "::1", dialer=dialer_for(socks_proxy), max_attempts=1)
    await recorder.until(lambda: conn.state is State.FAILED)
    assert conn.last_cause is Cause.PROXY
    assert "could not connect to [::1]:4242: reply " in str(conn.last_error)


async def test_a_proxy_that_accepts_and_never_answers_is_a_timeout_of_the_attempt(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # What the docs say: connect_timeout bounds the whole dialer, the proxy's silence included; the
    # attempt is Cause.TIMEOUT (not PROXY: the proxy said nothing), and its socket is closed.
    with socket.create_server(("127.0.0.1", 0)) as mute:
        mute.settimeout(BOUND)
        port = mute.getsockname()[1]
        for dialer in (socks5(f"127.0.0.1:{port}"), http_connect(f"127.0.0.1:{port}")):
            conn = cm.connect(80, "127.0.0.1", dialer=dialer, connect_timeout=0.2, max_attempts=1)
            peer, _ = await asyncio.to_thread(mute.accept)
            with peer:
                peer.settimeout(BOUND)
                # The greeting or the CONNECT request, left unanswered:
                assert await asyncio.to_thread(peer.recv, 4096)
                await recorder.until(lambda: conn.state is State.FAILED)  # noqa: B023
                assert conn.last_cause is Cause.TIMEOUT
                assert isinstance(conn.last_error, connman.ConnectTimeout)
                assert await asyncio.to_thread(peer.recv, 1) == b""  # the dialer's socket was closed


@pytest.mark.parametrize(
    ("make", "url", "shown"),
    [
        (socks5, "socks5://user:s3cret@h:99999", "'socks5://***@h:99999' does not parse"),
        (socks5, "socks4://user:s3cret@h:1", "'socks4://***@h:1': the scheme must be"),
        (socks5, "socks5://user:s3cret@h:1/x", "'socks5://***@h:1/x' does not parse"),
        (socks5, "socks5://user:s3cret@h:0", "'socks5://***@h:0': port must be in 1..65535"),
        (socks5, "user:s3cr@t@h:0", "'***@h:0': port must be in 1..65535"),
        (http_connect, "http://user:s3cret@h:abc", "'http://***@h:abc' does not parse"),
        (http_connect, "http://user:a://s3cret@[zz]:1", "'http://***@[zz]:1' does not parse"),
    ],
)
def test_a_bad_proxy_url_never_shows_its_credentials(make: Any, url: str, shown: str) -> None:
    # What endpoints.md promises ("credentials never appear in messages") holds at the call too: a
    # traceback ends up in logs.
    with pytest.raises(ValueError, match=r"^proxy ") as refused:
        make(url)
    assert shown in str(refused.value)
    assert "s3cr" not in str(refused.value) and "user" not in str(refused.value)
