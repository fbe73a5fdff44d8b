"""The browser tests never change tracked files: screenshots reach docs/screenshots/ only with
CORRAL_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import DOCS_SHOTS, UPDATE_SCREENSHOTS, publish_screenshot


def _shot(tmp_path: Path) -> Path:
    taken = tmp_path / "taken" / "overview.png"
    taken.parent.mkdir()
    taken.write_bytes(b"\x89PNG new")
    return taken


def test_screenshots_stay_in_the_temporary_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPDATE_SCREENSHOTS, raising=False)
    docs = tmp_path / "docs"
    assert publish_screenshot(_shot(tmp_path), docs) is None
    assert not docs.exists()


def test_screenshots_update_the_docs_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPDATE_SCREENSHOTS, "1")
    docs = tmp_path / "docs"
    assert publish_screenshot(_shot(tmp_path), docs) == docs / "overview.png"
    assert (docs / "overview.png").read_bytes() == b"\x89PNG new"


def test_the_default_target_is_the_documented_folder() -> None:
    assert DOCS_SHOTS == Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    assert publish_screenshot.__defaults__ == (DOCS_SHOTS,)
