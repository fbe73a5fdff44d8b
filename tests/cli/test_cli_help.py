"""The help, version and typo answers of the installed ``corral`` script, at 80 columns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from itertools import pairwise
from pathlib import Path

import pytest

CORRAL = str(Path(sys.executable).parent / "corral")
COMMANDS = [[], ["worker"], ["scheduler"], ["api"], ["dev"], ["db"], ["db", "upgrade"]]
WIDTH = 80


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(COLUMNS=str(WIDTH), TERM="dumb")
    return subprocess.run(
        [CORRAL, *args], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def test_a_typo_suggests_the_command_once() -> None:
    result = _run("wroker")
    assert result.returncode == 2
    assert result.stderr.count("Did you mean 'worker'?") == 1, result.stderr


@pytest.mark.parametrize("command", [[], ["worker"], ["db", "upgrade"]], ids=lambda c: " ".join(c))
def test_version_at_the_top_and_on_commands(command: list[str]) -> None:
    shown = _run(*command, "--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"corral {version('corral')}"


def _starts_cell(line: str, column: int) -> bool:
    return column < len(line) and line[column] != " " and (column == 0 or line[column - 1] in " │")


def _broken_early(lines: list[str], width: int) -> list[str]:
    """Consecutive lines of one cell or paragraph where the second line's first word would
    have fitted on the first: the text broke where the source had a newline, not at the edge
    of the terminal (typer keeps a docstring's newlines in the commands table)."""
    bad = []
    for first, second in pairwise(lines):
        if "─" in first + second or not first.strip(" │") or not second.strip(" │"):
            continue
        column = len(second) - len(second.lstrip(" │"))
        if second.lstrip().startswith("│") and column <= len(first) - len(first.lstrip(" │")):
            continue  # the next row of a table
        word = second[column:].split(" ", 1)[0]
        if word.startswith("[") or not _starts_cell(first, column):
            continue
        limit = second.rindex("│") - 1 if second.rstrip().endswith("│") else width - 1
        if len(first.rstrip(" │")) + 1 + len(word) <= limit:
            bad.append(f"{first}\n{second}")
    return bad


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "corral")
def test_help_wraps_only_at_the_terminal_edge(command: list[str]) -> None:
    """Every command's help, asked with -h (the top level's with --help), at 80 columns."""
    result = _run(*command, "-h" if command else "--help")
    assert result.returncode == 0, result.stderr
    assert re.search(r"-h, --help|--help\s+-h", result.stdout), result.stdout
    lines = result.stdout.splitlines()
    assert all(len(line) <= WIDTH for line in lines), result.stdout
    assert not _broken_early(lines, WIDTH), result.stdout
