"""connect_unix() and Pool.add_unix_connection(): the managed connection over AF_UNIX."""

from __future__ import annotations

import os
import pathlib
import socket
import ssl

import pytest
import trustme

import connman
from connman import Cause, State
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder


@pytest.fixture
def sock_path(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "echo.sock")


async def test_echo_over_a_unix_socket_survives_a_restart(
    sock_path: str, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(path=sock_path) as server:
        conn = cm.connect_unix(sock_path, **recorder.callbacks(), backoff=FAST)
        assert await conn.wait_connected(BOUND)
        assert conn.endpoint == connman.UnixEndpoint(sock_path)
        assert str(conn.endpoint) == f"unix:{sock_path}"
        assert conn.socket is not None and conn.socket.family == socket.AF_UNIX
        assert conn.stats.endpoint == conn.endpoint
        conn.write(b"hello")
        await recorder.wait_bytes(5)
        assert bytes(recorder.data) == b"hello"

        await server.stop()  # removes the socket file: attempts find nothing there
        await recorder.wait("reset")
        await recorder.until(lambda: conn.stats.failed_attempts >= 1)
        assert conn.last_cause is Cause.REFUSED
        assert isinstance(conn.last_error, FileNotFoundError)

        await server.start()
        await recorder.wait("connect", 2)
        conn.write(b"again")
        await recorder.wait_bytes(10)
        assert bytes(recorder.data) == b"helloagain"


async def test_a_missing_socket_file_is_refused_and_retried(
    sock_path: str, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect_unix(pathlib.Path(sock_path), **recorder.callbacks(), backoff=FAST)
    await recorder.until(lambda: conn.stats.failed_attempts >= 2)
    assert conn.last_cause is Cause.REFUSED
    assert conn.state in (State.WAITING, State.CONNECTING)
    async with EchoServer(path=sock_path):
        assert await conn.wait_connected(BOUND)


async def test_a_stale_socket_file_is_refused(
    sock_path: str, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # A server that died without removing its socket file: connect() gets ECONNREFUSED.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(sock_path)
    assert pathlib.Path(sock_path).is_socket()  # noqa: ASYNC240 - a test's own tmp file
    conn = cm.connect_unix(sock_path, **recorder.callbacks(), backoff=FAST)
    await recorder.until(lambda: conn.stats.failed_attempts >= 1)
    assert conn.last_cause is Cause.REFUSED
    assert isinstance(conn.last_error, ConnectionRefusedError)


@pytest.mark.parametrize("replacement", ["regular file", "directory"])
async def test_a_socket_file_replaced_by_another_kind_of_file_is_refused_and_retried(
    replacement: str, sock_path: str, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # What endpoints.md says: no socket at the path (here something else is there) is a refused
    # port, retried until a server listens there again.
    path = pathlib.Path(sock_path)
    async with EchoServer(path=sock_path) as server:
        conn = cm.connect_unix(sock_path, **recorder.callbacks(), backoff=FAST)
        assert await conn.wait_connected(BOUND)
        await server.stop()
        if replacement == "directory":
            path.mkdir()  # noqa: ASYNC240 - a test's own tmp file
        else:
            path.write_bytes(b"not a socket")  # noqa: ASYNC240
        await recorder.wait("reset")
        failed = conn.stats.failed_attempts
        await recorder.until(lambda: conn.stats.failed_attempts >= failed + 2)
        assert conn.last_cause is Cause.REFUSED
        assert isinstance(conn.last_error, ConnectionRefusedError)
        if replacement == "directory":
            path.rmdir()  # noqa: ASYNC240
        else:
            path.unlink()  # noqa: ASYNC240
        await server.start()
        await recorder.wait("connect", 2)
        assert conn.is_connected


async def test_tls_over_a_unix_socket_is_checked_against_server_hostname(
    sock_path: str, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # What endpoints.md says: TLS over a Unix socket works with ssl= and server_hostname=, the name
    # the certificate is checked against.
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("db.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with EchoServer(path=sock_path, ssl=server_context):
        conn = cm.connect_unix(
            sock_path, **recorder.callbacks(), ssl=client_context, server_hostname="db.test"
        )
        assert await conn.wait_connected(BOUND)
        conn.write(b"secret")
        await recorder.wait_bytes(6)
        assert bytes(recorder.data) == b"secret"
        wrong = cm.connect_unix(sock_path, ssl=client_context, server_hostname="other.test", max_attempts=1)
        await recorder.until(lambda: wrong.state is State.FAILED)
        assert wrong.last_cause is Cause.TLS


async def test_a_pool_of_unix_and_tcp_members(
    sock_path: str, server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pool = cm.create_pool("mixed")
    async with EchoServer(path=sock_path):
        unix = pool.add_unix_connection(sock_path, backoff=FAST)
        tcp = pool.add_connection(server.port, "127.0.0.1", backoff=FAST)
        assert await unix.wait_connected(BOUND)
        assert await tcp.wait_connected(BOUND)
        assert set(pool.connected()) == {unix, tcp}
        owners = {pool.pick(key=f"key{n}") for n in range(50)}
        assert owners == {unix, tcp}  # rendezvous ids tell unix:/path from host:port
        await pool.disconnect()
    assert len(pool) == 0


async def test_an_abstract_socket_name(cm: connman.ConnectionManager, recorder: Recorder) -> None:
    name = f"\0connman-test-{os.getpid()}-{id(recorder)}"
    async with EchoServer(path=name):
        conn = cm.connect_unix(name, **recorder.callbacks(), backoff=FAST)
        assert await conn.wait_connected(BOUND)
        conn.write(b"x")
        await recorder.wait_bytes(1)


def test_sync_connect_unix(tmp_path: pathlib.Path) -> None:
    from connman.testing import ServerThread

    path = str(tmp_path / "sync.sock")
    with ServerThread(EchoServer(path=path)):
        conn = connman.connect_unix(path)
        try:
            assert conn.wait_connected(BOUND)
            assert conn.peername in ("", path)  # the server's end is named by its path (or unnamed)
        finally:
            assert conn.disconnect()


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (42, TypeError, "path must be a str or os.PathLike"),
        (b"/tmp/x.sock", TypeError, "path must be a str or os.PathLike"),
        (None, TypeError, "path must be a str or os.PathLike"),
        ("", ValueError, "path must name a Unix socket"),
        ("run/x.sock", ValueError, "relative to the current directory"),
        ("/" + "x" * 200, ValueError, "at most 107 bytes"),
    ],
)
def test_bad_paths(path: object, error: type[Exception], message: str) -> None:
    manager = connman.ConnectionManager()
    with pytest.raises(error, match=message):
        manager.connect_unix(path)  # type: ignore[arg-type]
    assert len(manager) == 0


def test_a_relative_path_names_the_directory() -> None:
    with pytest.raises(ValueError, match="must be absolute") as info:
        connman.ConnectionManager().connect_unix("x.sock")
    assert repr(os.getcwd()) in str(info.value)
    assert "os.path.abspath('x.sock')" in str(info.value)


@pytest.mark.parametrize(
    "option",
    [
        {"nodelay": False},
        {"keepalive": None},
        {"user_timeout": 5.0},
        {"family": socket.AF_INET},
        {"local_addr": ("127.0.0.1", 0)},
        {"resolver": lambda host, port: host},
        {"alternates": [(1, "127.0.0.1")]},
        {"happy_eyeballs_delay": 0.25},
    ],
)
def test_tcp_only_options_are_refused(option: dict[str, object]) -> None:
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"{name} is a TCP option"):
        connman.ConnectionManager().connect_unix("/run/x.sock", **option)  # type: ignore[arg-type]


def test_tls_over_a_unix_socket_needs_a_server_hostname() -> None:
    with pytest.raises(ValueError, match="needs server_hostname"):
        connman.ConnectionManager().connect_unix("/run/x.sock", ssl=True)
