"""Every test the README and the docs cite as proof of a promise exists: a promise whose test
was renamed or deleted would otherwise cite nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CITATION = re.compile(r"`(?P<file>tests/[\w/]+\.py)(?:::(?P<test>\w+))?`")


def _citations() -> list[tuple[str, str, str | None]]:
    found = []
    for page in PAGES:
        for match in CITATION.finditer(page.read_text()):
            found.append((page.name, match["file"], match["test"]))
    return found


def test_the_docs_cite_tests() -> None:
    assert any(test for _page, _file, test in _citations())


@pytest.mark.parametrize(("page", "file", "test"), sorted(set(_citations()), key=str))
def test_a_cited_test_exists(page: str, file: str, test: str | None) -> None:
    path = ROOT / file
    assert path.is_file(), f"{page} cites {file}, which does not exist"
    if test is not None:
        defined = re.search(rf"^(async )?def {test}\(", path.read_text(), re.MULTILINE)
        assert defined, f"{page} cites {file}::{test}, which is not defined there"
