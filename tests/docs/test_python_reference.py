"""The Python reference names exactly what ``from corral import ...`` gives, and no page says a
name must be imported from a submodule when ``corral`` exports it."""

from __future__ import annotations

import re
from pathlib import Path

import corral

DOCS = Path(__file__).resolve().parents[2] / "docs"
REFERENCE = DOCS / "reference-python.md"


def test_the_reference_lists_what_corral_exports() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    intro = text.split("\n\n")[1].split("and the errors below")[0]
    listed = set(re.findall(r"`(\w+)`", intro))
    tree, after = text.split("## Errors")[1].split("```text\n")[1].split("\n```\n")
    errors = set(re.findall(r"[├└]── (\w+)", tree)) | {"CorralError"}
    only_in_submodule = set(re.findall(r"`(\w+)`", after.split("are imported from")[0]))
    assert listed | (errors - only_in_submodule) == set(corral.__all__)


def test_no_page_sends_an_exported_name_to_a_submodule() -> None:
    for page in sorted([*DOCS.glob("*.md"), DOCS.parent / "README.md"]):
        text = page.read_text(encoding="utf-8")
        for name in re.findall(r"`(\w+)` is imported from `corral\.", text):
            assert name not in corral.__all__, f"{page.name}: `from corral import {name}` works"
        assert "not re-exported by `corral`" not in text, page.name
