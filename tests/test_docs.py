"""The README is the front door: keep its table catalogue and commands true."""

from __future__ import annotations

import re

from cradle.catalog import TABLES
from cradle.cli import build_parser
from cradle.config import PROJECT_ROOT
from cradle.sources import load_sources

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_table() -> None:
    missing = [
        name for name, table in TABLES.items() if table.layer != "silver" and f"`{name}`" not in README
    ]
    assert missing == [], f"README's table catalogue lacks {missing}"
    sources = [s for s in load_sources().sources if f"`{s}`" not in README]
    assert sources == [], f"README's silver source list lacks {sources}"


def test_readme_documents_every_subcommand() -> None:
    subcommands = build_parser()._subparsers._group_actions[0].choices
    documented = set(re.findall(r"`cradle (\w+)", README))
    assert set(subcommands) <= documented, set(subcommands) - documented


def test_readme_version_table_matches_pins() -> None:
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for package, pinned in re.findall(r'"([a-z-]+)==([0-9.]+)"', pyproject):
        rows = [line for line in README.splitlines() if line.startswith("|") and f"`{package}`" in line]
        row = rows[0] if rows else None
        assert row is not None, f"README's version table lacks {package}"
        assert pinned in row, f"README says {row!r} but pyproject pins {package}=={pinned}"
