"""Fault fixtures that need a process or a network namespace of their own."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ECHO_PROCESS = Path(__file__).with_name("echo_process.py")
_netns_numbers = itertools.count(1)


def start_echo_process(host: str, *, prefix: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], int]:
    """Start `echo_process.py` (under `prefix`, e.g. `ip netns exec NAME`); return it and its port."""
    process = subprocess.Popen(
        [*prefix, sys.executable, str(ECHO_PROCESS), host],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server listens (or the process died)
    if not line:
        process.wait(5)
        raise RuntimeError(f"echo process failed to start (exit {process.returncode})")
    return process, int(line)


@pytest.fixture
def echo_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """An echo server process on 127.0.0.1: (process, port)."""
    process, port = start_echo_process("127.0.0.1")
    yield process, port
    process.kill()
    process.wait(5)
    assert process.stdout is not None
    process.stdout.close()


def need_root_and_ip() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs as root)")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("the `ip` tool with netns support is not installed (apt-get install iproute2)")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Netns:
    """A network namespace joined to this one by a veth pair: 10.213.N.1 here, 10.213.N.2 there."""

    name: str
    here: str  # our end of the veth pair
    there: str  # its end, inside the namespace
    local_address: str
    address: str

    def exec_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.name)

    def far_link(self, up: bool) -> None:
        """Take the namespace's end of the veth pair down (a cable cut, a host gone) or up."""
        ip("-n", self.name, "link", "set", self.there, "up" if up else "down")


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A fresh namespace with a veth pair; removed afterwards (which removes the pair too)."""
    need_root_and_ip()
    number = next(_netns_numbers)
    tag = f"{os.getpid() % 10000}x{number}"
    name, here, there = f"cmt{tag}", f"cmh{tag}", f"cmn{tag}"
    subnet = 1 + (os.getpid() * 7 + number) % 250
    space = Netns(name, here, there, f"10.213.{subnet}.1", f"10.213.{subnet}.2")
    ip("netns", "add", name)
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", name)
        ip("addr", "add", f"{space.local_address}/30", "dev", here)
        ip("link", "set", here, "up")
        ip("-n", name, "addr", "add", f"{space.address}/30", "dev", there)
        ip("-n", name, "link", "set", there, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield space
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
