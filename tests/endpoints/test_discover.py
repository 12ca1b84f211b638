"""Pool.discover(): one member per address of a name, following it as it changes.

The name is resolved by a resolver hook the test controls, or by a real DNS server (dnsmasq) the test
starts on a loopback port: the system resolver is never asked.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme

import connman
from connman.testing import DnsResolver, EchoServer
from tests.conftest import BOUND, FAST, Recorder
from tests.endpoints.daemons import Dnsmasq

KEYS = [f"user:{n}" for n in range(300)]


class Names:
    """A resolver hook whose answer the test sets; counts its calls."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls = 0
        self.fail: BaseException | None = None

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return list(self.addresses)


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, EchoServer]]:
    """Echo servers on one port at 127.0.0.2 .. 127.0.0.6 (all loopback on Linux)."""
    first = await EchoServer("127.0.0.2").start()
    running = {"127.0.0.2": first}
    try:
        for n in range(3, 7):
            address = f"127.0.0.{n}"
            running[address] = await EchoServer(address, first.port).start()
        yield running
    finally:
        for server in running.values():
            await server.stop()


def addresses_of(pool: connman.Pool) -> set[str]:
    return {conn.endpoint.host for conn in pool if isinstance(conn.endpoint, connman.Endpoint)}


def owners(pool: connman.Pool) -> dict[str, str]:
    return {key: str(pool.pick(key=key).endpoint) for key in KEYS}


def discovery_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("connman-discover")]


async def settled(pool: connman.Pool, recorder: Recorder, addresses: set[str]) -> None:
    """Until the pool has exactly one connected member per address of `addresses`."""
    await recorder.until(
        lambda: addresses_of(pool) == addresses and len(pool.connected()) == len(pool) == len(addresses)
    )


async def test_scale_out_and_in_moves_only_the_keys_of_the_members_that_changed(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    port = servers["127.0.0.2"].port
    names = Names("127.0.0.2", "127.0.0.3")
    pool = cm.create_pool("cache")
    discovery = pool.discover(
        port, "cache.test", resolver=names, refresh=0.05, min_refresh=0.01, backoff=FAST
    )
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})
    assert len(pool) == 2
    before = owners(pool)

    names.addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    await settled(pool, recorder, set(names.addresses))
    assert len(pool) == 4
    after = owners(pool)
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved  # the new members took some keys ...
    added = {f"127.0.0.4:{port}", f"127.0.0.5:{port}"}
    assert {after[key] for key in moved} <= added  # ... and only the new members did

    names.addresses = ["127.0.0.2", "127.0.0.4", "127.0.0.5"]
    await settled(pool, recorder, set(names.addresses))
    assert len(pool) == 3
    final = owners(pool)
    moved = {key for key in KEYS if after[key] != final[key]}
    assert moved
    assert {after[key] for key in moved} == {f"127.0.0.3:{port}"}  # only the keys of the one that went
    assert discovery.addresses == ["127.0.0.2", "127.0.0.4", "127.0.0.5"]
    discovery.stop()
    assert not discovery.running
    await recorder.until(lambda: not discovery_tasks())


async def test_the_only_member_up_is_kept_until_another_is_up(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    port = servers["127.0.0.2"].port
    await servers["127.0.0.3"].stop()  # the address the name moves to is not serving yet
    names = Names("127.0.0.2")
    pool = cm.create_pool("moving")
    discovery = pool.discover(port, "db.test", resolver=names, refresh=0.02, min_refresh=0.01, backoff=FAST)
    await settled(pool, recorder, {"127.0.0.2"})
    old = pool.connected()[0]

    names.addresses = ["127.0.0.3"]
    calls = names.calls
    await recorder.until(lambda: names.calls >= calls + 3)  # resolved again, several times
    assert addresses_of(pool) == {"127.0.0.2", "127.0.0.3"}
    assert pool.pick() is old  # still serving: the only member up
    assert old.is_connected

    await servers["127.0.0.3"].start()
    await settled(pool, recorder, {"127.0.0.3"})
    assert old.state is connman.State.CLOSED
    assert discovery.addresses == ["127.0.0.3"]


async def test_a_lost_member_resolves_again_at_once_and_all_down_keeps_resolving(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    port = servers["127.0.0.2"].port
    names = Names("127.0.0.2", "127.0.0.3")
    pool = cm.create_pool("lossy")
    # refresh outlasts the test: every resolution after the first is one of the early ones.
    pool.discover(port, "svc.test", resolver=names, refresh=3600, min_refresh=0.01, backoff=FAST)
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})
    calls = names.calls
    servers["127.0.0.3"].drop_clients()  # a member lost: resolve again now, not in an hour
    await recorder.until(lambda: names.calls > calls)

    for server in servers.values():
        await server.stop()  # every member down: keep resolving
    calls = names.calls
    await recorder.until(lambda: names.calls >= calls + 5)
    names.addresses = ["127.0.0.4"]
    await servers["127.0.0.4"].start()
    await settled(pool, recorder, {"127.0.0.4"})


async def test_a_failed_resolution_keeps_the_members(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    port = servers["127.0.0.2"].port
    names = Names("127.0.0.2", "127.0.0.3")
    pool = cm.create_pool("flaky-dns")
    discovery = pool.discover(port, "svc.test", resolver=names, refresh=0.02, min_refresh=0.01, backoff=FAST)
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})
    names.fail = socket.gaierror(socket.EAI_AGAIN, "temporary failure")
    calls = names.calls
    await recorder.until(lambda: names.calls >= calls + 3 and discovery.last_error is not None)
    assert isinstance(discovery.last_error, socket.gaierror)
    assert addresses_of(pool) == {"127.0.0.2", "127.0.0.3"}
    assert len(pool.connected()) == 2
    names.fail = None
    await recorder.until(lambda: discovery.last_error is None)


async def test_tls_members_check_the_certificate_against_the_name(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("cache.test").configure_cert(server_context)  # the name only, no address
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with EchoServer("127.0.0.2", ssl=server_context) as one:
        async with EchoServer("127.0.0.3", one.port, ssl=server_context):
            pool = cm.create_pool("tls")
            pool.discover(
                one.port,
                "cache.test",
                resolver=Names("127.0.0.2", "127.0.0.3"),
                ssl=client_context,
                backoff=FAST,
            )
            await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})
            await pool.disconnect()


async def test_pool_disconnect_stops_the_discovery(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    pool = cm.create_pool("stopped")
    discovery = pool.discover(
        servers["127.0.0.2"].port, "svc.test", resolver=Names("127.0.0.2"), refresh=0.01, min_refresh=0.01
    )
    await settled(pool, recorder, {"127.0.0.2"})
    assert discovery_tasks()
    assert await pool.disconnect(BOUND)
    assert not discovery.running
    assert len(pool) == 0
    await recorder.until(lambda: not discovery_tasks())  # the task ended, nothing left behind


async def test_following_a_real_dns_server(
    dns_server: Dnsmasq, servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    port = servers["127.0.0.2"].port
    dns_server.write_hosts("cache.test", ["127.0.0.2", "127.0.0.3"])
    resolver = DnsResolver(("127.0.0.1", dns_server.port))
    pool = cm.create_pool("dns")
    pool.discover(port, "cache.test", resolver=resolver, refresh=0.05, min_refresh=0.01, backoff=FAST)
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})

    dns_server.write_hosts("cache.test", ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"})

    dns_server.write_hosts("cache.test", ["127.0.0.3", "127.0.0.4", "127.0.0.6"])
    await settled(pool, recorder, {"127.0.0.3", "127.0.0.4", "127.0.0.6"})
    assert resolver.queries >= 3

    # A single connection through the same resolver tries every address in order.
    single = cm.connect(port, "cache.test", resolver=resolver)
    assert await single.wait_connected(BOUND)
    assert single.peername[0] in {"127.0.0.3", "127.0.0.4", "127.0.0.6"}


def test_discover_from_sync_code() -> None:
    from connman.testing import ServerThread

    with ServerThread(EchoServer("127.0.0.1")) as thread:
        manager = connman.ConnectionManager()
        pool = manager.create_pool("sync")
        discovery = pool.discover(thread.port, "svc.test", resolver=lambda host, port: ["127.0.0.1"])
        try:
            member = pool.wait_any(BOUND).result()
            assert member is not None and member.endpoint == connman.Endpoint(thread.port, "127.0.0.1")
        finally:
            assert manager.disconnect_all(BOUND)
        assert not discovery.running


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"refresh": 0}, ValueError, "refresh must be a finite number > 0"),
        ({"refresh": -1.0}, ValueError, "refresh must be a finite number > 0"),
        ({"refresh": "30"}, TypeError, "refresh must be"),
        ({"min_refresh": 0}, ValueError, "min_refresh must be a finite number > 0"),
        ({"refresh": 1.0, "min_refresh": 2.0}, ValueError, r"min_refresh must be at most refresh \(1.0 s\)"),
        ({"alternates": [(1, "a")]}, ValueError, "alternates has no meaning for discover"),
        ({"nodelay": 1}, TypeError, "nodelay must be a bool"),
        ({"on_data": 5}, TypeError, "on_data must be callable"),
    ],
)
def test_bad_discover_arguments(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    manager = connman.ConnectionManager()
    pool = manager.create_pool("bad")
    with pytest.raises(error, match=message):
        pool.discover(11211, "cache.test", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"port must be in 1\.\.65535"):
        pool.discover(0, "cache.test")
    assert len(pool) == 0


async def test_a_resolver_answer_that_is_no_address_is_a_failed_resolution(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    names = Names("127.0.0.2")
    pool = cm.create_pool("garbage")
    port = servers["127.0.0.2"].port
    discovery = pool.discover(port, "svc.test", resolver=names, refresh=0.02, min_refresh=0.01, backoff=FAST)
    await settled(pool, recorder, {"127.0.0.2"})
    names.addresses = ["db:80"]  # no resolver could ever connect there: refused, members kept
    await recorder.until(lambda: isinstance(discovery.last_error, ValueError))
    assert discovery.running
    assert addresses_of(pool) == {"127.0.0.2"}
    names.addresses = ["127.0.0.3"]
    await settled(pool, recorder, {"127.0.0.3"})


async def test_a_member_taken_out_of_the_pool_is_the_applications(
    servers: dict[str, EchoServer], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # pool.remove() leaves a running connection (decision 10): discovery gives its address a new
    # member and never disconnects the one the application took (decision 52).
    port = servers["127.0.0.2"].port
    names = Names("127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.2")  # duplicates: one member each
    pool = cm.create_pool("taken")
    discovery = pool.discover(port, "svc.test", resolver=names, refresh=0.02, min_refresh=0.01, backoff=FAST)
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})
    taken = next(conn for conn in pool if conn.endpoint == connman.Endpoint(port, "127.0.0.3"))
    pool.remove(taken)
    await settled(pool, recorder, {"127.0.0.2", "127.0.0.3"})  # a new member for 127.0.0.3
    replacement = next(conn for conn in pool if conn.endpoint == connman.Endpoint(port, "127.0.0.3"))
    assert replacement is not taken

    names.addresses = ["127.0.0.2"]
    await settled(pool, recorder, {"127.0.0.2"})
    assert replacement.state is connman.State.CLOSED
    calls = names.calls
    await recorder.until(lambda: names.calls >= calls + 3)
    assert taken.is_connected  # the application's, untouched
    assert discovery.addresses == ["127.0.0.2"]
    taken.disconnect()
