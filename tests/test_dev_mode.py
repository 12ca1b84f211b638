"""One short run of real fault tests under `python -X dev -W error::ResourceWarning`: an unclosed
socket or transport, or a coroutine that was never awaited, fails it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fault_matrix_under_dev_mode_leaves_no_resource_warning() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error::ResourceWarning",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/faults/test_matrix.py",
            "tests/aio/test_connection.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ResourceWarning" not in result.stdout + result.stderr
    assert "was never awaited" not in result.stdout + result.stderr
