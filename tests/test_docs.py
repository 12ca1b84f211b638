"""Every code block in the README and docs/ marked `<!-- runnable -->` runs as written, in a fresh
interpreter, and exits 0 without a traceback (log records of connman's may go to stderr)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- runnable -->\n```python\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            blocks.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return blocks


BLOCKS = runnable_blocks()


def test_the_docs_have_runnable_blocks() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[name for name, _ in BLOCKS])
def test_runnable_block(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
