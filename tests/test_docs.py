"""Every Python code block of the README and docs/ runs as written.

A block marked `<!-- runnable -->` runs in a fresh interpreter and exits 0 without a traceback (log
records of connman's may go to stderr). When a ```text block marked `<!-- prints -->` follows it, the
block must print exactly that. A Python block that cannot run (it needs something the suite cannot
start) says why, `<!-- not runnable: REASON -->`; an unmarked Python block fails the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"(?:<!-- (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```\n", re.DOTALL)
PRINTS = re.compile(r"<!-- prints -->\n```text\n(?P<output>.*?)```\n", re.DOTALL)


@dataclass
class Block:
    name: str
    mark: str
    code: str
    prints: str | None


def python_blocks() -> list[Block]:
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for number, match in enumerate(PYTHON_BLOCK.finditer(text), 1):
            after = PRINTS.match(text, match.end())
            blocks.append(
                Block(
                    f"{page.relative_to(ROOT)}#{number}",
                    match.group("mark") or "",
                    match.group("code"),
                    after.group("output") if after else None,
                )
            )
    return blocks


BLOCKS = python_blocks()
RUNNABLE = [block for block in BLOCKS if block.mark == "runnable"]


def test_the_readme_and_the_docs_have_runnable_blocks() -> None:
    assert len(RUNNABLE) >= 10
    assert any(block.name.startswith("README.md") for block in RUNNABLE)


def test_every_python_block_runs_or_says_why_not() -> None:
    unmarked = [
        block.name
        for block in BLOCKS
        if block.mark != "runnable" and not re.fullmatch(r"not runnable: .{10,}", block.mark)
    ]
    assert not unmarked, f"mark these `<!-- runnable -->` (or `<!-- not runnable: why -->`): {unmarked}"


def test_every_prints_block_follows_a_runnable_one() -> None:
    for page in PAGES:
        text = page.read_text()
        claimed = {match.end() for match in PYTHON_BLOCK.finditer(text) if match.group("mark") == "runnable"}
        for match in PRINTS.finditer(text):
            assert match.start() in claimed, f"{page.name}: a prints block after no runnable block"


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
def test_runnable_block(block: Block) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block.code], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if block.prints is not None:
        assert result.stdout == block.prints
