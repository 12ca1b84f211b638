"""Real daemons from Debian packages, started by the tests on loopback ports with config files of
their own in a tmp dir: dante-server (`danted`, SOCKS5), tinyproxy (HTTP CONNECT), dnsmasq (DNS)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from connman.testing import query_a

#: Seconds a daemon may take to accept its first connection (or answer its first query).
READY_WITHIN = 10.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_both() -> int:
    """A loopback port free for UDP and TCP alike (a DNS server listens on both)."""
    for _ in range(100):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no loopback port free for both UDP and TCP in 100 tries")


def need(program: str, package: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        pytest.skip(f"{program} is not installed (apt-get install {package})")
    return path


class Daemon:
    """A daemon process on a loopback port; `kill()` ends it with SIGKILL, `start()` runs it again."""

    def __init__(self, name: str, command: list[str], port: int, log: Path) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            # A session of its own: kill() ends the children too (danted forks its workers).
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"{self.name} did not start on port {self.port}: {self.log.read_text()[-2000:]}")

    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # no goodbye: the kernel closes its sockets
            except ProcessLookupError:
                pass
            self.process.wait(5)
            self.process = None

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)


def danted(tmp: Path, *, username: bool = False, refuse: bool = False, port: int | None = None) -> Daemon:
    """danted on a loopback port: SOCKS5 with no authentication, or with system users' passwords
    (`username`); `refuse` blocks every CONNECT by rule (reply 2)."""
    program = need("danted", "dante-server")
    port = port or free_port()
    method = "username" if username else "none"
    verdict = "block" if refuse else "pass"
    config = tmp / f"danted-{port}.conf"
    config.write_text(
        f"""logoutput: {tmp}/danted-{port}.log
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: {method}
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks {verdict} {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }}
"""
    )
    command = [program, "-f", str(config), "-p", str(tmp / f"danted-{port}.pid"), "-N", "1"]
    return Daemon("danted", command, port, tmp / f"danted-{port}.out")


def tinyproxy(tmp: Path, *, refuse: bool = False, port: int | None = None) -> Daemon:
    """tinyproxy on a loopback port, allowing CONNECT to any port, or (`refuse`) to port 1 only (403)."""
    program = need("tinyproxy", "tinyproxy")
    port = port or free_port()
    config = tmp / f"tinyproxy-{port}.conf"
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    if refuse:
        user += "ConnectPort 1\n"  # with no ConnectPort line, every port is allowed
    config.write_text(
        f"""{user}Port {port}
Listen 127.0.0.1
Timeout 600
MaxClients 50
Allow 127.0.0.1
LogLevel Info
"""
    )
    return Daemon("tinyproxy", [program, "-d", "-c", str(config)], port, tmp / f"tinyproxy-{port}.out")


class Dnsmasq(Daemon):
    """dnsmasq answering only from a hosts file of the test's (`write_hosts`; SIGHUP re-reads it)."""

    def __init__(self, tmp: Path) -> None:
        program = need("dnsmasq", "dnsmasq")
        port = free_port_both()
        self.hosts = tmp / f"hosts-{port}"
        self.hosts.write_text("")
        command = [
            program,
            "-k",  # foreground
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts}",
            "--no-negcache",
            "--cache-size=0",
            "--local-ttl=0",
            f"--pid-file={tmp}/dnsmasq-{port}.pid",
            "--log-facility=-",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        super().__init__("dnsmasq", command, port, tmp / f"dnsmasq-{port}.out")

    def ready(self) -> bool:
        try:
            query_a("ready.invalid", ("127.0.0.1", self.port), timeout=0.5)
        except socket.gaierror:
            return True  # answered (NXDOMAIN is an answer)
        except OSError:
            return False
        return True

    def write_hosts(self, name: str, addresses: list[str]) -> None:
        """Make `name` resolve to `addresses`, now (the file rewritten, then SIGHUP)."""
        self.hosts.write_text("".join(f"{address} {name}\n" for address in addresses))
        self.signal(signal.SIGHUP)
