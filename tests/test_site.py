"""The docs site builds in strict mode, and the strict build really fails on a broken link, a broken
anchor and a public name without a docstring.

Each build runs on a copy of the checkout's docs, README, examples, src and site config in a temporary
directory, so a test can break one thing. Needs the `docs` extra (`make docs` installs it; CI builds
the docs before it runs the tests); skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import connman
from connman._options import OPTIONS

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parent.parent


def checkout_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    for name in ["docs", "examples", "src", "tools"]:
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["README.md", "mkdocs.yml"]:
        shutil.copy(ROOT / name, copy / name)
    return copy


def build(checkout: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(checkout / "site")],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_site_builds_strictly_with_every_page_and_every_public_name(tmp_path: Path) -> None:
    checkout = checkout_copy(tmp_path)
    result = build(checkout)
    assert result.returncode == 0, result.stderr
    site = checkout / "site"
    for page in (ROOT / "docs").glob("*.md"):
        assert (site / page.with_suffix(".html").name).is_file(), page.name
    front = (site / "index.html").read_text()
    assert "Compared with the original" in front  # the README
    assert 'href="getting-started.html"' in front  # its docs/ links, made relative to the site
    reference = (site / "reference" / "connman.html").read_text()
    for name in connman.__all__:
        if isinstance(getattr(connman, name), types.ModuleType):  # a module has a page of its own
            assert (site / "reference" / f"connman.{name}.html").is_file(), name
        else:
            assert f'id="connman.{name}"' in reference, name
    # connect()'s reference carries the options table, generated from the declarations.
    connect = reference[reference.index('id="connman.connect"') :]
    connect = connect[: connect.index('class="doc doc-object doc-function"')]
    for option in OPTIONS:
        assert f"<code>{option}</code>" in connect, option


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    checkout = checkout_copy(tmp_path)
    edit(checkout / "docs" / "pools.md", "# Pools and picking\n", "# Pools and picking\n\n[gone](gone.md)\n")
    result = build(checkout)
    assert result.returncode != 0
    assert re.search(r"WARNING.*pools\.md.*gone\.md", result.stderr), result.stderr


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    checkout = checkout_copy(tmp_path)
    edit(
        checkout / "docs" / "pools.md",
        "# Pools and picking\n",
        "# Pools and picking\n\n[x](options.md#nope)\n",
    )
    result = build(checkout)
    assert result.returncode != 0
    assert re.search(r"WARNING.*pools\.md.*#nope", result.stderr), result.stderr


def test_a_public_name_without_a_docstring_fails_the_build(tmp_path: Path) -> None:
    checkout = checkout_copy(tmp_path)
    pool = checkout / "src" / "connman" / "pool.py"
    text = pool.read_text()
    # Drop the docstring of Pool.connected().
    start = text.index("    def connected(")
    opening = text.index('"""', start)
    closing = text.index('"""', opening + 3) + 3
    pool.write_text(text[:opening] + "pass" + text[closing:])
    result = build(checkout)
    assert result.returncode != 0
    assert "the public name connman.Pool.connected has no docstring" in result.stderr, result.stderr


def test_a_new_reference_module_is_one_nav_line(tmp_path: Path) -> None:
    checkout = checkout_copy(tmp_path)
    edit(
        checkout / "mkdocs.yml",
        "      - connman.testing: reference/connman.testing.md\n",
        "      - connman.testing: reference/connman.testing.md\n"
        "      - connman.cli: reference/connman.cli.md\n",
    )
    result = build(checkout)
    assert result.returncode == 0, result.stderr
    assert 'id="connman.cli.main"' in (checkout / "site" / "reference" / "connman.cli.html").read_text()
