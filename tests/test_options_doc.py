"""docs/options.md and `help(connman.connect)` say what the declarations in `connman._options` say.

The tables of docs/options.md are generated: `make docs` (or `python tests/test_options_doc.py`) rewrites
them from the declarations; these tests fail when someone forgets.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import connman
from connman._options import OPTIONS, options_help, options_table

PAGE = Path(__file__).resolve().parent.parent / "docs" / "options.md"
BEGIN = "<!-- options: generated from connman._options, do not edit by hand -->\n"
END = "<!-- options: end of the generated section -->"


def split(text: str) -> tuple[str, str, str]:
    """The page as (before the generated section, the section, after it)."""
    before, begin, rest = text.partition(BEGIN)
    section, end, after = rest.partition(END)
    assert begin and end, f"docs/options.md lost its markers {BEGIN.strip()} ... {END}"
    return before + begin, section, end + after


def regenerated(text: str) -> str:
    before, _, after = split(text)
    return f"{before}\n{options_table()}{after}"


def test_the_tables_are_generated_from_the_declarations() -> None:
    text = PAGE.read_text()
    assert text == regenerated(text), "docs/options.md is stale: run `make docs`"


def test_the_tables_give_every_option_its_default_and_unit_and_nothing_stale() -> None:
    rows = {}
    for line in split(PAGE.read_text())[1].splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    assert list(rows) == list(OPTIONS)
    for name, option in OPTIONS.items():
        assert rows[name][1] == f"`{option.default_text}`"
        assert rows[name][2] == (option.unit or "-")


def test_the_prose_names_only_declared_options() -> None:
    _, _, prose = split(PAGE.read_text())
    named = re.findall(r"\*\*`(\w+)`\*\*", prose)  # the notes open with the options they are about
    assert named
    assert set(named) <= set(OPTIONS)


def help_entries() -> dict[str, str]:
    """Each entry of `options_help()`, by option name, with its lines joined."""
    entries: dict[str, list[str]] = {}
    for line in options_help().splitlines():
        if line.startswith("    ") and not line.startswith("     "):
            name = line.split()[0]
            entries[name] = []
        if line.startswith("    "):
            entries[name].append(line.strip())
    return {name: " ".join(lines) for name, lines in entries.items()}


def test_the_help_explains_every_option_with_unit_default_and_what_none_means() -> None:
    entries = help_entries()
    assert list(entries) == list(OPTIONS)
    for name, option in OPTIONS.items():
        head = f"{name} ({option.unit}; " if option.unit else f"{name} ("
        assert entries[name].startswith(f"{head}default {option.default_text}): "), entries[name]
        assert option.doc in entries[name]
        if option.check.optional:
            assert f"None: {option.none}." in entries[name]


def test_help_of_connect_lists_the_options() -> None:
    doc = inspect.getdoc(connman.connect)
    assert doc is not None
    assert doc.startswith("Open a managed connection on the default manager")
    assert doc.endswith(options_help().rstrip())


if __name__ == "__main__":
    PAGE.write_text(regenerated(PAGE.read_text()))
    print(f"rewrote the tables of {PAGE}")
