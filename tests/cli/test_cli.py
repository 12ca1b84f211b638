"""The command line: the demo runs and recovers; argument errors exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connman.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_demo_recovers_from_every_fault_and_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "2"]) == 0
    out = capsys.readouterr().out
    assert "FAULT: restart the server" in out
    assert "FAULT: reset every client (RST)" in out
    assert "reconnected after" in out
    assert "  faults injected     4\n" in out
    assert "  bytes lost          0\n" in out
    assert "everything recovered" in out


def test_python_dash_m_and_usage_errors() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "connman", "--help"], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0
    assert "demo" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "connman", "frobnicate"], capture_output=True, text=True, env=env, timeout=30
    )
    assert bad.returncode == 2
    assert "invalid choice: 'frobnicate'" in bad.stderr
