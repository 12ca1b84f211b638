"""Real servers from Debian packages (memcached, redis-server) on loopback ports of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command_for(name: str, port: int) -> list[str]:
    if name == "memcached":
        user = ["-u", "root"] if os.geteuid() == 0 else []
        return ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", *user]
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]


@dataclass
class RealServer:
    """A real server process that can be killed with SIGKILL and started again on the same port."""

    name: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            command_for(self.name, self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready once it accepts
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()  # SIGKILL: no goodbye, the kernel closes its sockets
            self.process.wait(5)
            self.process = None


@pytest.fixture(params=["memcached", "redis-server"])
def real_server(request: pytest.FixtureRequest) -> Iterator[RealServer]:
    name = request.param
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it: apt-get install {name})")
    server = RealServer(name)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def examples_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))
