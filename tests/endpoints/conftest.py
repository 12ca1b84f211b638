"""Fixtures for the endpoint tests: real proxies and a DNS server on loopback (see daemons.py)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.endpoints.daemons import Daemon, Dnsmasq, danted, tinyproxy

#: The system user danted's `socksmethod: username` checks passwords against (it has no user file
#: of its own). Created for the session when the tests run as root, removed afterwards.
SOCKS_USER = "connman-socks"
SOCKS_PASSWORD = "s3cret-Pw"


@pytest.fixture(scope="session")
def socks_user() -> Iterator[tuple[str, str]]:
    try:
        pwd.getpwnam(SOCKS_USER)
        created = False
    except KeyError:
        if os.geteuid() != 0:
            pytest.skip(f"danted's username method needs a system user: run as root, or create {SOCKS_USER}")
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", SOCKS_USER], check=True
        )
        created = True
    subprocess.run(["chpasswd"], input=f"{SOCKS_USER}:{SOCKS_PASSWORD}\n".encode(), check=True)
    yield SOCKS_USER, SOCKS_PASSWORD
    if created:
        subprocess.run(["userdel", SOCKS_USER], check=False)


@pytest.fixture
def socks_proxy(tmp_path: Path) -> Iterator[Daemon]:
    daemon = danted(tmp_path)
    daemon.start()
    yield daemon
    daemon.kill()


@pytest.fixture
def socks_auth_proxy(tmp_path: Path, socks_user: tuple[str, str]) -> Iterator[Daemon]:
    daemon = danted(tmp_path, username=True)
    daemon.start()
    yield daemon
    daemon.kill()


@pytest.fixture
def http_proxy(tmp_path: Path) -> Iterator[Daemon]:
    daemon = tinyproxy(tmp_path)
    daemon.start()
    yield daemon
    daemon.kill()


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[Dnsmasq]:
    daemon = Dnsmasq(tmp_path)
    daemon.start()
    yield daemon
    daemon.kill()
