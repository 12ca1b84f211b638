"""Half-open peers for real: the server runs in a network namespace, and the namespace's end of the
veth pair goes down. No FIN, no RST, no ICMP: the client's packets vanish. Needs root (CI has it).

Each catches a different case, as docs/reliability.md explains:
- keepalive (1 s, 1 s, 3) finds an idle half-open peer in about 4 s;
- TCP_USER_TIMEOUT 2 s finds one that leaves our writes unacknowledged in about 2-3 s (keepalive
  never probes while data is in flight);
- a name that cannot be resolved, inside a namespace with no route out, is a failed attempt.
"""

from __future__ import annotations

import asyncio
import errno
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import connman
from connman import Cause
from tests.conftest import Recorder
from tests.faults.conftest import Netns, start_echo_process

#: Attempts while the link is down time out quickly, so recovery after it comes back is quick too.
RETRY = connman.Backoff(initial=0.1, factor=2, cap=0.5, jitter="none", min_uptime=0.5)


@pytest.fixture
def far_server(netns: Netns) -> Iterator[int]:
    process, port = start_echo_process(netns.address, prefix=netns.exec_prefix())
    yield port
    process.kill()
    process.wait(5)
    assert process.stdout is not None
    process.stdout.close()


async def cut_and_time_detection(
    netns: Netns, conn: connman.Connection, recorder: Recorder, *, keep_writing: bool
) -> float:
    loop = asyncio.get_running_loop()
    netns.far_link(up=False)
    cut_at = loop.time()
    if keep_writing:
        conn.write(b"unacknowledged")  # sits in the send queue, retransmitted, never acknowledged
    await recorder.wait("reset", timeout=15)
    return loop.time() - cut_at


async def test_keepalive_finds_an_idle_half_open_peer(
    netns: Netns, far_server: int, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(
        far_server,
        netns.address,
        **recorder.callbacks(),
        keepalive=(1, 1, 3),
        connect_timeout=0.3,
        backoff=RETRY,
    )
    await recorder.wait("connect")
    conn.write(b"ping")
    await recorder.wait_bytes(4)
    detected = await cut_and_time_detection(netns, conn, recorder, keep_writing=False)
    assert conn.last_cause is Cause.HALF_OPEN
    assert isinstance(conn.last_error, OSError) and conn.last_error.errno == errno.ETIMEDOUT
    assert 3.0 <= detected <= 7.0, detected  # idle 1 s + 3 probes 1 s apart, give or take a tick
    print(f"keepalive (1, 1, 3): idle half-open peer detected in {detected:.2f} s")
    netns.far_link(up=True)
    await recorder.wait("connect", 2, timeout=10)
    conn.write(b"pong")
    await recorder.wait_bytes(8)


async def test_user_timeout_finds_a_peer_that_leaves_writes_unacknowledged(
    netns: Netns, far_server: int, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(
        far_server,
        netns.address,
        **recorder.callbacks(),
        keepalive=None,
        user_timeout=2.0,
        connect_timeout=0.3,
        backoff=RETRY,
    )
    await recorder.wait("connect")
    detected = await cut_and_time_detection(netns, conn, recorder, keep_writing=True)
    assert conn.last_cause is Cause.HALF_OPEN
    assert isinstance(conn.last_error, OSError) and conn.last_error.errno == errno.ETIMEDOUT
    assert 1.8 <= detected <= 5.0, detected
    print(f"user_timeout 2 s: half-open peer with unacknowledged writes detected in {detected:.2f} s")
    # While the link is down, attempts time out (SYNs vanish): the cause says so.
    async with asyncio.timeout(5):
        while conn.stats.last_cause is not Cause.TIMEOUT:
            await conn.wait_changed()
    netns.far_link(up=True)
    await recorder.wait("connect", 2, timeout=10)


def test_unresolvable_name_in_a_namespace_with_no_route_out(netns: Netns) -> None:
    # The namespace has no default route, so the system resolver's query fails at sendto() with
    # ENETUNREACH: nothing leaves the machine, and the name is not even asked about.
    script = textwrap.dedent(
        """
        import connman
        conn = connman.connect(80, "service.connman-test.example", max_attempts=2, connect_timeout=3,
                               backoff=connman.Backoff(initial=0.01, jitter="none"))
        assert not conn.wait_connected(10)
        print(conn.state.value, conn.last_cause.value, type(conn.last_error).__name__)
        """
    )
    result = subprocess.run(
        [*netns.exec_prefix(), sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["failed", "dns", "gaierror"]
